//! SNS DAOs as buyers: the generic nervous system functions the matcher
//! offers, and the governance types a DAO's proposals carry.
//!
//! For each action a DAO takes by proposal the matcher has a target method,
//! callable by a registered DAO's governance canister, and a validator method
//! taking the same Candid payload, which changes nothing and answers
//! `variant { Ok : text; Err : text }` with a summary for voters. SNS
//! governance calls the validator when the proposal is made and the target
//! once it is adopted, with the same payload bytes. A target rejects when it
//! cannot do what was voted: governance counts any reply as success.

use crate::Principal;
use crate::escrow::WithdrawArgs;
use crate::matcher::{
    CancelReservationArgs, ExtendReservationArgs, JobSpec, ReservationSpec, SetDelegatesArgs,
};
use candid::{CandidType, Deserialize};
use serde::Serialize;

/// A proposal's action on the marketplace, with its payload.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum SnsAction {
    /// Reserve capacity, paid from the DAO's escrow balance.
    Reserve(ReservationSpec),
    /// Add intervals to a reservation.
    Extend(ExtendReservationArgs),
    /// Add or remove principals that may run jobs in a reservation.
    SetDelegates(SetDelegatesArgs),
    /// Cancel a reservation; what was not paid returns to the balance.
    Cancel(CancelReservationArgs),
    /// Submit a one-off job.
    SubmitJob(JobSpec),
    /// Move funds out of the DAO's escrow balance.
    Withdraw(WithdrawArgs),
}

/// The kinds of [`SnsAction`], in a fixed order.
pub const SNS_ACTIONS: [&str; 6] = [
    "reserve",
    "extend",
    "set_delegates",
    "cancel",
    "submit_job",
    "withdraw",
];

impl SnsAction {
    /// The action's short name (one of [`SNS_ACTIONS`]).
    pub fn name(&self) -> &'static str {
        match self {
            SnsAction::Reserve(_) => SNS_ACTIONS[0],
            SnsAction::Extend(_) => SNS_ACTIONS[1],
            SnsAction::SetDelegates(_) => SNS_ACTIONS[2],
            SnsAction::Cancel(_) => SNS_ACTIONS[3],
            SnsAction::SubmitJob(_) => SNS_ACTIONS[4],
            SnsAction::Withdraw(_) => SNS_ACTIONS[5],
        }
    }

    /// The Candid payload of an ExecuteGenericNervousSystemFunction proposal.
    pub fn payload(&self) -> Vec<u8> {
        let encoded = match self {
            SnsAction::Reserve(a) => candid::encode_one(a),
            SnsAction::Extend(a) => candid::encode_one(a),
            SnsAction::SetDelegates(a) => candid::encode_one(a),
            SnsAction::Cancel(a) => candid::encode_one(a),
            SnsAction::SubmitJob(a) => candid::encode_one(a),
            SnsAction::Withdraw(a) => candid::encode_one(a),
        };
        encoded.expect("BUG: Candid encoding of a payload type failed")
    }

    /// Decodes the payload of the action named `name`.
    pub fn decode(name: &str, payload: &[u8]) -> Result<Self, String> {
        fn one<T: CandidType + for<'a> Deserialize<'a>>(b: &[u8]) -> Result<T, String> {
            candid::decode_one(b).map_err(|e| format!("the payload does not decode: {e}"))
        }
        Ok(match name {
            "reserve" => SnsAction::Reserve(one(payload)?),
            "extend" => SnsAction::Extend(one(payload)?),
            "set_delegates" => SnsAction::SetDelegates(one(payload)?),
            "cancel" => SnsAction::Cancel(one(payload)?),
            "submit_job" => SnsAction::SubmitJob(one(payload)?),
            "withdraw" => SnsAction::Withdraw(one(payload)?),
            other => return Err(format!("unknown action '{other}'")),
        })
    }
}

/// The matcher's target method of an action.
pub fn target_method(action: &str) -> String {
    format!("sns_{action}")
}

/// The matcher's validator method of an action.
pub fn validator_method(action: &str) -> String {
    format!("sns_validate_{action}")
}

/// SNS governance's `Topic` of a generic function (newer SNS versions).
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    DappCanisterManagement,
    DaoCommunitySettings,
    ApplicationBusinessLogic,
    CriticalDappOperations,
    TreasuryAssetManagement,
    Governance,
    SnsFrameworkManagement,
}

/// SNS governance's `GenericNervousSystemFunction`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct GenericNervousSystemFunction {
    pub topic: Option<Topic>,
    pub validator_canister_id: Option<Principal>,
    pub target_canister_id: Option<Principal>,
    pub validator_method_name: Option<String>,
    pub target_method_name: Option<String>,
}

/// SNS governance's `FunctionType`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum FunctionType {
    NativeNervousSystemFunction {},
    GenericNervousSystemFunction(GenericNervousSystemFunction),
}

/// SNS governance's `NervousSystemFunction`: the value of an
/// AddGenericNervousSystemFunction proposal.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct NervousSystemFunction {
    /// At least 1000 (lower ids are the SNS's native functions).
    pub id: u64,
    pub name: String,
    pub description: Option<String>,
    pub function_type: Option<FunctionType>,
}

/// SNS governance's `ExecuteGenericNervousSystemFunction`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ExecuteGenericNervousSystemFunction {
    pub function_id: u64,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// The topic an action's proposals belong to: spending actions are treasury
/// matters (critical: higher quorum), the rest application business.
pub fn topic(action: &str) -> Topic {
    match action {
        "reserve" | "extend" | "submit_job" | "withdraw" => Topic::TreasuryAssetManagement,
        _ => Topic::ApplicationBusinessLogic,
    }
}

/// The AddGenericNervousSystemFunction value registering `action` on
/// `matcher` under `function_id`.
pub fn function(matcher: Principal, action: &str, function_id: u64) -> NervousSystemFunction {
    let description = match action {
        "reserve" => {
            "Reserve compute capacity on the marketplace, paid from the DAO's escrow balance"
        }
        "extend" => "Extend a marketplace reservation, paid from the DAO's escrow balance",
        "set_delegates" => "Change which canisters may run jobs in a marketplace reservation",
        "cancel" => {
            "Cancel a marketplace reservation; unpaid funds return to the DAO's escrow balance"
        }
        "submit_job" => {
            "Submit a one-off job to the marketplace, paid from the DAO's escrow balance"
        }
        "withdraw" => "Withdraw funds from the DAO's marketplace escrow balance",
        _ => "",
    };
    NervousSystemFunction {
        id: function_id,
        name: format!("Compute marketplace: {}", action.replace('_', " ")),
        description: Some(description.to_string()),
        function_type: Some(FunctionType::GenericNervousSystemFunction(
            GenericNervousSystemFunction {
                topic: Some(topic(action)),
                validator_canister_id: Some(matcher),
                target_canister_id: Some(matcher),
                validator_method_name: Some(validator_method(action)),
                target_method_name: Some(target_method(action)),
            },
        )),
    }
}
