//! The escrow's stable memory layout. Every stable structure has its own
//! `MemoryId`, declared here and never reused for anything else.

pub use canister_common::memory::{Memory, get};
use ic_stable_structures::memory_manager::MemoryId;

/// The configuration cell.
pub const CONFIG: MemoryId = MemoryId::new(0);
/// Index memory of the event log.
pub const EVENT_LOG_INDEX: MemoryId = MemoryId::new(1);
/// Data memory of the event log.
pub const EVENT_LOG_DATA: MemoryId = MemoryId::new(2);
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
