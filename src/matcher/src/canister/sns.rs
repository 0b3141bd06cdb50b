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

/// For each action `Action(Arg) => target, validator;`: the validator, which
/// answers what `validate` says, and the target (documented by the entry),
/// which replies or rejects as `execute` does.
macro_rules! sns_actions {
    ($($(#[doc = $doc:literal])* $action:ident($arg:ty) => $target:ident, $validator:ident;)+) => {$(
        // A literal, unlike `concat!`, reaches the generated `.did`.
        /// Validates a proposal's payload for the method of the same name
        /// without `validate_`; changes nothing.
        #[ic_cdk::update]
        async fn $validator(arg: $arg) -> Result<String, String> {
            validate(SnsAction::$action(arg)).await
        }

        $(#[doc = $doc])*
        #[ic_cdk::update(manual_reply = true)]
        async fn $target(arg: $arg) -> String {
            execute(SnsAction::$action(arg)).await;
            String::new()
        }
    )+};
}

sns_actions! {
    /// Reserves capacity for the calling DAO (see `reserve`); rejects if it
    /// can't. Registered DAOs' governance canisters only.
    Reserve(ReservationSpec) => sns_reserve, sns_validate_reserve;
    /// Extends one of the calling DAO's reservations (see `extend_reservation`).
    Extend(ExtendReservationArgs) => sns_extend, sns_validate_extend;
    /// Changes the delegates of one of the calling DAO's reservations.
    SetDelegates(SetDelegatesArgs) => sns_set_delegates, sns_validate_set_delegates;
    /// Cancels one of the calling DAO's reservations.
    Cancel(CancelReservationArgs) => sns_cancel, sns_validate_cancel;
    /// Submits a one-off job paid from the calling DAO's balance.
    SubmitJob(JobSpec) => sns_submit_job, sns_validate_submit_job;
    /// Withdraws from the calling DAO's escrow balance.
    Withdraw(WithdrawArgs) => sns_withdraw, sns_validate_withdraw;
}
