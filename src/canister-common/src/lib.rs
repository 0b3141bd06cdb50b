//! Pieces every marketplace canister uses the same way: a CBOR codec for
//! values in stable structures, the append-only public event log, and guards
//! that stop two messages for the same key from interleaving at an `.await`.
//!
//! Nothing here calls the IC system API, so all of it runs in native tests.

pub mod codec;
pub mod event_log;
pub mod guard;
