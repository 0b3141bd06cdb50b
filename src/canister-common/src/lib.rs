//! Pieces every marketplace canister uses the same way: who administers it,
//! the rule and the
//! chunked pass of the audit of its books after an upgrade, a CBOR codec for
//! values in stable structures, the append-only public event log (a
//! certified ICRC-3 hash chain), guards that stop two messages for the same
//! key from interleaving at an `.await`,
//! the one stable memory manager, the ingress rules of
//! `canister_inspect_message`, the `/metrics` page writer and the cycles
//! it shows (balance and burn rate from the timers' samples), the transfers
//! sent to ledgers, the search of a ledger's block log for a transfer whose
//! outcome was lost, the system API that each canister's runtime trait
//! builds on, and the declaration of a canister's state with its accessors
//! ([`canister_state!`]).
//!
//! Only the default methods of [`runtime::SystemApi`],
//! [`ledger::LedgerCalls`] and [`ledger_blocks::BlockSource`], and the event
//! log's certified data on wasm32 (see [`event_log`]), call the IC;
//! everything else runs in native tests.

pub mod admin;
pub mod audit;
pub mod codec;
pub mod cycles;
pub mod event_log;
pub mod guard;
pub mod ingress;
pub mod ledger;
pub mod ledger_blocks;
pub mod memory;
pub mod metrics;
pub mod runtime;

/// Declares a canister's one state, `STATE`, built by `$open` on its first
/// use, and its accessors `read_state` and `mutate_state`. They take
/// closures, so no borrow of the state can be held across an `.await`.
#[macro_export]
macro_rules! canister_state {
    ($state:ty, $open:expr) => {
        thread_local! {
            static STATE: ::std::cell::RefCell<$state> = ::std::cell::RefCell::new($open);
        }

        /// Reads the state.
        pub fn read_state<R>(f: impl FnOnce(&$state) -> R) -> R {
            STATE.with(|s| f(&s.borrow()))
        }

        /// Changes the state.
        pub fn mutate_state<R>(f: impl FnOnce(&mut $state) -> R) -> R {
            STATE.with(|s| f(&mut s.borrow_mut()))
        }
    };
}
