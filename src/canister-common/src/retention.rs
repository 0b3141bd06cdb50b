//! Time indexes: stable maps `(when, key) -> ()` of records kept for a
//! retention, oldest first, from which a timer deletes in bounded runs
//! those whose retention has ended.

use ic_stable_structures::{Memory, StableBTreeMap, Storable};

/// A time index of records kept for a retention.
pub trait TimeIndex<K> {
    /// The entries at least `retention_secs` old at `now_ns`, oldest first.
    fn expired(&self, now_ns: u64, retention_secs: u64) -> impl Iterator<Item = (u64, K)>;

    /// Removes the oldest `budget` entries at least `retention_secs` old at
    /// `now_ns` (fewer if there are fewer) and returns them, for the caller
    /// to delete their records.
    fn take_expired(&mut self, now_ns: u64, retention_secs: u64, budget: usize) -> Vec<(u64, K)>;
}

impl<K, M> TimeIndex<K> for StableBTreeMap<(u64, K), (), M>
where
    (u64, K): Storable + Ord + Clone,
    M: Memory,
{
    fn expired(&self, now_ns: u64, retention_secs: u64) -> impl Iterator<Item = (u64, K)> {
        let retention = retention_secs.saturating_mul(1_000_000_000);
        self.keys()
            .take_while(move |(at, _)| now_ns.saturating_sub(*at) >= retention)
    }

    fn take_expired(&mut self, now_ns: u64, retention_secs: u64, budget: usize) -> Vec<(u64, K)> {
        let due: Vec<(u64, K)> = self.expired(now_ns, retention_secs).take(budget).collect();
        for entry in &due {
            self.remove(entry);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn only_entries_past_their_retention_are_taken_oldest_first() {
        let mut index: StableBTreeMap<(u64, u64), (), _> =
            StableBTreeMap::init(VectorMemory::default());
        for (at, key) in [(5 * SEC, 1), (SEC, 2), (3 * SEC, 3), (9 * SEC, 4)] {
            index.insert((at, key), ());
        }
        // At 10 s with a 5 s retention, the entries at 1, 3 and 5 s are due.
        let due: Vec<_> = index.expired(10 * SEC, 5).collect();
        assert_eq!(due, vec![(SEC, 2), (3 * SEC, 3), (5 * SEC, 1)]);
        assert_eq!(
            index.take_expired(10 * SEC, 5, 2),
            vec![(SEC, 2), (3 * SEC, 3)]
        );
        assert_eq!(index.len(), 2);
        assert_eq!(index.take_expired(10 * SEC, 5, 2), vec![(5 * SEC, 1)]);
        assert_eq!(index.take_expired(10 * SEC, 5, 2), vec![]);
        assert_eq!(index.len(), 1);
    }
}
