//! SNS governance's own types, as its Candid interface declares them.

use candid::{CandidType, Deserialize, Principal};

/// SNS governance's `TransferSnsTreasuryFunds`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TransferSnsTreasuryFunds {
    /// 1: the ICP treasury, 2: the SNS token treasury.
    pub from_treasury: i32,
    /// The recipient's owner.
    pub to_principal: Option<Principal>,
    /// The recipient's subaccount.
    pub to_subaccount: Option<SnsSubaccount>,
    /// The ledger transfer's memo.
    pub memo: Option<u64>,
    /// Amount sent (the treasury pays the fee on top).
    pub amount_e8s: u64,
}

/// SNS governance's `Subaccount`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SnsSubaccount {
    /// 32 bytes.
    #[serde(with = "serde_bytes")]
    pub subaccount: Vec<u8>,
}
