//! The registry's stable memory layout. Every stable structure has its own
//! `MemoryId`, declared here and never reused for anything else; the
//! configuration cell and the event log have the ids every canister gives
//! them (0, 201 and 202, from `canister_common::memory`).

#[cfg(test)]
pub use canister_common::memory::reset;
pub use canister_common::memory::{CONFIG, EVENT_LOG_BLOCKS, EVENT_LOG_META, Memory, get};
use ic_stable_structures::memory_manager::MemoryId;

/// Providers by principal bytes.
pub const PROVIDERS: MemoryId = MemoryId::new(3);
/// Bond records by idempotency key.
pub const BONDS: MemoryId = MemoryId::new(4);
/// Slash records by idempotency key.
pub const SLASHES: MemoryId = MemoryId::new(5);
/// Pending ledger transfers by provider principal bytes.
pub const PENDING: MemoryId = MemoryId::new(6);
/// Counters: next operation id, cumulative slashing totals.
pub const COUNTERS: MemoryId = MemoryId::new(7);
/// Node principal bytes to the bytes of the provider it signs for.
pub const NODES: MemoryId = MemoryId::new(8);
/// Slashes that found their provider busy, paid before its next operation.
pub const OWED_SLASHES: MemoryId = MemoryId::new(9);
/// Scans of the ledger's blocks for pending transfers past their
/// deduplication window, by provider principal bytes.
pub const BLOCK_SCANS: MemoryId = MemoryId::new(10);
/// Idempotency keys of `record` calls: key -> provider, event and when.
pub const RECORD_KEYS: MemoryId = MemoryId::new(11);
/// The same keys by when they were recorded: (recorded at, ns; key) -> (),
/// so that [`crate::state::State::prune_record_keys`] finds those past
/// their retention in order.
pub const RECORD_KEY_TIMES: MemoryId = MemoryId::new(12);
