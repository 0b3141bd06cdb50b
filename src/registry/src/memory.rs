//! The registry's stable memory layout. Every stable structure has its own
//! `MemoryId`, declared here and never reused for anything else.

use ic_stable_structures::DefaultMemoryImpl;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use std::cell::RefCell;

/// A virtual memory handed out by the memory manager.
pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// The configuration cell.
pub const CONFIG: MemoryId = MemoryId::new(0);
/// Index memory of the event log.
pub const EVENT_LOG_INDEX: MemoryId = MemoryId::new(1);
/// Data memory of the event log.
pub const EVENT_LOG_DATA: MemoryId = MemoryId::new(2);
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

thread_local! {
    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
}

/// The virtual memory with the given id.
pub fn get(id: MemoryId) -> Memory {
    MEMORY_MANAGER.with(|m| m.borrow().get(id))
}

/// Replaces the memory with a fresh, empty one (native tests only).
#[cfg(test)]
pub fn reset() {
    MEMORY_MANAGER.with(|m| *m.borrow_mut() = MemoryManager::init(DefaultMemoryImpl::default()));
}
