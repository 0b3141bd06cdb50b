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

use crate::endpoints;
use crate::runtime::IcRuntime;
use market_api::escrow::WithdrawArgs;
use market_api::matcher::{
    CancelReservationArgs, ExtendReservationArgs, JobSpec, ReservationSpec, SetDelegatesArgs,
};
use market_api::sns::SnsAction;

async fn validate(action: SnsAction) -> Result<String, String> {
    endpoints::sns_validate(&IcRuntime, ic_cdk::api::msg_caller(), action).await
}

/// Replies with what was done, or rejects (failing the proposal).
async fn execute(action: SnsAction) {
    let governance = ic_cdk::api::msg_caller();
    match endpoints::sns_execute(&IcRuntime, governance, action).await {
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
