//! Stand-in for an SNS DAO's governance canister, so devnet tests can drive a
//! DAO's proposals against the marketplace as SNS governance would.
//!
//! What it emulates, with governance's calls and error messages (dfinity/ic
//! `rs/sns/governance/src/{proposal,canister_control,governance}.rs`):
//! - AddGenericNervousSystemFunction (`add_function`): the same checks (id at
//!   least 1000, a generic function type naming validator and target
//!   canisters and methods, no duplicate id, no reserved canister).
//! - ExecuteGenericNervousSystemFunction proposals: `submit_proposal` calls
//!   the validator with the payload bytes as given and accepts the proposal
//!   only on a reply decoding as `variant { Ok : text; Err : text }` that is
//!   `Ok`; `execute_proposal` (the adoption) calls the target with the same
//!   bytes and no cycles, and counts any reply as success and only a reject
//!   (or trap) as failure. Both calls come from this canister, so targets
//!   see it as the governance caller.
//! - TransferSnsTreasuryFunds from the ICP treasury (governance's default
//!   account), as an ICRC-1 transfer on the ledger the test names; the u64
//!   memo becomes an 8-byte big-endian ICRC-1 memo. A real SNS makes a legacy
//!   ICP `transfer` with a u64 memo and an explicit 10_000 e8s fee.
//!
//! What it leaves out: neurons, voting, rewards and proposal deadlines
//! (every proposal is Open until the test executes it); the proposal's
//! rendering is the validator's text alone, without governance's header
//! and payload hash; topics are accepted but not used; removing functions;
//! other proposal actions; the SNS-token treasury; the 7-day treasury
//! transfer limit and its valuation; the lock allowing one treasury transfer
//! at a time; reserving the SNS root, ledger, swap and ICP ledger as targets
//! (only this canister and `aaaaa-aa` are reserved); access control (any
//! caller may register functions, submit, execute and spend); and upgrades
//! (all state is on the heap).

mod functions;
mod governance;
mod treasury;

use candid::{Decode, Nat, Principal};
use ic_cdk::call::{Call, CallFailed};
use ic_cdk::{query, update};
use icrc_ledger_types::icrc1::transfer::TransferError;
use market_api::sns::{ExecuteGenericNervousSystemFunction, NervousSystemFunction};

pub use governance::{Proposal, ProposalStatus};
pub use treasury::TransferTreasuryFunds;

use governance::{mutate_state, read_state};

/// Canisters a generic function may not call.
fn reserved_canisters() -> [Principal; 2] {
    [
        ic_cdk::api::canister_self(),
        Principal::management_canister(),
    ]
}

/// Registers a generic nervous system function (AddGenericNervousSystemFunction,
/// without the vote).
#[update]
fn add_function(function: NervousSystemFunction) -> Result<(), String> {
    let function = functions::validate(&function, &reserved_canisters())?;
    mutate_state(|s| s.add_function(function))
}

/// Makes an ExecuteGenericNervousSystemFunction proposal: the function's
/// validator must answer `Ok(rendering)` for the payload. Returns the id.
#[update]
async fn submit_proposal(proposal: ExecuteGenericNervousSystemFunction) -> Result<u64, String> {
    let ExecuteGenericNervousSystemFunction {
        function_id,
        payload,
    } = proposal;
    let validator = read_state(|s| s.validator(function_id))?;
    let reply = Call::unbounded_wait(validator.canister, &validator.method)
        .with_raw_args(&payload)
        .await
        .map_err(|e| {
            format!(
                "Canister method call to validate and render proposal payload of \
                 NervousSystemFunction: {function_id} failed: {}",
                call_failure(&e)
            )
        })?;
    let validation = Decode!(&reply.into_bytes(), Result<String, String>).map_err(|e| {
        format!("Error decoding reply from proposal payload validate and render call: {e}")
    })?;
    let rendering = validation.map_err(|e| format!("Invalid proposal: {e}"))?;
    Ok(mutate_state(|s| {
        s.add_proposal(function_id, payload, rendering)
    }))
}

/// Executes proposal `id` as governance does once it is adopted: calls the
/// target with the payload. Ok if the target replied, Err (and the proposal
/// Failed) if it rejected. A proposal executes at most once.
#[update]
async fn execute_proposal(id: u64) -> Result<(), String> {
    let (target, payload) = mutate_state(|s| s.begin_execution(id))?;
    // Nothing after this await can trap, so the proposal cannot stay marked
    // as executing.
    let result = Call::unbounded_wait(target.canister, &target.method)
        .with_raw_args(&payload)
        .await;
    let status = match result {
        Ok(_) => ProposalStatus::Executed,
        Err(e) => ProposalStatus::Failed(call_failure(&e)),
    };
    mutate_state(|s| s.finish_execution(id, status.clone()));
    match status {
        ProposalStatus::Failed(reason) => Err(reason),
        _ => Ok(()),
    }
}

/// The proposal `id`, if it was made.
#[query]
fn get_proposal(id: u64) -> Option<Proposal> {
    read_state(|s| s.proposal(id))
}

/// Pays from the ICP treasury (this canister's default account on `ledger`)
/// as an adopted TransferSnsTreasuryFunds proposal does. Returns the block
/// index.
#[update]
async fn transfer_treasury_funds(args: TransferTreasuryFunds) -> Result<Nat, String> {
    let arg = args.transfer_arg()?;
    let reply = Call::unbounded_wait(args.ledger, "icrc1_transfer")
        .with_arg(&arg)
        .await
        .map_err(|e| format!("icrc1_transfer failed: {}", call_failure(&e)))?;
    let result: Result<Nat, TransferError> = reply
        .candid()
        .map_err(|e| format!("icrc1_transfer replied with something else: {e}"))?;
    result.map_err(|e| format!("the ledger refused the transfer: {e} ({e:?})"))
}

/// "reject code N: message" for a reject, the error text otherwise.
fn call_failure(e: &CallFailed) -> String {
    match e {
        CallFailed::CallRejected(r) => {
            format!(
                "reject code {}: {}",
                r.raw_reject_code(),
                r.reject_message()
            )
        }
        other => other.to_string(),
    }
}

ic_cdk::export_candid!();

#[cfg(test)]
mod tests {
    #[test]
    fn candid_interface_matches_the_did_file() {
        market_artifacts::assert_did_matches(
            &super::__export_service(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/sns-governance-standin.did"),
        );
    }
}
