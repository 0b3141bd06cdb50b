//! Side effects of the registry's logic: time and its own id (the shared
//! [`SystemApi`]), reads of the ledger's blocks (the shared [`BlockSource`]),
//! transfers (the shared [`LedgerCalls`]), the ledger's fee and the moves
//! of old event-log blocks to the archive (the shared [`ArchiveCalls`]).
//!
//! Logic takes `&impl Runtime`; the canister uses [`IcRuntime`], native tests
//! a fake ledger that can fail, reject, trap or lose the answer.

use candid::{Nat, Principal};
use canister_common::ledger::call;

pub use canister_common::archiving::ArchiveCalls;
pub use canister_common::ledger::{CallFailure, LedgerCalls};
pub use canister_common::ledger_blocks::BlockSource;
pub use canister_common::runtime::{IcRuntime, SystemApi};

/// What the registry's logic needs from the outside world.
#[allow(async_fn_in_trait)]
pub trait Runtime: SystemApi + BlockSource + LedgerCalls + ArchiveCalls {
    /// `icrc1_fee` of `ledger`.
    async fn fee(&self, ledger: Principal) -> Result<Nat, CallFailure>;
}

impl Runtime for IcRuntime {
    async fn fee(&self, ledger: Principal) -> Result<Nat, CallFailure> {
        call(ledger, "icrc1_fee", &()).await
    }
}
