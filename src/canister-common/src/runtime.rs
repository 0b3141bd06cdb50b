//! The side effects every canister's logic shares: the clock, the
//! canister's own id and its cycle balance.
//!
//! Each canister's runtime trait (`escrow::runtime::Runtime`,
//! `registry::runtime::Runtime`, `matcher::runtime::Runtime`) extends
//! [`SystemApi`] with the calls that canister makes, and implements it for
//! the shared [`IcRuntime`]. Logic takes `&impl Runtime`; the deployed
//! canister passes [`IcRuntime`], native tests a fake.

use candid::Principal;

/// The system API shared by the canisters' runtimes.
///
/// The default methods call ic-cdk, so a deployed canister's runtime
/// implements this trait with an empty `impl`; a native test's fake
/// overrides every method (ic-cdk's system API panics off the IC).
pub trait SystemApi {
    /// Current IC time in nanoseconds since the epoch.
    fn now_ns(&self) -> u64 {
        ic_cdk::api::time()
    }

    /// The canister's own principal.
    fn self_id(&self) -> Principal {
        ic_cdk::api::canister_self()
    }

    /// The canister's cycle balance (`ic0.canister_cycle_balance128`).
    fn cycle_balance(&self) -> u128 {
        ic_cdk::api::canister_cycle_balance()
    }

    /// The cycles above the canister's freezing threshold
    /// (`ic0.canister_liquid_cycle_balance128`).
    fn liquid_cycle_balance(&self) -> u128 {
        ic_cdk::api::canister_liquid_cycle_balance()
    }
}

/// The runtime of a deployed canister: ic-cdk's system API and bounded-wait
/// calls (a timed-out call is an unknown outcome, reconciled by a retry),
/// through the default methods of the shared traits. Each canister adds its
/// own `Runtime` trait's calls to it.
pub struct IcRuntime;

impl SystemApi for IcRuntime {}

impl crate::ledger_blocks::BlockSource for IcRuntime {}

impl crate::ledger::LedgerCalls for IcRuntime {}

impl crate::archiving::ArchiveCalls for IcRuntime {}
