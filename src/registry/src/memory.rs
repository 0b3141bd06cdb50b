//! The registry's stable memory layout. Every stable structure has its own
//! `MemoryId`, declared here and never reused for anything else (`memory_ids!`
//! refuses, when the canister compiles, an id declared twice); the
//! configuration cell and the event log have the ids every canister gives
//! them (0, 201 and 202, from `canister_common::memory`).

#[cfg(test)]
pub use canister_common::memory::reset;
pub use canister_common::memory::{CONFIG, EVENT_LOG_BLOCKS, EVENT_LOG_META, Memory, get};

canister_common::memory_ids! {
    /// Providers by principal bytes.
    PROVIDERS = 3;
    /// Bond records by idempotency key.
    BONDS = 4;
    /// Slash records by idempotency key.
    SLASHES = 5;
    /// Pending ledger transfers by provider principal bytes.
    PENDING = 6;
    /// Counters: next operation id, cumulative slashing totals.
    COUNTERS = 7;
    /// Node principal bytes to the bytes of the provider it signs for.
    NODES = 8;
    /// Slashes that found their provider busy, paid before its next operation.
    OWED_SLASHES = 9;
    /// Scans of the ledger's blocks for pending transfers past their
    /// deduplication window, by provider principal bytes.
    BLOCK_SCANS = 10;
    /// Idempotency keys of `record` calls: key -> provider, event and when.
    RECORD_KEYS = 11;
    /// The same keys by when they were recorded: (recorded at, ns; key) -> (),
    /// so that [`crate::state::State::prune_record_keys`] finds those past
    /// their retention in order.
    RECORD_KEY_TIMES = 12;
}
