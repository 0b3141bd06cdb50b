//! Errors of the typed client, with messages a person can act on.

use icrc_ledger_types::icrc1::transfer::TransferError;
use icrc_ledger_types::icrc2::approve::ApproveError;
use market_api::LedgerCallError;
use market_api::escrow::EscrowError;
use market_api::matcher::MatcherError;
use market_api::registry::RegistryError;

use super::tokens::format_tokens;
use crate::transport::{RejectCode, TransportError};

/// Why a canister call of the typed client failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The call did not produce an answer (reject, network, timeout).
    #[error("{canister}.{method}: {source}{}", call_hint(source))]
    Call {
        /// Which of the marketplace's canisters (`ledger`, `registry`...).
        canister: &'static str,
        /// The method called.
        method: String,
        /// What the transport saw.
        source: TransportError,
    },
    /// The answer did not decode as the expected type: the canister id
    /// likely names another canister, or its version does not match.
    #[error(
        "{canister}.{method}: unexpected answer ({message}); does the configured {canister} id \
         name the marketplace's {canister} canister, of a matching version?"
    )]
    Candid {
        /// Which canister.
        canister: &'static str,
        /// The method called.
        method: String,
        /// The Candid error.
        message: String,
    },
    /// The registry refused.
    #[error("registry: {}", describe_registry(.0))]
    Registry(RegistryError),
    /// The escrow refused.
    #[error("escrow: {}", describe_escrow(.0))]
    Escrow(EscrowError),
    /// The matcher refused.
    #[error("matcher: {}", describe_matcher(.0))]
    Matcher(MatcherError),
    /// The ledger refused a transfer.
    #[error("ledger: transfer refused: {}", describe_transfer(.0))]
    Transfer(TransferError),
    /// The ledger refused an approval.
    #[error("ledger: approval refused: {}", describe_approve(.0))]
    Approve(ApproveError),
}

impl ClientError {
    /// Whether trying the same call again later may succeed (network
    /// trouble, a busy canister, a transient ledger state).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Call { source, .. } => source.is_transient(),
            ClientError::Candid { .. } => false,
            ClientError::Registry(e) => matches!(
                e,
                RegistryError::Busy | RegistryError::Ledger(LedgerCallError::OutcomeUnknown)
            ),
            ClientError::Escrow(e) => matches!(
                e,
                EscrowError::Busy
                    | EscrowError::PendingOperation { .. }
                    | EscrowError::Ledger(LedgerCallError::OutcomeUnknown)
            ),
            ClientError::Matcher(e) => {
                matches!(
                    e,
                    MatcherError::Busy
                        | MatcherError::Downstream { .. }
                        | MatcherError::Escrow(_)
                        | MatcherError::Registry(_)
                )
            }
            ClientError::Transfer(e) => matches!(e, TransferError::TemporarilyUnavailable),
            ClientError::Approve(e) => matches!(e, ApproveError::TemporarilyUnavailable),
        }
    }
}

fn call_hint(e: &TransportError) -> &'static str {
    // The IC's error code says more than the reject code: a missing method
    // or module and a stopped canister are reject code 5, as a trap is.
    if let TransportError::Reject {
        error_code: Some(code),
        ..
    } = e
    {
        match code.as_str() {
            "IC0536" => {
                return " (the canister has no such method: is the canister id right, and its \
                         module this market's version?)";
            }
            "IC0537" => return " (the canister has no module installed)",
            "IC0508" | "IC0509" => {
                return " (the canister is stopped, e.g. for an upgrade; try again later)";
            }
            "IC0207" => {
                return " (the canister is out of cycles and frozen, so nothing changed: its \
                         operator must top it up, e.g. `icp canister top-up`, and watch its \
                         `/metrics` gauge `<canister>_cycles_days_left`; try again once it is)";
            }
            _ => {}
        }
    }
    match e {
        TransportError::Reject {
            code: RejectCode::DestinationInvalid,
            ..
        } => " (is the canister id right, and deployed on this network?)",
        TransportError::Reject {
            code: RejectCode::CanisterError,
            ..
        } => " (the canister trapped; nothing changed)",
        TransportError::Reject {
            code: RejectCode::SysTransient,
            ..
        } => " (the network is busy; try again)",
        TransportError::Network(_) => " (is the network URL right and reachable?)",
        TransportError::Timeout => {
            " (the outcome is unknown: check the state before repeating the command)"
        }
        _ => "",
    }
}

fn ledger_call(e: &LedgerCallError) -> String {
    match e {
        LedgerCallError::Rejected { message } => format!("the ledger refused: {message}"),
        LedgerCallError::CallFailed { code, message } => {
            format!("the call to the ledger failed (reject code {code}): {message}")
        }
        LedgerCallError::OutcomeUnknown => {
            "the ledger did not answer in time; the operation stays pending and is settled by \
             the next call: run the command again"
                .into()
        }
    }
}

/// A person-readable form of a registry error.
pub fn describe_registry(e: &RegistryError) -> String {
    match e {
        RegistryError::AnonymousCaller => {
            "anonymous callers are not allowed: configure an identity".into()
        }
        RegistryError::Unauthorized { reason } => format!("not allowed: {reason}"),
        RegistryError::AlreadyRegistered => {
            "this principal is already registered (use `register --update` to change the profile)"
                .into()
        }
        RegistryError::NotRegistered => {
            "this principal is not a registered provider: run `provider-node register` first".into()
        }
        RegistryError::InvalidArgument { field, reason } => format!("invalid {field}: {reason}"),
        RegistryError::StakeBonded { bonded } => format!(
            "{} of stake backs running jobs and can't leave until they end",
            format_tokens(*bonded)
        ),
        RegistryError::InsufficientStake { available } => format!(
            "not enough free stake: {} available",
            format_tokens(*available)
        ),
        RegistryError::Busy => {
            "another operation of this provider is in flight; try again in a moment".into()
        }
        RegistryError::Ledger(l) => ledger_call(l),
        RegistryError::Jailed => "the provider is jailed: top up its stake, then unjail".into(),
        RegistryError::NothingToWithdraw => {
            "nothing to withdraw: no unbonding stake has finished its unbonding period".into()
        }
        RegistryError::BelowFee { fee } => format!(
            "the amount does not cover the ledger fee of {}",
            format_tokens(*fee)
        ),
        RegistryError::KeyConflict { key } => format!("idempotency key {key} reused"),
        RegistryError::TooManyUnbonding { max } => {
            format!("{max} unstakes are already unbonding; withdraw finished ones first")
        }
    }
}

/// A person-readable form of an escrow error.
pub fn describe_escrow(e: &EscrowError) -> String {
    match e {
        EscrowError::AnonymousCaller => {
            "anonymous callers are not allowed: configure an identity".into()
        }
        EscrowError::Unauthorized { reason } => format!("not allowed: {reason}"),
        EscrowError::UnknownLedger { ledger } => format!(
            "ledger {ledger} is not accepted by the escrow (check the configured ledger id)"
        ),
        EscrowError::InvalidArgument { field, reason } => format!("invalid {field}: {reason}"),
        EscrowError::InsufficientBalance { available } => format!(
            "insufficient escrow balance: {} available",
            format_tokens(*available)
        ),
        EscrowError::UnknownJob { job_key } => format!("no lock for {job_key}"),
        EscrowError::KeyConflict { job_key } => format!("key {job_key} reused"),
        EscrowError::OverRelease { remaining } => {
            format!("over-release: {} remaining", format_tokens(*remaining))
        }
        EscrowError::AlreadySettled { job_key } => format!("{job_key} is already settled"),
        EscrowError::AmountBelowFee { fee } => format!(
            "the amount does not cover the ledger fee of {}",
            format_tokens(*fee)
        ),
        EscrowError::LimitReached { what, limit } => format!("limit of {limit} {what} reached"),
        EscrowError::Busy => "the escrow is busy with another operation of yours; try again".into(),
        EscrowError::PendingOperation { operation } => format!(
            "an earlier ledger operation ({}) has an unknown outcome; try again later",
            operation.id
        ),
        EscrowError::Ledger(l) => ledger_call(l),
    }
}

/// A person-readable form of a matcher error.
pub fn describe_matcher(e: &MatcherError) -> String {
    match e {
        MatcherError::AnonymousCaller => {
            "anonymous callers are not allowed: configure an identity".into()
        }
        MatcherError::Unauthorized { reason } => format!("not allowed: {reason}"),
        MatcherError::InvalidArgument { field, reason } => format!("invalid {field}: {reason}"),
        MatcherError::UnknownJob { job_id } => format!("no job {job_id}"),
        MatcherError::UnknownOffer { offer_id } => format!("no offer {offer_id} of yours"),
        MatcherError::UnknownModule { sha256 } => format!(
            "no module {} in the matcher's store (upload it first)",
            hex::encode(sha256)
        ),
        MatcherError::InvalidState { status } => {
            format!("the job is {status:?}, which does not allow this")
        }
        MatcherError::LimitReached { what, limit } => format!("limit of {limit} {what} reached"),
        MatcherError::Busy => "the matcher is busy with this job or principal; try again".into(),
        MatcherError::Downstream { canister, message } => {
            format!("the {canister} failed ({message}); nothing changed, try again")
        }
        MatcherError::Escrow(e) => format!("the escrow refused: {}", describe_escrow(e)),
        MatcherError::Registry(e) => format!("the registry refused: {}", describe_registry(e)),
        MatcherError::NoRateSource { ledger } => format!(
            "the market has no rate for ledger {ledger}: it takes no jobs, offers or XDR prices \
             in it (a bond in its token could not be valued in ICP)"
        ),
        MatcherError::StaleRate {
            ledger,
            timestamp_secs,
            max_age_secs,
        } if *timestamp_secs == 0 => format!(
            "the market has not read ledger {ledger}'s rate yet (rates older than \
             {max_age_secs} s are refused); try again in a few minutes"
        ),
        MatcherError::StaleRate {
            ledger,
            timestamp_secs,
            max_age_secs,
        } => format!(
            "ledger {ledger}'s rate is from {}, older than the {max_age_secs} s the market \
             accepts; try again once it is read anew",
            super::time::format_time(timestamp_secs.saturating_mul(1_000_000_000))
        ),
    }
}

/// A person-readable form of a ledger transfer error.
pub fn describe_transfer(e: &TransferError) -> String {
    match e {
        TransferError::BadFee { expected_fee } => format!("the fee must be {expected_fee}"),
        TransferError::BadBurn { min_burn_amount } => {
            format!("burns must be at least {min_burn_amount}")
        }
        TransferError::InsufficientFunds { balance } => {
            format!("insufficient funds: the account holds {balance} (smallest units)")
        }
        TransferError::TooOld => "the transaction is too old; retry".into(),
        TransferError::CreatedInFuture { .. } => {
            "created in the future: is this machine's clock right?".into()
        }
        TransferError::TemporarilyUnavailable => "the ledger is temporarily unavailable".into(),
        TransferError::Duplicate { duplicate_of } => {
            format!("already done in block {duplicate_of}")
        }
        TransferError::GenericError {
            error_code,
            message,
        } => format!("error {error_code}: {message}"),
    }
}

/// A person-readable form of a ledger approval error.
pub fn describe_approve(e: &ApproveError) -> String {
    match e {
        ApproveError::BadFee { expected_fee } => format!("the fee must be {expected_fee}"),
        ApproveError::InsufficientFunds { balance } => format!(
            "insufficient funds to pay the approval fee: the account holds {balance} (smallest units)"
        ),
        ApproveError::AllowanceChanged { current_allowance } => {
            format!("the allowance changed meanwhile (now {current_allowance})")
        }
        ApproveError::Expired { .. } => "the approval expired".into(),
        ApproveError::TooOld => "the transaction is too old; retry".into(),
        ApproveError::CreatedInFuture { .. } => {
            "created in the future: is this machine's clock right?".into()
        }
        ApproveError::Duplicate { duplicate_of } => format!("already done in block {duplicate_of}"),
        ApproveError::TemporarilyUnavailable => "the ledger is temporarily unavailable".into(),
        ApproveError::GenericError {
            error_code,
            message,
        } => format!("error {error_code}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(code: RejectCode, error_code: Option<&str>) -> String {
        ClientError::Call {
            canister: "matcher",
            method: "submit_job".into(),
            source: TransportError::Reject {
                code,
                message: "m".into(),
                error_code: error_code.map(str::to_string),
            },
        }
        .to_string()
    }

    #[test]
    fn the_hint_follows_the_ics_error_code() {
        assert!(
            reject(RejectCode::CanisterError, Some("IC0503"))
                .ends_with("(the canister trapped; nothing changed)")
        );
        assert!(reject(RejectCode::CanisterError, Some("IC0536")).contains("has no such method"));
        assert!(reject(RejectCode::CanisterError, Some("IC0537")).contains("no module installed"));
        assert!(reject(RejectCode::CanisterError, Some("IC0508")).contains("is stopped"));
        let frozen = reject(RejectCode::SysTransient, Some("IC0207"));
        assert!(frozen.contains("out of cycles"), "{frozen}");
        assert!(frozen.contains("top it up"), "{frozen}");
        assert!(!frozen.contains("network is busy"), "{frozen}");
        assert!(
            reject(RejectCode::DestinationInvalid, Some("IC0301"))
                .contains("deployed on this network")
        );
        assert!(
            reject(RejectCode::CanisterError, None)
                .ends_with("(the canister trapped; nothing changed)")
        );
    }
}
