//! The escrow's stable memory layout. Every stable structure has its own
//! `MemoryId`, declared here and never reused for anything else (`memory_ids!`
//! refuses, when the canister compiles, an id declared twice); the
//! configuration cell and the event log have the ids every canister gives
//! them (0, 201 and 202, from `canister_common::memory`).

pub use canister_common::memory::{CONFIG, EVENT_LOG_BLOCKS, EVENT_LOG_META, Memory, get};

canister_common::memory_ids! {
    /// Whitelisted ledgers: ledger -> fee and symbol.
    LEDGERS = 3;
    /// Balances: (owner, ledger) -> free, claimable, locked.
    BALANCES = 4;
    /// Job locks: job key -> lock.
    LOCKS = 5;
    /// Releases done: (job key, seq) -> provider and amount (idempotency keys).
    RELEASES = 6;
    /// Ledger calls in flight: (owner, ledger) -> pending operation.
    PENDING = 7;
    /// Counter of operation numbers used in memos.
    NEXT_OP_ID = 8;
    /// Scans of ledgers' blocks for pending operations past their
    /// deduplication window: (owner, ledger) -> where the scan stands.
    BLOCK_SCANS = 9;
    /// Settled locks by when they were settled: (settled at, ns; job key) ->
    /// (), so that [`crate::state::State::prune_settled_locks`] finds those
    /// past their retention in order.
    SETTLED_LOCKS = 10;
}
