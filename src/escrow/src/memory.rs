//! The escrow's stable memory layout. Every stable structure has its own
//! `MemoryId`, declared here and never reused for anything else; the
//! configuration cell and the event log have the ids every canister gives
//! them (0, 201 and 202, from `canister_common::memory`).

pub use canister_common::memory::{CONFIG, EVENT_LOG_BLOCKS, EVENT_LOG_META, Memory, get};
use ic_stable_structures::memory_manager::MemoryId;

/// Whitelisted ledgers: ledger -> fee and symbol.
pub const LEDGERS: MemoryId = MemoryId::new(3);
/// Balances: (owner, ledger) -> free, claimable, locked.
pub const BALANCES: MemoryId = MemoryId::new(4);
/// Job locks: job key -> lock.
pub const LOCKS: MemoryId = MemoryId::new(5);
/// Releases done: (job key, seq) -> provider and amount (idempotency keys).
pub const RELEASES: MemoryId = MemoryId::new(6);
/// Ledger calls in flight: (owner, ledger) -> pending operation.
pub const PENDING: MemoryId = MemoryId::new(7);
/// Counter of operation numbers used in memos.
pub const NEXT_OP_ID: MemoryId = MemoryId::new(8);
/// Scans of ledgers' blocks for pending operations past their
/// deduplication window: (owner, ledger) -> where the scan stands.
pub const BLOCK_SCANS: MemoryId = MemoryId::new(9);
/// Settled locks by when they were settled: (settled at, ns; job key) ->
/// (), so that [`crate::state::State::prune_settled_locks`] finds those
/// past their retention in order.
pub const SETTLED_LOCKS: MemoryId = MemoryId::new(10);
