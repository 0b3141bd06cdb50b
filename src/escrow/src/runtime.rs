//! Side effects of the escrow's logic: the clock and its own id (the
//! shared [`SystemApi`]), reads of ledgers' blocks (the shared
//! [`BlockSource`]), transfers (the shared [`LedgerCalls`]), the other
//! calls to ledgers and the moves of old event-log blocks to the archive
//! (the shared [`ArchiveCalls`]). Production uses [`IcRuntime`] (ic-cdk); native tests
//! use a fake ledger that can fail, reject or leave an outcome unknown.

use candid::Nat;
use canister_common::ledger::call;
use icrc_ledger_types::icrc1::account::Account;
use market_api::{Principal, StandardRecord, Tokens};

pub use canister_common::archiving::ArchiveCalls;
pub use canister_common::ledger::{CallFailure, LedgerCalls};
pub use canister_common::ledger_blocks::BlockSource;
pub use canister_common::runtime::{IcRuntime, SystemApi};

/// The escrow's view of the outside world.
///
/// Canisters run one message at a time, so the futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Runtime: SystemApi + BlockSource + LedgerCalls + ArchiveCalls {
    /// `icrc1_fee` of `ledger`.
    async fn icrc1_fee(&self, ledger: Principal) -> Result<Tokens, CallFailure>;
    /// `icrc1_symbol` of `ledger`.
    async fn icrc1_symbol(&self, ledger: Principal) -> Result<String, CallFailure>;
    /// `icrc1_supported_standards` of `ledger`.
    async fn icrc1_supported_standards(
        &self,
        ledger: Principal,
    ) -> Result<Vec<StandardRecord>, CallFailure>;
    /// `icrc1_balance_of` of `account` on `ledger`.
    async fn icrc1_balance_of(
        &self,
        ledger: Principal,
        account: Account,
    ) -> Result<Tokens, CallFailure>;
}

/// Converts a ledger amount to [`Tokens`]; `None` if it does not fit.
pub fn nat_to_tokens(n: &Nat) -> Option<Tokens> {
    u128::try_from(&n.0).ok()
}

impl Runtime for IcRuntime {
    async fn icrc1_fee(&self, ledger: Principal) -> Result<Tokens, CallFailure> {
        let fee: Nat = call(ledger, "icrc1_fee", &()).await?;
        nat_to_tokens(&fee).ok_or(CallFailure::Rejected {
            code: 0,
            message: format!("fee {fee} does not fit 128 bits"),
        })
    }

    async fn icrc1_symbol(&self, ledger: Principal) -> Result<String, CallFailure> {
        call(ledger, "icrc1_symbol", &()).await
    }

    async fn icrc1_supported_standards(
        &self,
        ledger: Principal,
    ) -> Result<Vec<StandardRecord>, CallFailure> {
        call(ledger, "icrc1_supported_standards", &()).await
    }

    async fn icrc1_balance_of(
        &self,
        ledger: Principal,
        account: Account,
    ) -> Result<Tokens, CallFailure> {
        let balance: Nat = call(ledger, "icrc1_balance_of", &account).await?;
        nat_to_tokens(&balance).ok_or(CallFailure::Rejected {
            code: 0,
            message: format!("balance {balance} does not fit 128 bits"),
        })
    }
}
