//! The append-only public event log each canister keeps in stable memory,
//! kept as a certified ICRC-3 hash chain.
//!
//! # Design
//!
//! Each event is a block of the chain ([`market_api::blocks`] gives the
//! block format and its hash). The events stay in the `Log` they always
//! lived in, as CBOR; beside them a stable `Vec` holds the hash of every
//! block, so block `i` is served by reading event `i` and the hash of block
//! `i - 1`, and the tip (length, last hash) is read in O(1): an append hashes
//! one block and pushes one hash. Both survive upgrades with the memories.
//!
//! A log written before the chain existed has events and no hashes. Opening
//! it chains at most [`CHAIN_AT_OPEN`] events, from the first one missing a
//! hash, and each later append chains at most [`CHAIN_PER_APPEND`] more, so
//! no message does unbounded work and nothing panics in `post_upgrade`.
//! Until the hashes catch up, the certified chain (what `icrc3_get_blocks`
//! serves and the tip certifies) is a prefix of the log; `get_events`
//! serves the whole log as before.
//!
//! # Certification
//!
//! The canister's certified data is the root hash of the ICRC-3 tip tree
//! ([`market_api::blocks::tip_tree`]). [`EventLog::append`] sets it itself
//! (on wasm32, where there is a canister to certify), so no update or timer
//! that appends can forget to: the appends of one message each set it and
//! the last one stands. Appends happen only in updates and timers, never in
//! queries, where setting certified data would trap. An upgrade may clear
//! the certified data, so `init` and `post_upgrade` call
//! [`EventLog::certify`] (opening the log never certifies: the state may
//! first be opened in a query).

use crate::codec::Cbor;
use candid::Nat;
use ic_stable_structures::{Log, Memory, Vec as StableVec};
use icrc_ledger_types::icrc::generic_value::ICRC3Value;
use icrc_ledger_types::icrc3::blocks::{
    BlockWithId, GetBlocksRequest, GetBlocksResult, ICRC3DataCertificate, SupportedBlockType,
};
use market_api::blocks::{
    self, BLOCK_TYPES_URL, BlockEvent, EncodeError, Hash, MAX_BLOCKS_PER_QUERY,
    MAX_RANGES_PER_QUERY,
};
use market_api::{EventPage, EventRecord, PageRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Most events of a log written before the chain existed that opening it
/// chains.
pub const CHAIN_AT_OPEN: u64 = 2_000;

/// Most events an append chains (its own, and older ones still missing a
/// hash); at least 1, so a caught-up log stays caught up.
pub const CHAIN_PER_APPEND: u64 = 16;

/// An append-only log of `E` events with their times, paged in order and
/// chained as certified ICRC-3 blocks.
pub struct EventLog<E: Serialize + DeserializeOwned, M: Memory> {
    log: Log<Cbor<EventRecord<E>>, M, M>,
    /// The hash of block `i` at `i`, for every chained event.
    hashes: StableVec<Hash, M>,
}

impl<E, M> EventLog<E, M>
where
    E: BlockEvent + Serialize + DeserializeOwned + Clone,
    M: Memory,
{
    /// Opens the log kept in the memories (creating it if they are empty)
    /// and chains up to [`CHAIN_AT_OPEN`] events that have no hash yet.
    pub fn init(index_memory: M, data_memory: M, hash_memory: M) -> Self {
        Self::init_chaining(index_memory, data_memory, hash_memory, CHAIN_AT_OPEN)
    }

    fn init_chaining(index_memory: M, data_memory: M, hash_memory: M, max: u64) -> Self {
        let mut log = Self {
            log: Log::init(index_memory, data_memory),
            hashes: StableVec::init(hash_memory),
        };
        // An event that can't be mapped stops the chain here; appends will
        // report it (this may run in `post_upgrade`, which must not trap).
        let _ = log.chain(max);
        log
    }

    /// Appends an event; returns its sequence number. Chains it (after any
    /// older events still missing a hash, at most [`CHAIN_PER_APPEND`]) and,
    /// in a canister, certifies the new tip.
    pub fn append(&mut self, time_ns: u64, event: E) -> u64 {
        let seq = self.log.len();
        let record = EventRecord {
            seq,
            time_ns,
            event,
        };
        let seq = match self.log.append(&Cbor(record)) {
            Ok(seq) => seq,
            Err(e) => panic!("BUG: event log is out of stable memory: {e:?}"),
        };
        if let Err(e) = self.chain(CHAIN_PER_APPEND) {
            panic!("BUG: an event has no ICRC-3 value: {e}");
        }
        self.certify();
        seq
    }

    /// Hashes up to `max` events that have none yet, in order.
    fn chain(&mut self, max: u64) -> Result<(), EncodeError> {
        for _ in 0..max {
            let index = self.hashes.len();
            let Some(block) = self.block(index)? else {
                return Ok(());
            };
            self.hashes.push(&blocks::block_hash(&block));
        }
        Ok(())
    }

    /// Block `index` built from its event and the hash of the block before,
    /// if both exist.
    fn block(&self, index: u64) -> Result<Option<ICRC3Value>, EncodeError> {
        let phash = match index.checked_sub(1) {
            None => None,
            Some(before) => match self.hashes.get(before) {
                Some(h) => Some(h),
                None => return Ok(None),
            },
        };
        let Some(Cbor(record)) = self.log.get(index) else {
            return Ok(None);
        };
        let ev = blocks::to_value(&record.event)?;
        Ok(Some(blocks::block(
            phash,
            record.time_ns,
            E::BLOCK_TYPE,
            ev,
        )))
    }

    /// Number of events chained (the ICRC-3 log length); equal to
    /// [`Self::len`] unless events written before the chain existed are
    /// still being chained.
    pub fn chained_len(&self) -> u64 {
        self.hashes.len()
    }

    /// The last chained block's index and hash, if any.
    pub fn tip(&self) -> Option<(u64, Hash)> {
        let last = self.hashes.len().checked_sub(1)?;
        self.hashes.get(last).map(|h| (last, h))
    }

    /// The root hash of the tip tree: what the canister certifies (`None`
    /// while nothing is chained).
    pub fn certified_root(&self) -> Option<Hash> {
        self.tip()
            .map(|(index, hash)| blocks::tip_tree(index, &hash).digest())
    }

    /// Sets the canister's certified data to [`Self::certified_root`]
    /// (nothing while nothing is chained). Only in updates, timers, `init`
    /// and `post_upgrade`: it traps in queries.
    pub fn certify(&self) {
        if let Some(root) = self.certified_root() {
            certified_data::set(&root);
        }
    }

    /// The ICRC-3 tip certificate: the IC's certificate of this canister's
    /// data and the tip tree under it, as CBOR. `None` while nothing is
    /// chained, or outside a non-replicated query (no certificate exists).
    pub fn tip_certificate(&self) -> Option<ICRC3DataCertificate> {
        let (index, hash) = self.tip()?;
        let certificate = certified_data::certificate()?;
        let mut hash_tree = Vec::new();
        ciborium::into_writer(&blocks::tip_tree(index, &hash), &mut hash_tree).ok()?;
        Some(ICRC3DataCertificate {
            certificate: serde_bytes::ByteBuf::from(certificate),
            hash_tree: serde_bytes::ByteBuf::from(hash_tree),
        })
    }

    /// `icrc3_get_blocks`: the chained blocks of each requested range, at
    /// most [`MAX_BLOCKS_PER_QUERY`] in all from the first
    /// [`MAX_RANGES_PER_QUERY`] ranges. Nothing is archived.
    pub fn get_blocks(&self, ranges: &[GetBlocksRequest]) -> GetBlocksResult {
        let len = self.chained_len();
        let mut left = MAX_BLOCKS_PER_QUERY;
        let mut found = Vec::new();
        for range in ranges.iter().take(MAX_RANGES_PER_QUERY) {
            let Ok(start) = u64::try_from(range.start.0.clone()) else {
                continue;
            };
            let length = u64::try_from(range.length.0.clone()).unwrap_or(u64::MAX);
            let end = start.saturating_add(length.min(left)).min(len);
            for index in start..end {
                if let Ok(Some(block)) = self.block(index) {
                    found.push(BlockWithId {
                        id: Nat::from(index),
                        block,
                    });
                    left -= 1;
                }
            }
        }
        GetBlocksResult {
            log_length: Nat::from(len),
            blocks: found,
            archived_blocks: Vec::new(),
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

/// `icrc3_supported_block_types`: the one block type of a log of `E`.
pub fn supported_block_types<E: BlockEvent>() -> Vec<SupportedBlockType> {
    vec![SupportedBlockType {
        block_type: E::BLOCK_TYPE.to_string(),
        url: BLOCK_TYPES_URL.to_string(),
    }]
}

/// The canister's certified data: the system API on wasm32; elsewhere (native
/// tests) a per-thread cell that tests read back.
mod certified_data {
    #[cfg(target_family = "wasm")]
    pub fn set(root: &[u8; 32]) {
        ic_cdk::api::certified_data_set(root);
    }

    #[cfg(target_family = "wasm")]
    pub fn certificate() -> Option<Vec<u8>> {
        ic_cdk::api::data_certificate()
    }

    #[cfg(not(target_family = "wasm"))]
    thread_local! {
        static CERTIFIED: std::cell::Cell<Option<[u8; 32]>> = const { std::cell::Cell::new(None) };
    }

    #[cfg(not(target_family = "wasm"))]
    pub fn set(root: &[u8; 32]) {
        CERTIFIED.with(|c| c.set(Some(*root)));
    }

    /// What was last certified on this thread.
    #[cfg(not(target_family = "wasm"))]
    pub fn get() -> Option<[u8; 32]> {
        CERTIFIED.with(|c| c.get())
    }

    #[cfg(not(target_family = "wasm"))]
    pub fn certificate() -> Option<Vec<u8>> {
        None
    }
}

/// What the log last certified on this thread (native tests; a canister's
/// certified data is read from a certificate).
#[cfg(not(target_family = "wasm"))]
pub fn last_certified_root() -> Option<Hash> {
    certified_data::get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::{CandidType, Deserialize};
    use ic_stable_structures::VectorMemory;
    use proptest::prelude::*;

    /// A test event.
    #[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    struct Note(String);

    impl BlockEvent for Note {
        const BLOCK_TYPE: &'static str = "market.test";
    }

    fn note(s: &str) -> Note {
        Note(s.to_string())
    }

    #[derive(Clone, Default)]
    struct Memories([VectorMemory; 3]);

    impl Memories {
        fn open(&self) -> EventLog<Note, VectorMemory> {
            let [index, data, hashes] = self.0.clone();
            EventLog::init(index, data, hashes)
        }
    }

    fn log() -> EventLog<Note, VectorMemory> {
        Memories::default().open()
    }

    fn block_of(l: &EventLog<Note, VectorMemory>, i: u64) -> ICRC3Value {
        let found = l.get_blocks(&[GetBlocksRequest {
            start: Nat::from(i),
            length: Nat::from(1u8),
        }]);
        assert_eq!(found.blocks.len(), 1, "block {i}");
        assert_eq!(found.blocks[0].id, Nat::from(i));
        found.blocks[0].block.clone()
    }

    #[test]
    fn appends_in_order_with_times() {
        let mut l = log();
        assert!(l.is_empty());
        assert_eq!(l.append(10, note("a")), 0);
        assert_eq!(l.append(20, note("b")), 1);
        let page = l.page(&PageRequest::default());
        assert_eq!(page.total, 2);
        assert_eq!(page.next, None);
        assert_eq!(
            page.events[1],
            EventRecord {
                seq: 1,
                time_ns: 20,
                event: note("b")
            }
        );
    }

    #[test]
    fn each_block_holds_the_hash_of_the_one_before_and_the_tip_is_the_last() {
        let mut l = log();
        assert_eq!(l.tip(), None);
        assert_eq!(l.certified_root(), None);
        for (i, text) in ["a", "b", "c"].into_iter().enumerate() {
            l.append(100 + i as u64, note(text));
            let index = i as u64;
            let block = block_of(&l, index);
            let parts = blocks::block_parts(&block).unwrap();
            assert_eq!(parts.ts_ns, 100 + index);
            assert_eq!(parts.btype, "market.test");
            assert_eq!(parts.ev, &blocks::to_value(&note(text)).unwrap());
            let expected_phash = index
                .checked_sub(1)
                .map(|p| blocks::block_hash(&block_of(&l, p)));
            assert_eq!(parts.phash, expected_phash);
            let tip = (index, blocks::block_hash(&block));
            assert_eq!(l.tip(), Some(tip));
            let root = blocks::tip_tree(tip.0, &tip.1).digest();
            assert_eq!(l.certified_root(), Some(root));
            assert_eq!(last_certified_root(), Some(root), "append certifies");
        }
        assert_eq!(l.chained_len(), 3);
    }

    #[test]
    fn a_fixed_log_has_a_fixed_tip() {
        // A change of the block encoding must fail here: certified logs
        // would stop verifying.
        let mut l = log();
        l.append(1_000, note("a"));
        l.append(2_000, note("b"));
        let (index, hash) = l.tip().unwrap();
        assert_eq!(index, 1);
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "b1b7d3e8776cde907d32f07886ba4c7cf388e717d730480fc707286423df5c44"
        );
    }

    #[test]
    fn reopening_the_memories_keeps_the_chain() {
        let memories = Memories::default();
        let mut reopened = memories.open();
        let mut never = log();
        for i in 0..5 {
            reopened.append(i, note(&format!("e{i}")));
            never.append(i, note(&format!("e{i}")));
        }
        let tip = reopened.tip();
        drop(reopened);
        let mut reopened = memories.open();
        assert_eq!(reopened.tip(), tip);
        reopened.append(9, note("after"));
        never.append(9, note("after"));
        assert_eq!(reopened.tip(), never.tip());
        assert_eq!(reopened.tip().unwrap().0, 5);
    }

    #[test]
    fn a_log_written_before_the_chain_is_chained_in_bounded_steps() {
        let memories = Memories::default();
        let [index, data, _] = memories.0.clone();
        let old: Log<Cbor<EventRecord<Note>>, _, _> = Log::init(index, data);
        let mut never = log();
        for i in 0..40u64 {
            let event = note(&format!("old{i}"));
            old.append(&Cbor(EventRecord {
                seq: i,
                time_ns: i,
                event: event.clone(),
            }))
            .unwrap();
            never.append(i, event);
        }
        drop(old);
        let [index, data, hashes] = memories.0.clone();
        let mut l = EventLog::<Note, _>::init_chaining(index, data, hashes, 3);
        assert_eq!(l.len(), 40);
        assert_eq!(l.chained_len(), 3);
        assert_eq!(l.get_blocks(&[range(0, 100)]).blocks.len(), 3);
        l.append(40, note("new"));
        never.append(40, note("new"));
        assert_eq!(l.chained_len(), 3 + CHAIN_PER_APPEND);
        l.append(41, note("new2"));
        never.append(41, note("new2"));
        l.append(42, note("new3"));
        never.append(42, note("new3"));
        assert_eq!(l.chained_len(), 43);
        assert_eq!(l.tip(), never.tip());
    }

    fn range(start: u64, length: u64) -> GetBlocksRequest {
        GetBlocksRequest {
            start: Nat::from(start),
            length: Nat::from(length),
        }
    }

    #[test]
    fn get_blocks_is_bounded_and_serves_the_requested_ranges() {
        let mut l = log();
        for i in 0..150 {
            l.append(i, note("x"));
        }
        let all = l.get_blocks(&[range(0, 1_000)]);
        assert_eq!(all.log_length, Nat::from(150u8));
        assert_eq!(all.blocks.len() as u64, MAX_BLOCKS_PER_QUERY);
        assert!(all.archived_blocks.is_empty());
        let some = l.get_blocks(&[range(148, 5), range(3, 2), range(500, 1)]);
        let ids: Vec<Nat> = some.blocks.iter().map(|b| b.id.clone()).collect();
        assert_eq!(ids, [148u8, 149, 3, 4].map(Nat::from));
        let huge = GetBlocksRequest {
            start: Nat::from(u128::MAX),
            length: Nat::from(u128::MAX),
        };
        assert!(l.get_blocks(&[huge]).blocks.is_empty());
        let many = vec![range(0, 1); 1_000];
        assert_eq!(l.get_blocks(&many).blocks.len(), MAX_RANGES_PER_QUERY);
    }

    proptest! {
        #[test]
        fn pages_cover_the_log_exactly_once(n in 0u64..60, limit in 1u32..9) {
            let mut l = log();
            for i in 0..n { l.append(i, note(&format!("e{i}"))); }
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
