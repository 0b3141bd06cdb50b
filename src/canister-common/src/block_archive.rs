//! What an archive canister keeps: consecutive blocks of one owner's
//! ICRC-3 chain, taken only from the owner, in order and idempotently, up
//! to a capacity, and served by `icrc3_get_blocks`.
//!
//! The owner moves its oldest blocks here (see [`crate::event_log`]) and
//! deletes its copies only once this archive answered that it holds them.
//! An answer can be lost after the blocks were stored, so the owner sends
//! them again: blocks the archive already holds are compared with the ones
//! sent and, if equal, taken as a no-op success. A new block must carry the
//! hash of the block before it (if the archive holds that one), so a bug
//! in the owner can't leave a broken chain here.

use crate::codec::Cbor;
use candid::{Nat, Principal};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Cell, Memory, StableBTreeMap, Storable};
use market_api::blocks::{
    self, AppendBlocksArgs, AppendBlocksError, ArchiveInit, ArchiveStatus, BLOCK_TYPES_URL,
    BlockWithId, DEFAULT_ARCHIVE_CAPACITY, GetBlocksRequest, GetBlocksResult, Hash, ICRC3Value,
    MAX_APPEND_BLOCKS, MAX_BLOCKS_PER_QUERY, MAX_RANGES_PER_QUERY, SupportedBlockType,
};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A block stored as Candid (the encoding its type is defined in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlock(pub ICRC3Value);

impl Storable for StoredBlock {
    const BOUND: Bound = Bound::Unbounded;

    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        match candid::encode_one(&self.0) {
            Ok(bytes) => bytes,
            Err(e) => panic!("BUG: a block cannot be encoded as Candid: {e}"),
        }
    }

    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        match candid::decode_one(&bytes) {
            Ok(block) => StoredBlock(block),
            Err(e) => panic!("BUG: stable memory holds an undecodable block: {e}"),
        }
    }
}

/// The archive's bookkeeping.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct ArchiveMeta {
    owner: Principal,
    capacity_blocks: u64,
    /// The index of the first block held; set by the first append.
    first: Option<u64>,
    /// One past the last block held.
    end: u64,
    /// The hash of the last block held.
    last_hash: Option<Hash>,
    /// The type of the blocks held (the owner's log has one).
    btype: Option<String>,
}

/// Blocks `first..end` of one owner's chain.
pub struct BlockArchive<M: Memory> {
    blocks: StableBTreeMap<u64, StoredBlock, M>,
    meta: Cell<Cbor<Option<ArchiveMeta>>, M>,
}

impl<M: Memory> BlockArchive<M> {
    /// Opens the archive kept in the memories (empty if they are).
    pub fn open(blocks_memory: M, meta_memory: M) -> Self {
        Self {
            blocks: StableBTreeMap::init(blocks_memory),
            meta: Cell::init(meta_memory, Cbor(None)),
        }
    }

    /// Sets the owner and capacity at install.
    pub fn install(&mut self, init: &ArchiveInit) {
        self.meta.set(Cbor(Some(ArchiveMeta {
            owner: init.owner,
            capacity_blocks: init.capacity_blocks.unwrap_or(DEFAULT_ARCHIVE_CAPACITY),
            first: None,
            end: 0,
            last_hash: None,
            btype: None,
        })));
    }

    fn meta(&self) -> ArchiveMeta {
        match &self.meta.get().0 {
            Some(meta) => meta.clone(),
            None => panic!("BUG: the archive is used before install"),
        }
    }

    /// The owner named at install.
    pub fn owner(&self) -> Principal {
        self.meta().owner
    }

    /// `append_blocks` from `caller`: stores the blocks it does not hold
    /// yet; returns one past the last block it holds. Checks everything
    /// before it stores anything, so a refusal stores nothing.
    pub fn append(
        &mut self,
        caller: Principal,
        args: &AppendBlocksArgs,
    ) -> Result<u64, AppendBlocksError> {
        let mut meta = self.meta();
        if caller != meta.owner {
            return Err(AppendBlocksError::NotOwner);
        }
        if args.blocks.len() > MAX_APPEND_BLOCKS {
            return Err(AppendBlocksError::TooManyBlocks {
                max: MAX_APPEND_BLOCKS as u64,
            });
        }
        let first = meta.first.unwrap_or(args.start);
        if args.start < first || args.start > meta.end.max(first) {
            return Err(AppendBlocksError::Gap {
                start: args.start,
                expected: meta.end.max(first),
            });
        }
        let mut new = Vec::new();
        let mut last_hash = meta.last_hash;
        for (offset, block) in args.blocks.iter().enumerate() {
            let index = args.start + offset as u64;
            let mismatch = AppendBlocksError::Mismatch { index };
            let parts = blocks::block_parts(block).map_err(|_| mismatch.clone())?;
            if index < meta.end {
                let held = self.blocks.get(&index).map(|b| b.0);
                if held.as_ref() != Some(block) {
                    return Err(mismatch);
                }
                continue;
            }
            if index > first && parts.phash != last_hash {
                return Err(mismatch);
            }
            if meta.btype.as_deref().is_some_and(|t| t != parts.btype) {
                return Err(mismatch);
            }
            last_hash = Some(blocks::block_hash(block));
            new.push((index, block));
        }
        if !new.is_empty() && meta.end.saturating_sub(first) >= meta.capacity_blocks {
            return Err(AppendBlocksError::Full {
                capacity_blocks: meta.capacity_blocks,
            });
        }
        let room = meta.capacity_blocks - meta.end.saturating_sub(first);
        for (index, block) in new
            .into_iter()
            .take(usize::try_from(room).unwrap_or(usize::MAX))
        {
            if meta.btype.is_none() {
                meta.btype = blocks::block_parts(block).ok().map(|p| p.btype.to_string());
            }
            meta.last_hash = Some(blocks::block_hash(block));
            self.blocks.insert(index, StoredBlock(block.clone()));
            meta.first = Some(first);
            meta.end = index + 1;
        }
        self.meta.set(Cbor(Some(meta.clone())));
        Ok(meta.end)
    }

    /// `icrc3_get_blocks`: the blocks held of each requested range (the
    /// first [`MAX_RANGES_PER_QUERY`]), at most [`MAX_BLOCKS_PER_QUERY`] in
    /// all. `log_length` is one past the last block held.
    pub fn get_blocks(&self, ranges: &[GetBlocksRequest]) -> GetBlocksResult {
        let meta = self.meta();
        let mut left = MAX_BLOCKS_PER_QUERY;
        let mut found = Vec::new();
        for range in ranges.iter().take(MAX_RANGES_PER_QUERY) {
            let Ok(start) = u64::try_from(range.start.0.clone()) else {
                continue;
            };
            let length = u64::try_from(range.length.0.clone()).unwrap_or(u64::MAX);
            let end = start.saturating_add(length.min(left)).min(meta.end);
            for (index, block) in self
                .blocks
                .range(start..end.max(start))
                .map(|e| e.into_pair())
            {
                found.push(BlockWithId {
                    id: Nat::from(index),
                    block: block.0,
                });
                left -= 1;
            }
        }
        GetBlocksResult {
            log_length: Nat::from(meta.end),
            blocks: found,
            archived_blocks: Vec::new(),
        }
    }

    /// `icrc3_supported_block_types`: the type of the blocks held.
    pub fn supported_block_types(&self) -> Vec<SupportedBlockType> {
        self.meta()
            .btype
            .into_iter()
            .map(|block_type| SupportedBlockType {
                block_type,
                url: BLOCK_TYPES_URL.to_string(),
            })
            .collect()
    }

    /// Where the archive stands.
    pub fn status(&self) -> ArchiveStatus {
        let meta = self.meta();
        ArchiveStatus {
            owner: meta.owner,
            capacity_blocks: meta.capacity_blocks,
            first_index: meta.first,
            blocks: meta.end.saturating_sub(meta.first.unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;

    fn owner() -> Principal {
        Principal::from_slice(&[7; 29])
    }

    /// Blocks `0..n` of a chain.
    pub(crate) fn chain(n: u64) -> Vec<ICRC3Value> {
        let mut phash = None;
        (0..n)
            .map(|i| {
                let b = blocks::block(phash, i, "market.test", ICRC3Value::Nat(Nat::from(i)));
                phash = Some(blocks::block_hash(&b));
                b
            })
            .collect()
    }

    fn archive(capacity: u64) -> BlockArchive<VectorMemory> {
        let mut a = BlockArchive::open(VectorMemory::default(), VectorMemory::default());
        a.install(&ArchiveInit {
            owner: owner(),
            capacity_blocks: Some(capacity),
        });
        a
    }

    fn args(start: u64, blocks: &[ICRC3Value]) -> AppendBlocksArgs {
        AppendBlocksArgs {
            start,
            blocks: blocks.to_vec(),
        }
    }

    #[test]
    fn takes_blocks_in_order_from_the_owner_only_and_repeats_are_no_ops() {
        let c = chain(10);
        let mut a = archive(100);
        let stranger = Principal::from_slice(&[8; 29]);
        assert_eq!(
            a.append(stranger, &args(0, &c[..3])),
            Err(AppendBlocksError::NotOwner)
        );
        assert_eq!(a.append(owner(), &args(0, &c[..3])), Ok(3));
        // The same blocks again (an answer was lost): nothing changes.
        assert_eq!(a.append(owner(), &args(0, &c[..3])), Ok(3));
        // Overlapping: the new part is taken.
        assert_eq!(a.append(owner(), &args(2, &c[2..6])), Ok(6));
        assert_eq!(
            a.append(owner(), &args(7, &c[7..8])),
            Err(AppendBlocksError::Gap {
                start: 7,
                expected: 6
            })
        );
        // A held block that differs, and a new one off the chain.
        assert_eq!(
            a.append(owner(), &args(5, &c[4..5])),
            Err(AppendBlocksError::Mismatch { index: 5 })
        );
        let other = chain(11);
        let foreign = blocks::block(Some([1; 32]), 6, "market.test", ICRC3Value::Nat(6u8.into()));
        assert_eq!(
            a.append(owner(), &args(6, &[foreign])),
            Err(AppendBlocksError::Mismatch { index: 6 })
        );
        assert_eq!(a.append(owner(), &args(6, &other[6..10])), Ok(10));
        let got = a.get_blocks(&[GetBlocksRequest {
            start: Nat::from(0u8),
            length: Nat::from(100u8),
        }]);
        assert_eq!(got.log_length, Nat::from(10u8));
        let held: Vec<ICRC3Value> = got.blocks.into_iter().map(|b| b.block).collect();
        assert_eq!(held, c);
        assert_eq!(a.status().blocks, 10);
        assert_eq!(
            a.supported_block_types()[0].block_type,
            "market.test".to_string()
        );
    }

    #[test]
    fn a_later_archive_starts_where_the_owner_is_and_stops_at_its_capacity() {
        let c = chain(20);
        let mut a = archive(5);
        assert_eq!(a.append(owner(), &args(10, &c[10..13])), Ok(13));
        assert_eq!(a.status().first_index, Some(10));
        assert!(matches!(
            a.append(owner(), &args(9, &c[9..10])),
            Err(AppendBlocksError::Gap { .. })
        ));
        // Two of the four fit.
        assert_eq!(a.append(owner(), &args(13, &c[13..17])), Ok(15));
        assert_eq!(
            a.append(owner(), &args(15, &c[15..17])),
            Err(AppendBlocksError::Full { capacity_blocks: 5 })
        );
        // What it holds is still a no-op success.
        assert_eq!(a.append(owner(), &args(13, &c[13..15])), Ok(15));
        let too_many = chain(MAX_APPEND_BLOCKS as u64 + 1);
        assert!(matches!(
            archive(1_000).append(owner(), &args(0, &too_many)),
            Err(AppendBlocksError::TooManyBlocks { .. })
        ));
    }

    #[test]
    fn get_blocks_is_bounded() {
        let c = chain(MAX_APPEND_BLOCKS as u64);
        let mut a = archive(1_000);
        a.append(owner(), &args(0, &c)).unwrap();
        let c2: Vec<ICRC3Value> = chain(150)[100..].to_vec();
        a.append(owner(), &args(100, &c2)).unwrap();
        let all = a.get_blocks(&[GetBlocksRequest {
            start: Nat::from(0u8),
            length: Nat::from(1_000u32),
        }]);
        assert_eq!(all.blocks.len() as u64, MAX_BLOCKS_PER_QUERY);
        let many = vec![
            GetBlocksRequest {
                start: Nat::from(3u8),
                length: Nat::from(1u8)
            };
            1_000
        ];
        assert_eq!(a.get_blocks(&many).blocks.len(), MAX_RANGES_PER_QUERY);
    }
}
