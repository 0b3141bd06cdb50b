//! The canister's one memory manager: every stable structure gets its
//! virtual memory from it by the `MemoryId` its canister's `memory` module
//! declares (and never reuses). The ids every canister uses alike, for its
//! configuration and its event log, are declared here.

use ic_stable_structures::DefaultMemoryImpl;
pub use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::memory_manager::{MemoryManager, VirtualMemory};
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

/// The ids above, and the retired ones: no canister declares them again.
pub const SHARED_AND_RETIRED: [u8; 6] = [0, 1, 2, 200, 201, 202];

/// Declares a canister's own stable memory ids, each a `pub const`
/// [`MemoryId`] (`NAME = id;`, with its doc comment), and checks when the
/// canister compiles that no id is declared twice or is one of
/// [`SHARED_AND_RETIRED`]: two structures on one id would overwrite each
/// other's bytes.
#[macro_export]
macro_rules! memory_ids {
    ($($(#[$attr:meta])* $name:ident = $id:literal;)+) => {
        $($(#[$attr])* pub const $name: $crate::memory::MemoryId =
            $crate::memory::MemoryId::new($id);)+
        const _: () = $crate::memory::check_ids(&[$($id),+]);
    };
}

/// Panics (at compile time, in [`memory_ids!`]) if an id repeats or is one
/// of [`SHARED_AND_RETIRED`].
pub const fn check_ids(ids: &[u8]) {
    let mut i = 0;
    while i < ids.len() {
        let mut j = 0;
        while j < SHARED_AND_RETIRED.len() {
            if ids[i] == SHARED_AND_RETIRED[j] {
                panic!("a memory id every canister shares, or a retired one, declared again");
            }
            j += 1;
        }
        let mut k = i + 1;
        while k < ids.len() {
            if ids[i] == ids[k] {
                panic!("a memory id declared twice");
            }
            k += 1;
        }
        i += 1;
    }
}

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

#[cfg(test)]
mod tests {
    use super::check_ids;

    #[test]
    fn distinct_ids_of_the_canisters_own_pass() {
        check_ids(&[3, 4, 5, 199, 203, 255]);
    }

    #[test]
    #[should_panic(expected = "declared twice")]
    fn an_id_declared_twice_is_refused() {
        check_ids(&[3, 4, 5, 4]);
    }

    #[test]
    #[should_panic(expected = "shares")]
    fn a_shared_id_declared_again_is_refused() {
        check_ids(&[3, 201]);
    }

    #[test]
    #[should_panic(expected = "retired")]
    fn a_retired_id_is_refused() {
        check_ids(&[3, 200]);
    }
}
