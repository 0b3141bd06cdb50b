//! The canister's one memory manager: every stable structure gets its
//! virtual memory from it by the `MemoryId` its canister's `memory` module
//! declares (and never reuses). The ids every canister uses alike, for its
//! configuration and its event log, are declared here.

use ic_stable_structures::DefaultMemoryImpl;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use std::cell::RefCell;

/// Every canister's configuration cell.
pub const CONFIG: MemoryId = MemoryId::new(0);
// Ids 1 and 2 (the index and data of the event log's former `Log`) and
// 200 (its former block hashes) are retired: never reuse them.

/// The local blocks of every canister's event log (see
/// [`crate::event_log`]); far above the ids each canister numbers from 3 up.
pub const EVENT_LOG_BLOCKS: MemoryId = MemoryId::new(201);
/// The bookkeeping of every canister's event log: length, tip, archives.
pub const EVENT_LOG_META: MemoryId = MemoryId::new(202);

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
