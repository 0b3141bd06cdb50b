//! The public event log each canister keeps in stable memory, kept as a
//! certified ICRC-3 hash chain whose oldest blocks move to archive
//! canisters.
//!
//! # Design
//!
//! Each event is a block of the chain ([`market_api::blocks`] gives the
//! block format and its hash). The events the canister still holds are in
//! a `StableBTreeMap` by index, each stored with the hash of the block
//! before it, so block `i` is served from entry `i` alone; a stable cell
//! holds the log's length, the index of the oldest local block, the last
//! block's hash (the tip, read in O(1)) and the archives with their ranges.
//! An append hashes one block and inserts one entry. Unlike a `Log`, the
//! map can drop its oldest entries, so the local log stays bounded.
//!
//! # Archiving
//!
//! Once more than `max_local_blocks` blocks are local and the controllers
//! named an archive (`set_log_archiving`), the canister's timer moves the
//! oldest ones there, at most [`MAX_APPEND_BLOCKS`] per call
//! ([`EventLog::next_batch`], the archive's `append_blocks`,
//! [`EventLog::batch_answered`]; [`crate::archiving`] drives it through
//! the canister's runtime). The local copies are deleted only once the
//! archive answered that it holds them; any other answer (a reject, a
//! bounded wait that timed out, a refusal) leaves them, and the next run
//! sends the same blocks again, which an archive that stored them already
//! takes as a no-op.
//!
//! The archive is deployed beside the canister and named by its
//! controllers, rather than spawned by the canister with `create_canister`
//! and `install_code` as the ICP ledger does: the canister then needs no
//! archive module inside its own, no cycles to create canisters, and the
//! archive's controllers, settings and module are the deployer's, checked
//! and upgraded like the other canisters'. When an archive is full, the
//! controllers name another; [`EventLog::archives`] lists each with its
//! range.
//!
//! `icrc3_get_blocks` serves the local blocks and, for archived indexes,
//! `archived_blocks` callbacks to the archives' `icrc3_get_blocks`.
//! `get_events` serves only what is local: a page asked from an archived
//! sequence number starts at the oldest local event. Archived events are
//! read as blocks from the archives.
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
//! first be opened in a query). Archiving leaves the tip, and so the
//! certified data, as it is.

use crate::codec::Cbor;
use candid::{Nat, Principal};
use ic_stable_structures::{Cell, Memory, StableBTreeMap};
use icrc_ledger_types::icrc::generic_value::ICRC3Value;
use icrc_ledger_types::icrc3::blocks::{
    BlockWithId, GetBlocksRequest, GetBlocksResult, ICRC3DataCertificate, SupportedBlockType,
};
use market_api::blocks::{
    self, AppendBlocksArgs, AppendBlocksError, ArchivedBlocks, BLOCK_TYPES_URL, BlockEvent,
    DEFAULT_MAX_LOCAL_BLOCKS, GetArchivesArgs, Hash, ICRC3ArchiveInfo, LogArchiving,
    LogArchivingError, LogArchivingStatus, MAX_APPEND_BLOCKS, MAX_APPEND_BYTES, MAX_ARCHIVES,
    MAX_BLOCKS_PER_QUERY, MAX_RANGES_PER_QUERY, MIN_MAX_LOCAL_BLOCKS, QueryArchiveFn,
};
use market_api::{EventPage, EventRecord, PageRequest};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How long a move to the archive may stay unanswered before another run
/// takes it for lost and sends the blocks again (a bounded-wait call is
/// answered or times out well within it).
pub const MOVE_TIMEOUT_NS: u64 = 10 * 60 * 1_000_000_000;

/// One local event with the hash of the block before it (`None` for block
/// 0), so its block needs no other entry.
#[derive(Serialize, Deserialize, Clone)]
struct StoredEvent<E> {
    record: EventRecord<E>,
    phash: Option<Hash>,
}

/// The log's bookkeeping, in one stable cell.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct LogMeta {
    /// Blocks ever appended.
    len: u64,
    /// The oldest block still held here; older ones are archived.
    first_local: u64,
    /// The last block's hash.
    tip_hash: Option<Hash>,
    /// Where the oldest blocks move to.
    archive: Option<Principal>,
    /// Local blocks kept before the oldest move.
    max_local_blocks: u64,
    /// The archives, oldest range first; together they hold
    /// `0..first_local`.
    archives: Vec<ArchiveRange>,
}

impl Default for LogMeta {
    fn default() -> Self {
        Self {
            len: 0,
            first_local: 0,
            tip_hash: None,
            archive: None,
            max_local_blocks: DEFAULT_MAX_LOCAL_BLOCKS,
            archives: Vec::new(),
        }
    }
}

/// Blocks `start..end` are in `canister`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct ArchiveRange {
    canister: Principal,
    start: u64,
    end: u64,
}

/// The oldest local blocks, on their way to an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveBatch {
    /// The archive.
    pub archive: Principal,
    /// The `append_blocks` argument: the blocks from the oldest local one.
    pub args: AppendBlocksArgs,
}

impl ArchiveBatch {
    /// One past the last block of the batch.
    pub fn end(&self) -> u64 {
        self.args
            .start
            .saturating_add(self.args.blocks.len() as u64)
    }
}

/// What the archive's answer to a batch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoveOutcome {
    /// The archive holds these blocks; the local copies are gone.
    Moved {
        /// Blocks deleted here.
        blocks: u64,
    },
    /// Nothing was deleted; the blocks are sent again on a later run.
    Kept {
        /// Why.
        reason: String,
    },
}

/// An append-only log of `E` events with their times, paged in order,
/// chained as certified ICRC-3 blocks, its oldest blocks archived.
pub struct EventLog<E: Serialize + DeserializeOwned, M: Memory> {
    events: StableBTreeMap<u64, Cbor<StoredEvent<E>>, M>,
    meta: Cell<Cbor<LogMeta>, M>,
    /// When the batch now on its way to the archive was sent (heap only:
    /// after an upgrade its answer can't arrive, so none is in flight).
    moving_since: Option<u64>,
    /// Why the last move failed (heap only, for `get_log_archiving`).
    last_error: Option<String>,
}

impl<E, M> EventLog<E, M>
where
    E: BlockEvent + Serialize + DeserializeOwned + Clone,
    M: Memory,
{
    /// Opens the log kept in the memories, creating it if they are empty.
    /// Reads nothing else: safe in `post_upgrade`.
    pub fn init(events_memory: M, meta_memory: M) -> Self {
        Self {
            events: StableBTreeMap::init(events_memory),
            meta: Cell::init(meta_memory, Cbor(LogMeta::default())),
            moving_since: None,
            last_error: None,
        }
    }

    fn meta(&self) -> LogMeta {
        self.meta.get().0.clone()
    }

    /// Appends an event; returns its sequence number. Chains it and, in a
    /// canister, certifies the new tip.
    pub fn append(&mut self, time_ns: u64, event: E) -> u64 {
        let mut meta = self.meta();
        let seq = meta.len;
        let ev = match blocks::to_value(&event) {
            Ok(ev) => ev,
            Err(e) => panic!("BUG: an event has no ICRC-3 value: {e}"),
        };
        let block = blocks::block(meta.tip_hash, time_ns, E::BLOCK_TYPE, ev);
        let stored = StoredEvent {
            record: EventRecord {
                seq,
                time_ns,
                event,
            },
            phash: meta.tip_hash,
        };
        self.events.insert(seq, Cbor(stored));
        meta.len = seq + 1;
        meta.tip_hash = Some(blocks::block_hash(&block));
        self.meta.set(Cbor(meta));
        self.certify();
        seq
    }

    /// Local block `index`, built from its entry.
    fn block(&self, index: u64) -> Option<ICRC3Value> {
        let Cbor(stored) = self.events.get(&index)?;
        let ev = blocks::to_value(&stored.record.event).ok()?;
        Some(blocks::block(
            stored.phash,
            stored.record.time_ns,
            E::BLOCK_TYPE,
            ev,
        ))
    }

    /// The last block's index and hash, if any.
    pub fn tip(&self) -> Option<(u64, Hash)> {
        let meta = self.meta();
        let last = meta.len.checked_sub(1)?;
        meta.tip_hash.map(|h| (last, h))
    }

    /// The root hash of the tip tree: what the canister certifies (`None`
    /// while the log is empty).
    pub fn certified_root(&self) -> Option<Hash> {
        self.tip()
            .map(|(index, hash)| blocks::tip_tree(index, &hash).digest())
    }

    /// Sets the canister's certified data to [`Self::certified_root`]
    /// (nothing while the log is empty). Only in updates, timers, `init`
    /// and `post_upgrade`: it traps in queries.
    pub fn certify(&self) {
        if let Some(root) = self.certified_root() {
            certified_data::set(&root);
        }
    }

    /// The ICRC-3 tip certificate: the IC's certificate of this canister's
    /// data and the tip tree under it, as CBOR. `None` while the log is
    /// empty, or outside a non-replicated query (no certificate exists).
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

    /// `icrc3_get_blocks`: of each requested range (the first
    /// [`MAX_RANGES_PER_QUERY`]), the local blocks, at most
    /// [`MAX_BLOCKS_PER_QUERY`] in all, and for the archived part a
    /// callback to the archive holding it, one per archive.
    pub fn get_blocks(&self, ranges: &[GetBlocksRequest]) -> GetBlocksResult {
        let meta = self.meta();
        let mut left = MAX_BLOCKS_PER_QUERY;
        let mut found = Vec::new();
        let mut archived: Vec<ArchivedBlocks> = Vec::new();
        for range in ranges.iter().take(MAX_RANGES_PER_QUERY) {
            let Ok(start) = u64::try_from(range.start.0.clone()) else {
                continue;
            };
            let length = u64::try_from(range.length.0.clone()).unwrap_or(u64::MAX);
            let end = start.saturating_add(length).min(meta.len);
            for a in &meta.archives {
                let (from, to) = (start.max(a.start), end.min(a.end));
                if from >= to {
                    continue;
                }
                let request = GetBlocksRequest {
                    start: Nat::from(from),
                    length: Nat::from(to - from),
                };
                match archived
                    .iter_mut()
                    .find(|b| b.callback.canister_id == a.canister)
                {
                    Some(b) => b.args.push(request),
                    None => archived.push(ArchivedBlocks {
                        args: vec![request],
                        callback: QueryArchiveFn::new(a.canister, "icrc3_get_blocks"),
                    }),
                }
            }
            let local_start = start.max(meta.first_local);
            let local_end = end.min(local_start.saturating_add(left));
            for index in local_start..local_end {
                if let Some(block) = self.block(index) {
                    found.push(BlockWithId {
                        id: Nat::from(index),
                        block,
                    });
                    left -= 1;
                }
            }
        }
        GetBlocksResult {
            log_length: Nat::from(meta.len),
            blocks: found,
            archived_blocks: archived,
        }
    }

    /// `icrc3_get_archives`: the archives with the range each holds
    /// (`end` is the last index it holds, as ICRC-3 has it), from the one
    /// after `args.from` if it names one.
    pub fn archives(&self, args: &GetArchivesArgs) -> Vec<ICRC3ArchiveInfo> {
        let meta = self.meta();
        let skip = match args.from {
            None => 0,
            Some(from) => meta
                .archives
                .iter()
                .position(|a| a.canister == from)
                .map_or(0, |i| i + 1),
        };
        // One entry per range: an archive named again after another holds
        // two ranges.
        meta.archives
            .iter()
            .skip(skip)
            .map(|a| ICRC3ArchiveInfo {
                canister_id: a.canister,
                start: Nat::from(a.start),
                end: Nat::from(a.end - 1),
            })
            .collect()
    }

    /// Number of events recorded, archived ones included.
    pub fn len(&self) -> u64 {
        self.meta.get().0.len
    }

    /// Whether no event was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sequence number of the oldest event held here (`len` when none
    /// is): older ones are in the archives.
    pub fn first_local(&self) -> u64 {
        self.meta.get().0.first_local
    }

    /// Number of events held here.
    pub fn local_len(&self) -> u64 {
        let meta = self.meta.get();
        meta.0.len - meta.0.first_local
    }

    /// One page of the local events, starting at `page.start` or, if that
    /// event is archived, at the oldest local one.
    pub fn page(&self, page: &PageRequest) -> EventPage<E> {
        let meta = self.meta();
        let total = meta.len;
        let start = page.start.unwrap_or(0).max(meta.first_local).min(total);
        let end = start
            .saturating_add(page.effective_limit() as u64)
            .min(total);
        let events = self
            .events
            .range(start..end)
            .map(|e| e.value().0.record)
            .collect();
        EventPage {
            events,
            next: (end < total).then_some(end),
            total,
        }
    }

    /// The newest local events first, at most `max` of them.
    pub fn newest(&self, max: u64) -> impl Iterator<Item = EventRecord<E>> + '_ {
        let meta = self.meta();
        let start = meta.len.saturating_sub(max).max(meta.first_local);
        self.events
            .range(start..meta.len)
            .rev()
            .map(|e| e.value().0.record)
    }

    /// Every local event, in order (for tests).
    pub fn iter(&self) -> impl Iterator<Item = EventRecord<E>> + '_ {
        self.events.iter().map(|e| e.value().0.record)
    }

    /// Changes how the log archives (controllers only; the caller is
    /// checked before). A new archive takes the blocks archived from now on;
    /// the older ones stay where they are.
    pub fn set_archiving(&mut self, change: &LogArchiving) -> Result<(), LogArchivingError> {
        let meta = self.archiving_changed(change)?;
        self.meta.set(Cbor(meta));
        Ok(())
    }

    /// Checks a change of the archiving; nothing changes.
    pub fn check_archiving(&self, change: &LogArchiving) -> Result<(), LogArchivingError> {
        self.archiving_changed(change).map(|_| ())
    }

    fn archiving_changed(&self, change: &LogArchiving) -> Result<LogMeta, LogArchivingError> {
        let mut meta = self.meta();
        if let Some(max) = change.max_local_blocks {
            if max < MIN_MAX_LOCAL_BLOCKS {
                return Err(LogArchivingError::InvalidArgument {
                    field: "max_local_blocks".into(),
                    reason: format!("at least {MIN_MAX_LOCAL_BLOCKS}"),
                });
            }
            meta.max_local_blocks = max;
        }
        if let Some(archive) = change.archive {
            if archive == Principal::anonymous() || archive == Principal::management_canister() {
                return Err(LogArchivingError::InvalidArgument {
                    field: "archive".into(),
                    reason: "not a canister".into(),
                });
            }
            let known = meta.archives.iter().any(|a| a.canister == archive);
            if !known && meta.archives.len() >= MAX_ARCHIVES {
                return Err(LogArchivingError::InvalidArgument {
                    field: "archive".into(),
                    reason: format!("at most {MAX_ARCHIVES} archives"),
                });
            }
            meta.archive = Some(archive);
        }
        Ok(meta)
    }

    /// Where archiving stands.
    pub fn archiving_status(&self) -> LogArchivingStatus {
        let meta = self.meta();
        LogArchivingStatus {
            archive: meta.archive,
            max_local_blocks: meta.max_local_blocks,
            log_length: meta.len,
            first_local_index: meta.first_local,
            last_error: self.last_error.clone(),
        }
    }

    /// Whether blocks are due to move to the archive: one is named, more
    /// than `max_local_blocks` are local, and no batch is on its way (or
    /// the one on its way was sent [`MOVE_TIMEOUT_NS`] ago). Cheap, and
    /// without a call: the upkeep timer asks it on every run.
    pub fn archiving_due(&self, now_ns: u64) -> bool {
        self.due(now_ns).is_some()
    }

    /// The archive, the first local index and how many blocks past
    /// `max_local_blocks` are local, when blocks are due to move.
    fn due(&self, now_ns: u64) -> Option<(Principal, u64, u64)> {
        if let Some(since) = self.moving_since
            && now_ns < since.saturating_add(MOVE_TIMEOUT_NS)
        {
            return None;
        }
        let meta = self.meta();
        let archive = meta.archive?;
        let local = meta.len - meta.first_local;
        let excess = local
            .checked_sub(meta.max_local_blocks)
            .filter(|n| *n > 0)?;
        Some((archive, meta.first_local, excess))
    }

    /// The oldest local blocks to move to the archive, at most
    /// [`MAX_APPEND_BLOCKS`] and about [`MAX_APPEND_BYTES`]: none while no archive is named, no more than
    /// `max_local_blocks` are local, or a batch is on its way (unless it
    /// was sent [`MOVE_TIMEOUT_NS`] ago). The batch counts as on its way
    /// until [`Self::batch_answered`].
    pub fn next_batch(&mut self, now_ns: u64) -> Option<ArchiveBatch> {
        let (archive, start, excess) = self.due(now_ns)?;
        let count = excess.min(MAX_APPEND_BLOCKS as u64);
        let mut blocks: Vec<ICRC3Value> = Vec::new();
        let mut bytes = 0usize;
        for index in start..start + count {
            let Some(block) = self.block(index) else {
                break;
            };
            bytes = bytes.saturating_add(blocks::approx_size(&block));
            if !blocks.is_empty() && bytes > MAX_APPEND_BYTES {
                break;
            }
            blocks.push(block);
        }
        if blocks.is_empty() {
            return None;
        }
        self.moving_since = Some(now_ns);
        Some(ArchiveBatch {
            archive,
            args: AppendBlocksArgs { start, blocks },
        })
    }

    /// Takes the archive's answer to `batch`: `Ok(end)` from an archive
    /// that now holds every block before `end` deletes the local copies of
    /// the batch's blocks before `end`; anything else (`failure`: a refusal
    /// or a failed call, whose outcome may be unknown) keeps them.
    pub fn batch_answered(
        &mut self,
        batch: &ArchiveBatch,
        answer: Result<u64, String>,
    ) -> MoveOutcome {
        self.moving_since = None;
        let archived_to = match answer {
            Ok(end) => end.min(batch.end()),
            Err(reason) => {
                self.last_error = Some(reason.clone());
                return MoveOutcome::Kept { reason };
            }
        };
        let mut meta = self.meta();
        // Only the oldest local blocks are ever sent; an answer to a batch
        // that no longer starts there (an earlier copy of it, answered
        // late) moves only what is still local.
        let from = meta.first_local.max(batch.args.start);
        if batch.args.start > meta.first_local || archived_to <= from {
            let reason = format!(
                "the archive holds blocks up to {archived_to}, none of the local ones from {}",
                meta.first_local
            );
            self.last_error = Some(reason.clone());
            return MoveOutcome::Kept { reason };
        }
        match meta.archives.last_mut() {
            Some(last) if last.canister == batch.archive && last.end == from => {
                last.end = archived_to
            }
            _ => meta.archives.push(ArchiveRange {
                canister: batch.archive,
                start: from,
                end: archived_to,
            }),
        }
        for index in from..archived_to {
            self.events.remove(&index);
        }
        meta.first_local = archived_to;
        self.meta.set(Cbor(meta));
        self.last_error = None;
        MoveOutcome::Moved {
            blocks: archived_to - from,
        }
    }
}

/// The answer of an archive's `append_blocks`, as [`EventLog::batch_answered`]
/// takes it.
pub fn append_answer<F: std::fmt::Debug>(
    answer: Result<Result<u64, AppendBlocksError>, F>,
) -> Result<u64, String> {
    match answer {
        Ok(Ok(end)) => Ok(end),
        Ok(Err(refused)) => Err(format!("the archive refused the blocks: {refused}")),
        Err(failure) => Err(format!("append_blocks failed: {failure:?}")),
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
    struct Memories([VectorMemory; 2]);

    impl Memories {
        fn open(&self) -> EventLog<Note, VectorMemory> {
            let [events, meta] = self.0.clone();
            EventLog::init(events, meta)
        }
    }

    fn log() -> EventLog<Note, VectorMemory> {
        Memories::default().open()
    }

    /// A log of `n` notes `x`, appended at times 0, 1, ...
    fn log_of(n: u64) -> EventLog<Note, VectorMemory> {
        let mut l = log();
        for i in 0..n {
            l.append(i, note("x"));
        }
        l
    }

    /// A log kept in `memories` and a twin that is never reopened or
    /// archived, each with the notes `e0`, `e1`, ... up to `n`, appended at
    /// times 0, 1, ...
    fn twins(
        memories: &Memories,
        n: u64,
    ) -> (EventLog<Note, VectorMemory>, EventLog<Note, VectorMemory>) {
        let (mut kept, mut never) = (memories.open(), log());
        for i in 0..n {
            kept.append(i, note(&format!("e{i}")));
            never.append(i, note(&format!("e{i}")));
        }
        (kept, never)
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
        assert_eq!(l.len(), 3);
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
        let (reopened, mut never) = twins(&memories, 5);
        let tip = reopened.tip();
        drop(reopened);
        let mut reopened = memories.open();
        assert_eq!(reopened.tip(), tip);
        reopened.append(9, note("after"));
        never.append(9, note("after"));
        assert_eq!(reopened.tip(), never.tip());
        assert_eq!(reopened.tip().unwrap().0, 5);
    }

    fn range(start: u64, length: u64) -> GetBlocksRequest {
        GetBlocksRequest {
            start: Nat::from(start),
            length: Nat::from(length),
        }
    }

    #[test]
    fn get_blocks_is_bounded_and_serves_the_requested_ranges() {
        let l = log_of(150);
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

    fn archive_id() -> Principal {
        Principal::from_slice(&[9; 29])
    }

    fn archiving(max_local_blocks: u64) -> LogArchiving {
        LogArchiving {
            archive: Some(archive_id()),
            max_local_blocks: Some(max_local_blocks),
        }
    }

    #[test]
    fn archived_blocks_leave_the_log_and_are_served_by_callbacks() {
        let memories = Memories::default();
        let (mut l, mut never) = twins(&memories, 30);
        assert_eq!(l.next_batch(0), None, "no archive named yet");
        l.set_archiving(&archiving(10)).unwrap();
        let tip = l.tip();
        let batch = l.next_batch(0).unwrap();
        assert_eq!(batch.archive, archive_id());
        assert_eq!(batch.args.start, 0);
        assert_eq!(batch.end(), 20);
        assert_eq!(batch.args.blocks[5], block_of(&never, 5));
        assert_eq!(l.next_batch(1), None, "one batch on its way at a time");
        assert_eq!(
            l.batch_answered(&batch, Ok(20)),
            MoveOutcome::Moved { blocks: 20 }
        );
        assert_eq!((l.len(), l.local_len(), l.first_local()), (30, 10, 20));
        assert_eq!(l.iter().count(), 10);
        assert_eq!(l.tip(), tip, "archiving leaves the tip");
        assert_eq!(l.next_batch(2), None, "10 local blocks are allowed");

        let found = l.get_blocks(&[range(15, 10)]);
        assert_eq!(found.log_length, Nat::from(30u8));
        let ids: Vec<Nat> = found.blocks.iter().map(|b| b.id.clone()).collect();
        assert_eq!(ids, (20u8..25).map(Nat::from).collect::<Vec<_>>());
        assert_eq!(found.blocks[0].block, block_of(&never, 20));
        assert_eq!(found.archived_blocks.len(), 1);
        let callback = &found.archived_blocks[0];
        assert_eq!(callback.callback.canister_id, archive_id());
        assert_eq!(callback.callback.method, "icrc3_get_blocks");
        assert_eq!(callback.args, vec![range(15, 5)]);
        assert_eq!(
            l.archives(&GetArchivesArgs { from: None }),
            vec![ICRC3ArchiveInfo {
                canister_id: archive_id(),
                start: Nat::from(0u8),
                end: Nat::from(19u8),
            }]
        );
        assert!(
            l.archives(&GetArchivesArgs {
                from: Some(archive_id())
            })
            .is_empty()
        );

        // get_events serves what is local, from the oldest local event.
        let page = l.page(&PageRequest {
            start: Some(3),
            limit: Some(4),
        });
        assert_eq!(page.total, 30);
        assert_eq!(page.events[0].seq, 20);
        assert_eq!(page.next, Some(24));
        assert_eq!(l.newest(100).count(), 10);

        // An upgrade keeps all of it, and the chain goes on.
        drop(l);
        let mut l = memories.open();
        assert_eq!((l.len(), l.first_local(), l.tip()), (30, 20, tip));
        assert_eq!(l.archives(&GetArchivesArgs { from: None }).len(), 1);
        for i in 30..45 {
            l.append(i, note("more"));
            never.append(i, note("more"));
        }
        assert_eq!(l.tip(), never.tip());
        let batch = l.next_batch(3).unwrap();
        assert_eq!((batch.args.start, batch.end()), (20, 35));
        assert_eq!(
            l.batch_answered(&batch, Ok(35)),
            MoveOutcome::Moved { blocks: 15 }
        );
        let infos = l.archives(&GetArchivesArgs { from: None });
        assert_eq!(infos.len(), 1, "one archive, one range");
        assert_eq!(infos[0].end, Nat::from(34u8));
    }

    #[test]
    fn a_failed_or_lost_move_keeps_the_blocks_for_the_next_run() {
        let mut l = log_of(5);
        l.set_archiving(&archiving(2)).unwrap();
        let batch = l.next_batch(0).unwrap();
        let kept = l.batch_answered(&batch, Err("timed out".into()));
        assert!(matches!(kept, MoveOutcome::Kept { .. }));
        assert_eq!(l.local_len(), 5);
        assert_eq!(
            l.archiving_status().last_error.as_deref(),
            Some("timed out")
        );
        // The same blocks again.
        assert_eq!(l.next_batch(1), Some(batch.clone()));
        // An answer that never came: after the timeout they are sent again.
        assert_eq!(l.next_batch(2), None);
        assert_eq!(l.next_batch(1 + MOVE_TIMEOUT_NS), Some(batch.clone()));
        // An archive that holds fewer than sent: only those are deleted.
        assert_eq!(
            l.batch_answered(&batch, Ok(2)),
            MoveOutcome::Moved { blocks: 2 }
        );
        assert_eq!(l.first_local(), 2);
        // A late answer to the first copy deletes nothing twice.
        assert_eq!(
            l.batch_answered(&batch, Ok(3)),
            MoveOutcome::Moved { blocks: 1 }
        );
        assert_eq!(l.first_local(), 3);
        assert!(matches!(
            l.batch_answered(&batch, Ok(3)),
            MoveOutcome::Kept { .. }
        ));
        assert_eq!(l.archiving_status().first_local_index, 3);
    }

    #[test]
    fn a_batch_stays_within_its_bytes() {
        let mut l = log();
        let big = "x".repeat(MAX_APPEND_BYTES / 3);
        for i in 0..6 {
            l.append(i, note(&big));
        }
        l.set_archiving(&archiving(1)).unwrap();
        let batch = l.next_batch(0).unwrap();
        assert_eq!(batch.args.blocks.len(), 2, "three would pass the bound");
        let size: usize = batch.args.blocks.iter().map(blocks::approx_size).sum();
        assert!(size <= MAX_APPEND_BYTES);
        l.batch_answered(&batch, Ok(2));
        let mut l2 = log();
        l2.append(0, note(&"y".repeat(2 * MAX_APPEND_BYTES)));
        l2.append(1, note("z"));
        l2.set_archiving(&archiving(1)).unwrap();
        assert_eq!(
            l2.next_batch(0).unwrap().args.blocks.len(),
            1,
            "a block larger than the bound goes alone"
        );
    }

    #[test]
    fn a_new_archive_takes_the_next_range() {
        let mut l = log_of(6);
        l.set_archiving(&archiving(4)).unwrap();
        let batch = l.next_batch(0).unwrap();
        l.batch_answered(&batch, Ok(2));
        let second = Principal::from_slice(&[10; 29]);
        l.set_archiving(&LogArchiving {
            archive: Some(second),
            max_local_blocks: Some(1),
        })
        .unwrap();
        let batch = l.next_batch(1).unwrap();
        assert_eq!((batch.archive, batch.args.start), (second, 2));
        l.batch_answered(&batch, Ok(5));
        let infos = l.archives(&GetArchivesArgs { from: None });
        assert_eq!(infos.len(), 2);
        assert_eq!(
            (
                infos[1].canister_id,
                infos[1].start.clone(),
                infos[1].end.clone()
            ),
            (second, Nat::from(2u8), Nat::from(4u8))
        );
        let found = l.get_blocks(&[range(0, 10)]);
        assert_eq!(found.archived_blocks.len(), 2);
        assert_eq!(found.archived_blocks[1].args, vec![range(2, 3)]);
        assert_eq!(found.blocks.len(), 1);
        assert_eq!(
            l.archives(&GetArchivesArgs {
                from: Some(archive_id())
            })
            .len(),
            1
        );
    }

    #[test]
    fn archiving_settings_are_checked() {
        let mut l = log();
        assert_eq!(
            l.archiving_status().max_local_blocks,
            DEFAULT_MAX_LOCAL_BLOCKS
        );
        assert!(l.set_archiving(&archiving(0)).is_err());
        assert!(
            l.set_archiving(&LogArchiving {
                archive: Some(Principal::anonymous()),
                max_local_blocks: None
            })
            .is_err()
        );
        assert_eq!(l.archiving_status().archive, None);
        l.check_archiving(&archiving(3)).unwrap();
        assert_eq!(
            l.archiving_status().archive,
            None,
            "a check changes nothing"
        );
        l.set_archiving(&archiving(3)).unwrap();
        assert_eq!(l.archiving_status().archive, Some(archive_id()));
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
