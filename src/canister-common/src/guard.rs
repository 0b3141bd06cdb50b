//! Guards that keep two messages for the same key (a principal, a job) from
//! interleaving at an `.await`.
//!
//! A guard is taken before the first await and released when dropped, which
//! also happens when ic-cdk cleans up after a trap in a callback; so a key is
//! never left locked.
//!
//! There is no cap on how many keys a set holds at once. A cap shared by
//! every caller is a resource anyone can exhaust: a crowd of throwaway
//! principals, each with one call waiting on another canister, would make
//! every honest caller's guard fail. Each key is held by at most one call,
//! so a caller can only ever block itself; the number of keys held is the
//! number of calls waiting, which the IC already bounds (every waiting call
//! holds a slot in the canister's bounded output queue to its callee, and a
//! call that finds the queue full fails at once and releases its key).
//! Entry points check who the caller is, and whatever they can check
//! without a call, before taking a guard.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::thread::LocalKey;

/// Why a guard could not be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardError {
    /// An operation for the same key is in flight.
    AlreadyProcessing,
}

/// Holds `key` in `set` until dropped.
#[must_use = "the key is released as soon as the guard is dropped"]
pub struct Guard<K: Ord + Clone + 'static> {
    set: &'static LocalKey<RefCell<BTreeSet<K>>>,
    key: K,
}

impl<K: Ord + Clone + 'static> Guard<K> {
    /// Takes `key` in `set`, failing if it is already held.
    pub fn new(set: &'static LocalKey<RefCell<BTreeSet<K>>>, key: K) -> Result<Self, GuardError> {
        set.with(|s| {
            if !s.borrow_mut().insert(key.clone()) {
                return Err(GuardError::AlreadyProcessing);
            }
            Ok(Guard { set, key })
        })
    }
}

impl<K: Ord + Clone + 'static> Drop for Guard<K> {
    fn drop(&mut self) {
        self.set.with(|s| s.borrow_mut().remove(&self.key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static HELD: RefCell<BTreeSet<u32>> = const { RefCell::new(BTreeSet::new()) };
    }

    #[test]
    fn same_key_is_refused_until_released() {
        let g = Guard::new(&HELD, 1).unwrap();
        assert_eq!(
            Guard::new(&HELD, 1).err(),
            Some(GuardError::AlreadyProcessing)
        );
        let other = Guard::new(&HELD, 2).unwrap();
        drop(g);
        assert!(Guard::new(&HELD, 1).is_ok());
        drop(other);
    }

    #[test]
    fn many_callers_never_block_one_another() {
        let crowd: Vec<_> = (100..10_100u32)
            .map(|k| Guard::new(&HELD, k).unwrap())
            .collect();
        assert!(Guard::new(&HELD, 1).is_ok(), "one more caller is served");
        assert_eq!(
            Guard::new(&HELD, 100).err(),
            Some(GuardError::AlreadyProcessing),
            "a caller still waits for its own call"
        );
        drop(crowd);
    }
}
