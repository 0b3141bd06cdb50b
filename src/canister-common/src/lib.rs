//! Pieces every marketplace canister uses the same way: the rule and the
//! chunked pass of the audit of its books after an upgrade, a CBOR codec for
//! values in stable structures, the append-only public event log, guards
//! that stop two messages for the same key from interleaving at an `.await`,
//! the one stable memory manager, the ingress rules of
//! `canister_inspect_message`, the `/metrics` page writer, and the system
//! API that each canister's runtime trait builds on.
//!
//! Only [`runtime::SystemApi`]'s default methods call the IC system API;
//! everything else runs in native tests.

pub mod audit;
pub mod codec;
pub mod event_log;
pub mod guard;
pub mod ingress;
pub mod memory;
pub mod metrics;
pub mod runtime;
