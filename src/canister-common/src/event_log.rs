//! The append-only public event log each canister keeps in stable memory.

use crate::codec::Cbor;
use ic_stable_structures::{Log, Memory};
use market_api::{EventPage, EventRecord, PageRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An append-only log of `E` events with their times, paged in order.
pub struct EventLog<E: Serialize + DeserializeOwned, M: Memory> {
    log: Log<Cbor<EventRecord<E>>, M, M>,
}

impl<E, M> EventLog<E, M>
where
    E: Serialize + DeserializeOwned + Clone,
    M: Memory,
{
    /// Opens the log kept in the two memories (creating it if they are empty).
    pub fn init(index_memory: M, data_memory: M) -> Self {
        Self {
            log: Log::init(index_memory, data_memory),
        }
    }

    /// Appends an event; returns its sequence number.
    pub fn append(&mut self, time_ns: u64, event: E) -> u64 {
        let seq = self.log.len();
        let record = EventRecord {
            seq,
            time_ns,
            event,
        };
        match self.log.append(&Cbor(record)) {
            Ok(seq) => seq,
            Err(e) => panic!("BUG: event log is out of stable memory: {e:?}"),
        }
    }

    /// Number of events recorded.
    pub fn len(&self) -> u64 {
        self.log.len()
    }

    /// Whether no event was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.log.len() == 0
    }

    /// One page of events, starting at `page.start`.
    pub fn page(&self, page: &PageRequest) -> EventPage<E> {
        let total = self.log.len();
        let start = page.start.unwrap_or(0).min(total);
        let end = start
            .saturating_add(page.effective_limit() as u64)
            .min(total);
        let events = (start..end)
            .filter_map(|i| self.log.get(i).map(|c| c.0))
            .collect();
        EventPage {
            events,
            next: (end < total).then_some(end),
            total,
        }
    }

    /// The newest events first, at most `max` of them.
    pub fn newest(&self, max: u64) -> impl Iterator<Item = EventRecord<E>> + '_ {
        let len = self.log.len();
        (len.saturating_sub(max)..len)
            .rev()
            .filter_map(|i| self.log.get(i).map(|c| c.0))
    }

    /// Every event, in order (for replays and tests).
    pub fn iter(&self) -> impl Iterator<Item = EventRecord<E>> + '_ {
        self.log.iter().map(|c| c.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;
    use proptest::prelude::*;

    fn log() -> EventLog<String, VectorMemory> {
        EventLog::init(VectorMemory::default(), VectorMemory::default())
    }

    #[test]
    fn appends_in_order_with_times() {
        let mut l = log();
        assert!(l.is_empty());
        assert_eq!(l.append(10, "a".into()), 0);
        assert_eq!(l.append(20, "b".into()), 1);
        let page = l.page(&PageRequest::default());
        assert_eq!(page.total, 2);
        assert_eq!(page.next, None);
        assert_eq!(
            page.events[1],
            EventRecord {
                seq: 1,
                time_ns: 20,
                event: "b".to_string()
            }
        );
    }

    proptest! {
        #[test]
        fn pages_cover_the_log_exactly_once(n in 0u64..60, limit in 1u32..9) {
            let mut l = log();
            for i in 0..n { l.append(i, format!("e{i}")); }
            let mut seen = Vec::new();
            let mut start = Some(0);
            while let Some(s) = start {
                let page = l.page(&PageRequest { start: Some(s), limit: Some(limit) });
                prop_assert!(page.events.len() <= limit as usize);
                seen.extend(page.events.into_iter().map(|e| e.seq));
                start = page.next;
            }
            prop_assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
    }
}
