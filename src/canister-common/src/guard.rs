//! Guards that keep two messages for the same key (a principal, a job) from
//! interleaving at an `.await`.
//!
//! A guard is taken before the first await and released when dropped, which
//! also happens when ic-cdk cleans up after a trap in a callback; so a key is
//! never left locked.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::thread::LocalKey;

/// Most operations in flight at once across all keys of one guard set.
pub const MAX_CONCURRENT: usize = 100;

/// Why a guard could not be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardError {
    /// An operation for the same key is in flight.
    AlreadyProcessing,
    /// Too many operations are in flight.
    TooManyConcurrentRequests,
}

/// Holds `key` in `set` until dropped.
#[must_use = "the key is released as soon as the guard is dropped"]
pub struct Guard<K: Ord + Clone + 'static> {
    set: &'static LocalKey<RefCell<BTreeSet<K>>>,
    key: K,
}

impl<K: Ord + Clone + 'static> Guard<K> {
    /// Takes `key` in `set`, failing if it is already held or the set is full.
    pub fn new(set: &'static LocalKey<RefCell<BTreeSet<K>>>, key: K) -> Result<Self, GuardError> {
        set.with(|s| {
            let mut s = s.borrow_mut();
            if s.contains(&key) {
                return Err(GuardError::AlreadyProcessing);
            }
            if s.len() >= MAX_CONCURRENT {
                return Err(GuardError::TooManyConcurrentRequests);
            }
            s.insert(key.clone());
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
    fn concurrency_is_capped() {
        let guards: Vec<_> = (100..100 + MAX_CONCURRENT as u32)
            .map(|k| Guard::new(&HELD, k).unwrap())
            .collect();
        assert_eq!(
            Guard::new(&HELD, 9999).err(),
            Some(GuardError::TooManyConcurrentRequests)
        );
        drop(guards);
        assert!(Guard::new(&HELD, 9999).is_ok());
    }
}
