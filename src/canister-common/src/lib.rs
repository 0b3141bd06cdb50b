//! Pieces every marketplace canister uses the same way: the rule and the
//! chunked pass of the audit of its books after an upgrade, a CBOR codec for
//! values in stable structures, the append-only public event log, guards
//! that stop two messages for the same key from interleaving at an `.await`,
//! the one stable memory manager, the ingress rules of
//! `canister_inspect_message`, the `/metrics` page writer, the search of a
//! ledger's block log for a transfer whose outcome was lost, and the system
//! API that each canister's runtime trait builds on.
//!
//! Only the default methods of [`runtime::SystemApi`] and
//! [`ledger_blocks::BlockSource`] call the IC;
//! everything else runs in native tests.

pub mod audit;
pub mod codec;
pub mod event_log;
pub mod guard;
pub mod ingress;
pub mod ledger_blocks;
pub mod memory;
pub mod metrics;
pub mod runtime;
