//! The canister's one memory manager: every stable structure gets its
//! virtual memory from it by the `MemoryId` its canister's `memory` module
//! declares (and never reuses).

use ic_stable_structures::DefaultMemoryImpl;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use std::cell::RefCell;

/// A virtual memory handed out by the memory manager.
pub type Memory = VirtualMemory<DefaultMemoryImpl>;

thread_local! {
    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
}

/// The virtual memory with the given id.
pub fn get(id: MemoryId) -> Memory {
    MEMORY_MANAGER.with(|m| m.borrow().get(id))
}

/// Replaces the memory with a fresh, empty one, for native tests that want
/// a new canister (never in a canister: memories already handed out would
/// no longer agree with the manager).
#[cfg(feature = "testing")]
pub fn reset() {
    MEMORY_MANAGER.with(|m| *m.borrow_mut() = MemoryManager::init(DefaultMemoryImpl::default()));
}
