//! What an SNS DAO's proposers paste into their proposal
//! tools to buy capacity. The generic functions that register the
//! matcher's DAO actions, the treasury transfer that funds the DAO's escrow
//! balance, and each action's payload (see `market_api::sns`).
//!
//! Nothing here calls a canister: the ids come from the settings, the rest
//! from the command's flags (in the `market` binary), so it works offline;
//! only a payload priced in XDR needs the matcher's current rate, read by
//! the binary, for the ICP it tells voters it may lock ([`xdr_summary`]). The canister checks everything again
//! when the proposal is made and when it executes; the checks here only
//! keep the tool from printing a payload that can only fail.

//!
//! - [`checks`]: what a payload must satisfy before it is printed;
//! - [`wire`]: SNS governance's own types that the proposals carry;
//! - [`text`]: what `market sns` prints.

pub mod checks;
pub mod text;
pub mod wire;

pub use checks::{check_function_id, check_principal, default_function_id};
pub use text::{
    Fund, FundTarget, XdrSummaryTerms, functions_text, fund_text, payload_text, treasury_transfer,
    xdr_summary,
};
pub use wire::{SnsSubaccount, TransferSnsTreasuryFunds};

/// The lowest id of a generic function: SNS governance keeps 0-999 for its
/// native functions.
pub const FIRST_FUNCTION_ID: u64 = 1000;

/// `from_treasury` of TransferSnsTreasuryFunds: the DAO's ICP treasury.
pub const ICP_TREASURY: i32 = 1;

/// Above this many payload bytes SNS governance may refuse the proposal:
/// its `PROPOSAL_EXECUTE_SNS_FUNCTION_PAYLOAD_BYTES_MAX` (not enforced by
/// current versions, but declared).
pub const PAYLOAD_SOFT_LIMIT: usize = 70_000;
