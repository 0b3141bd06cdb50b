//! The generic nervous system functions of SNS DAOs (see `market_api::sns`):
//! for each action a validator, which changes nothing and answers
//! `variant { Ok : text; Err : text }`, and a target, which a registered
//! DAO's governance canister calls once the proposal is adopted and which
//! acts as that canister's own principal.
//!
//! A target checks everything again (the vote took days) and rejects when it
//! cannot do what was voted: SNS governance takes any reply as success, so a
//! reject is the only way to mark the proposal failed. It rejects with
//! `msg_reject` rather than a trap, so that what was committed at an await
//! (a lock whose outcome is unknown, say) stays recorded.

use super::*;
use crate::governance::{self, DaoContext};
use market_api::escrow::{LedgerInfo, WithdrawForArgs};
use market_api::sns::SnsAction;
use market_api::{Account, Tokens};

/// The DAO behind the caller, with its escrow balance on the action's ledger.
async fn context(action: &SnsAction) -> Result<DaoContext, String> {
    let governance = ic_cdk::api::msg_caller();
    let name = read_state(|s| s.market.dao_name(governance)).ok_or_else(|| {
        format!(
            "{governance} is not a registered SNS governance canister: the marketplace's \
             controllers register DAOs (register_dao)"
        )
    })?;
    let reservation_ledger = |id| read_state(|s| s.market.job(id).map(|r| r.spec.ledger));
    let ledger = match action {
        SnsAction::Reserve(spec) => Some(spec.ledger),
        SnsAction::SubmitJob(spec) => Some(spec.ledger),
        SnsAction::Withdraw(args) => Some(args.ledger),
        SnsAction::Extend(args) => reservation_ledger(args.reservation),
        SnsAction::Cancel(args) => reservation_ledger(args.reservation),
        SnsAction::SetDelegates(args) => reservation_ledger(args.reservation),
    };
    let escrow = read_state(|s| s.config().escrow);
    let unreachable = |e| format!("the escrow could not be asked for the DAO's balance: {e:?}");
    let (balance, symbol) = match ledger {
        Some(ledger) => {
            let balance: Balance = call(escrow, "balance_of", &(governance, ledger))
                .await
                .map_err(unreachable)?;
            let ledgers: Vec<LedgerInfo> =
                call(escrow, "ledgers", &()).await.map_err(unreachable)?;
            let symbol = ledgers
                .into_iter()
                .find(|l| l.ledger == ledger)
                .and_then(|l| l.symbol);
            (Some(balance), symbol)
        }
        None => (None, None),
    };
    let deposit_account = Account {
        owner: escrow,
        subaccount: market_api::escrow::deposit_subaccount(governance),
    };
    Ok(DaoContext {
        governance,
        name,
        balance,
        symbol,
        deposit_account: deposit_account.to_string(),
    })
}

async fn validate(action: SnsAction) -> Result<String, String> {
    let ctx = context(&action).await?;
    read_state(|s| governance::validate(&s.market, &ctx, &action))
}

async fn withdraw_as(owner: Principal, args: WithdrawArgs) -> Result<Tokens, MatcherError> {
    let escrow = read_state(|s| s.config().escrow);
    let args = WithdrawForArgs { owner, args };
    match call::<_, Result<Tokens, EscrowError>>(escrow, "withdraw_for", &(args,)).await {
        Ok(Ok(block)) => Ok(block),
        Ok(Err(e)) => Err(MatcherError::Downstream {
            canister: "escrow".into(),
            message: format!("{e:?}"),
        }),
        Err(e) => Err(MatcherError::Downstream {
            canister: "escrow".into(),
            message: format!("outcome unknown (the escrow's pending operation resolves it): {e:?}"),
        }),
    }
}

async fn perform(action: SnsAction) -> Result<String, String> {
    let ctx = context(&action).await?;
    let summary = read_state(|s| governance::validate(&s.market, &ctx, &action))?;
    let dao = ctx.governance;
    let done = match action {
        SnsAction::Reserve(spec) => reserve_as(dao, spec)
            .await
            .map(|id| format!("Reservation {id} made. {summary}")),
        SnsAction::Extend(args) => extend_as(dao, args).await.map(|()| summary),
        SnsAction::SetDelegates(args) => set_delegates_as(dao, args).map(|_| summary),
        SnsAction::Cancel(args) => cancel_reservation_as(dao, args).map(|()| summary),
        SnsAction::SubmitJob(spec) => submit_job_as(dao, spec)
            .await
            .map(|id| format!("Job {id} submitted. {summary}")),
        SnsAction::Withdraw(args) => withdraw_as(dao, args)
            .await
            .map(|block| format!("Withdrawn in ledger block {block}. {summary}")),
    };
    done.map_err(|e| governance::reason(&e))
}

/// Replies with what was done, or rejects (failing the proposal).
async fn execute(action: SnsAction) {
    match perform(action).await {
        Ok(text) => match candid::encode_one(text) {
            Ok(bytes) => ic_cdk::api::msg_reply(bytes),
            Err(e) => ic_cdk::api::msg_reject(format!("encoding the reply: {e}")),
        },
        Err(reason) => ic_cdk::api::msg_reject(reason),
    }
}

/// Validator of `sns_reserve`.
#[ic_cdk::update]
async fn sns_validate_reserve(spec: ReservationSpec) -> Result<String, String> {
    validate(SnsAction::Reserve(spec)).await
}

/// Reserves capacity for the calling DAO (see `reserve`); rejects if it
/// can't. Registered DAOs' governance canisters only.
#[ic_cdk::update(manual_reply = true)]
async fn sns_reserve(spec: ReservationSpec) -> String {
    execute(SnsAction::Reserve(spec)).await;
    String::new()
}

/// Validator of `sns_extend`.
#[ic_cdk::update]
async fn sns_validate_extend(args: ExtendReservationArgs) -> Result<String, String> {
    validate(SnsAction::Extend(args)).await
}

/// Extends one of the calling DAO's reservations (see `extend_reservation`).
#[ic_cdk::update(manual_reply = true)]
async fn sns_extend(args: ExtendReservationArgs) -> String {
    execute(SnsAction::Extend(args)).await;
    String::new()
}

/// Validator of `sns_set_delegates`.
#[ic_cdk::update]
async fn sns_validate_set_delegates(args: SetDelegatesArgs) -> Result<String, String> {
    validate(SnsAction::SetDelegates(args)).await
}

/// Changes the delegates of one of the calling DAO's reservations.
#[ic_cdk::update(manual_reply = true)]
async fn sns_set_delegates(args: SetDelegatesArgs) -> String {
    execute(SnsAction::SetDelegates(args)).await;
    String::new()
}

/// Validator of `sns_cancel`.
#[ic_cdk::update]
async fn sns_validate_cancel(args: CancelReservationArgs) -> Result<String, String> {
    validate(SnsAction::Cancel(args)).await
}

/// Cancels one of the calling DAO's reservations.
#[ic_cdk::update(manual_reply = true)]
async fn sns_cancel(args: CancelReservationArgs) -> String {
    execute(SnsAction::Cancel(args)).await;
    String::new()
}

/// Validator of `sns_submit_job`.
#[ic_cdk::update]
async fn sns_validate_submit_job(spec: JobSpec) -> Result<String, String> {
    validate(SnsAction::SubmitJob(spec)).await
}

/// Submits a one-off job paid from the calling DAO's balance.
#[ic_cdk::update(manual_reply = true)]
async fn sns_submit_job(spec: JobSpec) -> String {
    execute(SnsAction::SubmitJob(spec)).await;
    String::new()
}

/// Validator of `sns_withdraw`.
#[ic_cdk::update]
async fn sns_validate_withdraw(args: WithdrawArgs) -> Result<String, String> {
    validate(SnsAction::Withdraw(args)).await
}

/// Withdraws from the calling DAO's escrow balance.
#[ic_cdk::update(manual_reply = true)]
async fn sns_withdraw(args: WithdrawArgs) -> String {
    execute(SnsAction::Withdraw(args)).await;
    String::new()
}
