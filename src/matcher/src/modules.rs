//! The content-addressed store of job modules.
//!
//! A module is uploaded in chunks of [`MAX_CHUNK_BYTES`] (the last may be
//! shorter) under the sha256 its uploader declares, and becomes usable only
//! when `commit` finds every chunk present and the digest right. Stored
//! modules are reference-counted by the jobs that name them; one nobody uses
//! is deleted [`UNUSED_TTL_NS`] after it was last released (or committed),
//! and an upload that never commits is deleted [`UNUSED_TTL_NS`] after it began.
//!
//! Storage is bounded three ways: the whole store ([`MAX_STORE_BYTES`]),
//! each uploader's modules ([`MAX_MODULES_PER_UPLOADER`], of which
//! [`MAX_IDLE_BYTES_PER_UPLOADER`] unused), and time: a module in use is
//! held by jobs, and a job whose bid no offer takes expires (see
//! `Market::sweep_resting_bids`), so nothing is pinned for ever. Every
//! check reads only the uploader's own modules (an index by uploader), the
//! store's total is a counter, and collection walks an index by idle time.

use candid::Principal;
use canister_common::codec::Cbor;
use ic_stable_structures::{Memory, StableBTreeMap, StableCell};
use market_api::matcher::{MAX_CHUNK_BYTES, MAX_MODULE_BYTES, MAX_MODULES_PER_UPLOADER, Sha256};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// How long an unused module or an uncommitted upload is kept.
pub const UNUSED_TTL_NS: u64 = 3_600 * 1_000_000_000;
/// Most uploads one principal may have in progress.
pub const MAX_PENDING_UPLOADS_PER_PRINCIPAL: usize = 2;
/// Most bytes of modules no job uses (idle, or not committed yet) one
/// uploader may hold: storage nobody pays for through a job is bounded per
/// principal, so one funded principal can't fill the store.
pub const MAX_IDLE_BYTES_PER_UPLOADER: u64 = 64 * 1024 * 1024;
/// Most bytes the whole store holds, committed or not.
pub const MAX_STORE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// What the store knows of one module.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ModuleMeta {
    /// Who uploaded it.
    pub uploader: Principal,
    /// Its size in bytes.
    pub size: u64,
    /// Whether every chunk arrived and the digest was checked.
    pub committed: bool,
    /// Jobs that use it.
    pub refs: u64,
    /// When it became unused (or the upload began); it is collected after
    /// [`UNUSED_TTL_NS`] while `refs` is 0.
    pub idle_since_ns: u64,
}

impl ModuleMeta {
    /// Number of chunks of a module of this size.
    pub fn chunk_count(&self) -> u32 {
        self.size.div_ceil(MAX_CHUNK_BYTES as u64) as u32
    }

    fn chunk_len(&self, index: u32) -> u64 {
        let start = u64::from(index) * MAX_CHUNK_BYTES as u64;
        (self.size - start).min(MAX_CHUNK_BYTES as u64)
    }
}

/// Why a store operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The size is zero or above [`MAX_MODULE_BYTES`].
    BadSize { max: u64 },
    /// The uploader has too many uploads in progress.
    TooManyUploads,
    /// The uploader has [`MAX_MODULES_PER_UPLOADER`] modules already.
    TooManyModules,
    /// The uploader holds too many bytes of modules no job uses.
    IdleQuota { limit: u64 },
    /// The store is full.
    StoreFull,
    /// The module exists already with another uploader or size.
    Conflict,
    /// No such module (or upload).
    Unknown,
    /// Only the uploader may add chunks or commit.
    NotUploader,
    /// Chunk index out of range or chunk of the wrong length.
    BadChunk { index: u32, expected_len: u64 },
    /// Chunks are missing.
    Incomplete { missing: u32 },
    /// The bytes do not hash to the declared sha256; the upload is discarded.
    DigestMismatch { actual: Sha256 },
    /// The module is not committed yet.
    NotCommitted,
}

/// The store over its stable maps.
pub struct ModuleStore<M: Memory> {
    meta: StableBTreeMap<Sha256, Cbor<ModuleMeta>, M>,
    chunks: StableBTreeMap<(Sha256, u32), Vec<u8>, M>,
    /// Every module by its uploader.
    by_uploader: StableBTreeMap<(Principal, Sha256), (), M>,
    /// Modules no job uses, by when they became idle.
    idle: StableBTreeMap<(u64, Sha256), (), M>,
    /// Bytes of all modules, committed or not.
    stored: StableCell<u64, M>,
}

impl<M: Memory> ModuleStore<M> {
    /// Opens the store kept in these memories: metadata, chunks, the
    /// uploader index, the idle index and the byte counter.
    pub fn init([meta, chunks, by_uploader, idle, stored]: [M; 5]) -> Self {
        Self {
            meta: StableBTreeMap::init(meta),
            chunks: StableBTreeMap::init(chunks),
            by_uploader: StableBTreeMap::init(by_uploader),
            idle: StableBTreeMap::init(idle),
            stored: StableCell::init(stored, 0),
        }
    }

    /// Builds the indexes and the byte counter from the metadata if they
    /// are empty while modules exist (a store saved before they were
    /// kept). Returns how many modules it indexed.
    pub fn index_if_missing(&mut self) -> usize {
        if !self.by_uploader.is_empty() || self.meta.is_empty() {
            return 0;
        }
        let all: Vec<(Sha256, ModuleMeta)> =
            self.meta.iter().map(|e| (*e.key(), e.value().0)).collect();
        let mut bytes = 0u64;
        for (sha, m) in &all {
            self.by_uploader.insert((m.uploader, *sha), ());
            if m.refs == 0 {
                self.idle.insert((m.idle_since_ns, *sha), ());
            }
            bytes = bytes.saturating_add(m.size);
        }
        self.stored.set(bytes);
        all.len()
    }

    /// A module's metadata.
    pub fn meta(&self, sha: &Sha256) -> Option<ModuleMeta> {
        self.meta.get(sha).map(|c| c.0)
    }

    /// Bytes of all modules, committed or not.
    pub fn stored_bytes(&self) -> u64 {
        *self.stored.get()
    }

    /// Writes a module's metadata, keeping the idle index in step.
    fn put_meta(&mut self, sha: Sha256, m: ModuleMeta) {
        if let Some(old) = self.meta(&sha)
            && old.refs == 0
        {
            self.idle.remove(&(old.idle_since_ns, sha));
        }
        if m.refs == 0 {
            self.idle.insert((m.idle_since_ns, sha), ());
        }
        self.meta.insert(sha, Cbor(m));
    }

    /// The modules of one uploader (at most [`MAX_MODULES_PER_UPLOADER`]).
    fn uploaded_by(&self, uploader: Principal) -> Vec<ModuleMeta> {
        self.by_uploader
            .keys_range((uploader, [0; 32])..=(uploader, [u8::MAX; 32]))
            .filter_map(|(_, sha)| self.meta(&sha))
            .collect()
    }

    /// Starts (or resumes, for the same uploader and size) an upload.
    /// Uploading a module that is already committed is a no-op.
    pub fn begin(
        &mut self,
        now_ns: u64,
        uploader: Principal,
        sha: Sha256,
        size: u64,
    ) -> Result<ModuleMeta, StoreError> {
        if size == 0 || size > MAX_MODULE_BYTES as u64 {
            return Err(StoreError::BadSize {
                max: MAX_MODULE_BYTES as u64,
            });
        }
        if let Some(m) = self.meta(&sha) {
            if m.committed || (m.uploader == uploader && m.size == size) {
                return Ok(m);
            }
            return Err(StoreError::Conflict);
        }
        let mine = self.uploaded_by(uploader);
        if mine.len() >= MAX_MODULES_PER_UPLOADER as usize {
            return Err(StoreError::TooManyModules);
        }
        let pending = mine.iter().filter(|m| !m.committed).count();
        if pending >= MAX_PENDING_UPLOADS_PER_PRINCIPAL {
            return Err(StoreError::TooManyUploads);
        }
        let idle: u64 = mine.iter().filter(|m| m.refs == 0).map(|m| m.size).sum();
        if idle.saturating_add(size) > MAX_IDLE_BYTES_PER_UPLOADER {
            return Err(StoreError::IdleQuota {
                limit: MAX_IDLE_BYTES_PER_UPLOADER,
            });
        }
        if self.stored_bytes().saturating_add(size) > MAX_STORE_BYTES {
            return Err(StoreError::StoreFull);
        }
        let meta = ModuleMeta {
            uploader,
            size,
            committed: false,
            refs: 0,
            idle_since_ns: now_ns,
        };
        self.put_meta(sha, meta.clone());
        self.by_uploader.insert((uploader, sha), ());
        self.stored.set(self.stored_bytes().saturating_add(size));
        Ok(meta)
    }

    /// Stores one chunk of an upload in progress.
    pub fn put_chunk(
        &mut self,
        uploader: Principal,
        sha: Sha256,
        index: u32,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let m = self.meta(&sha).ok_or(StoreError::Unknown)?;
        if m.committed {
            return Ok(());
        }
        if m.uploader != uploader {
            return Err(StoreError::NotUploader);
        }
        if index >= m.chunk_count() || bytes.len() as u64 != m.chunk_len(index) {
            let expected_len = if index < m.chunk_count() {
                m.chunk_len(index)
            } else {
                0
            };
            return Err(StoreError::BadChunk {
                index,
                expected_len,
            });
        }
        self.chunks.insert((sha, index), bytes);
        Ok(())
    }

    /// Checks that every chunk is there and the digest is right, and makes
    /// the module usable. A digest mismatch discards the upload.
    pub fn commit(
        &mut self,
        now_ns: u64,
        uploader: Principal,
        sha: Sha256,
    ) -> Result<ModuleMeta, StoreError> {
        let mut m = self.meta(&sha).ok_or(StoreError::Unknown)?;
        if m.committed {
            return Ok(m);
        }
        if m.uploader != uploader {
            return Err(StoreError::NotUploader);
        }
        let present = self.chunks.keys_range((sha, 0)..=(sha, u32::MAX)).count() as u32;
        if present < m.chunk_count() {
            return Err(StoreError::Incomplete {
                missing: m.chunk_count() - present,
            });
        }
        let mut hasher = sha2::Sha256::new();
        for chunk in self.chunks.values_range((sha, 0)..=(sha, u32::MAX)) {
            hasher.update(&chunk);
        }
        let actual: Sha256 = hasher.finalize().into();
        if actual != sha {
            self.delete(&sha);
            return Err(StoreError::DigestMismatch { actual });
        }
        m.committed = true;
        m.idle_since_ns = now_ns;
        self.put_meta(sha, m.clone());
        Ok(m)
    }

    /// One chunk of a committed module.
    pub fn chunk(&self, sha: &Sha256, index: u32) -> Result<Vec<u8>, StoreError> {
        let m = self.meta(sha).ok_or(StoreError::Unknown)?;
        if !m.committed {
            return Err(StoreError::NotCommitted);
        }
        self.chunks.get(&(*sha, index)).ok_or(StoreError::BadChunk {
            index,
            expected_len: 0,
        })
    }

    /// A job starts using a committed module.
    pub fn acquire(&mut self, sha: &Sha256) -> Result<(), StoreError> {
        let mut m = self.meta(sha).ok_or(StoreError::Unknown)?;
        if !m.committed {
            return Err(StoreError::NotCommitted);
        }
        m.refs += 1;
        self.put_meta(*sha, m);
        Ok(())
    }

    /// A job stops using a module.
    pub fn release(&mut self, now_ns: u64, sha: &Sha256) {
        if let Some(mut m) = self.meta(sha) {
            m.refs = m.refs.saturating_sub(1);
            if m.refs == 0 {
                m.idle_since_ns = now_ns;
            }
            self.put_meta(*sha, m);
        }
    }

    fn delete(&mut self, sha: &Sha256) {
        let keys: Vec<_> = self
            .chunks
            .keys_range((*sha, 0)..=(*sha, u32::MAX))
            .collect();
        for k in keys {
            self.chunks.remove(&k);
        }
        if let Some(Cbor(m)) = self.meta.remove(sha) {
            self.by_uploader.remove(&(m.uploader, *sha));
            self.idle.remove(&(m.idle_since_ns, *sha));
            self.stored.set(self.stored_bytes().saturating_sub(m.size));
        }
    }

    /// Deletes up to `budget` modules that nobody used for [`UNUSED_TTL_NS`]
    /// (and uploads abandoned that long); returns how many it deleted.
    pub fn collect_garbage(&mut self, now_ns: u64, budget: usize) -> usize {
        let expired: Vec<Sha256> = self
            .idle
            .keys()
            .take_while(|(since, _)| now_ns.saturating_sub(*since) >= UNUSED_TTL_NS)
            .map(|(_, sha)| sha)
            .take(budget)
            .collect();
        for sha in &expired {
            self.delete(sha);
        }
        expired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;

    fn store() -> ModuleStore<VectorMemory> {
        ModuleStore::init(Default::default())
    }

    fn sha(bytes: &[u8]) -> Sha256 {
        sha2::Sha256::digest(bytes).into()
    }

    fn alice() -> Principal {
        Principal::from_slice(&[1])
    }

    fn upload(s: &mut ModuleStore<VectorMemory>, bytes: &[u8]) -> Result<ModuleMeta, StoreError> {
        let h = sha(bytes);
        s.begin(0, alice(), h, bytes.len() as u64)?;
        for (i, c) in bytes.chunks(MAX_CHUNK_BYTES).enumerate() {
            s.put_chunk(alice(), h, i as u32, c.to_vec())?;
        }
        s.commit(1, alice(), h)
    }

    fn uploader(n: u8) -> Principal {
        Principal::from_slice(&[0x70, n])
    }

    /// Begins and commits a one-chunk module of `who`.
    fn store_small(
        s: &mut ModuleStore<VectorMemory>,
        who: Principal,
        bytes: &[u8],
    ) -> Result<Sha256, StoreError> {
        let h = sha(bytes);
        s.begin(0, who, h, bytes.len() as u64)?;
        s.put_chunk(who, h, 0, bytes.to_vec())?;
        s.commit(0, who, h)?;
        Ok(h)
    }

    #[test]
    fn one_uploader_stores_a_bounded_number_of_modules_used_or_not() {
        let mut s = store();
        for i in 0..MAX_MODULES_PER_UPLOADER {
            let h = store_small(&mut s, alice(), format!("m{i}").as_bytes()).unwrap();
            s.acquire(&h).unwrap();
        }
        assert_eq!(
            store_small(&mut s, alice(), b"one more"),
            Err(StoreError::TooManyModules)
        );
        assert!(store_small(&mut s, uploader(2), b"someone else").is_ok());
    }

    #[test]
    fn the_byte_counter_and_indexes_follow_every_change_and_can_be_rebuilt() {
        let mut s = store();
        let a = store_small(&mut s, alice(), b"aaaa").unwrap();
        let b = store_small(&mut s, uploader(2), b"bbbbbb").unwrap();
        assert_eq!(s.stored_bytes(), 10);
        s.acquire(&a).unwrap();
        // Only the idle module is collected, and the counter drops.
        assert_eq!(s.collect_garbage(UNUSED_TTL_NS, 10), 1);
        assert_eq!(s.meta(&b), None);
        assert_eq!(s.stored_bytes(), 4);
        s.release(5, &a);
        assert_eq!(s.collect_garbage(UNUSED_TTL_NS + 4, 10), 0, "idle since 5");
        // A store saved before the indexes existed gets them rebuilt.
        let c = store_small(&mut s, uploader(3), b"cc").unwrap();
        let keys: Vec<_> = s.by_uploader.keys().collect();
        for k in keys {
            s.by_uploader.remove(&k);
        }
        let idle: Vec<_> = s.idle.keys().collect();
        for k in idle {
            s.idle.remove(&k);
        }
        s.stored.set(0);
        assert_eq!(s.index_if_missing(), 2);
        assert_eq!(s.index_if_missing(), 0, "once");
        assert_eq!(s.stored_bytes(), 6);
        assert_eq!(s.uploaded_by(uploader(3)).len(), 1);
        assert_eq!(s.collect_garbage(UNUSED_TTL_NS + 5, 10), 2);
        assert_eq!((s.meta(&a), s.meta(&c)), (None, None));
        assert_eq!(s.stored_bytes(), 0);
    }

    #[test]
    fn multi_chunk_upload_round_trips() {
        let mut s = store();
        let bytes: Vec<u8> = (0..MAX_CHUNK_BYTES * 2 + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        let m = upload(&mut s, &bytes).unwrap();
        assert_eq!(m.chunk_count(), 3);
        let h = sha(&bytes);
        let back: Vec<u8> = (0..3).flat_map(|i| s.chunk(&h, i).unwrap()).collect();
        assert_eq!(back, bytes);
    }

    #[test]
    fn bad_uploads_are_refused() {
        let mut s = store();
        let bob = Principal::from_slice(&[2]);
        assert_eq!(
            s.begin(0, alice(), [0; 32], 0),
            Err(StoreError::BadSize {
                max: MAX_MODULE_BYTES as u64
            })
        );
        let bytes = b"\0asm module".to_vec();
        let h = sha(&bytes);
        s.begin(0, alice(), h, bytes.len() as u64).unwrap();
        assert_eq!(
            s.put_chunk(bob, h, 0, bytes.clone()),
            Err(StoreError::NotUploader)
        );
        assert!(matches!(
            s.put_chunk(alice(), h, 0, vec![1]),
            Err(StoreError::BadChunk { .. })
        ));
        assert_eq!(
            s.commit(0, alice(), h),
            Err(StoreError::Incomplete { missing: 1 })
        );
        assert_eq!(s.chunk(&h, 0), Err(StoreError::NotCommitted));
        // Declared digest that the bytes don't match: discarded.
        let wrong = [9u8; 32];
        s.begin(0, alice(), wrong, bytes.len() as u64).unwrap();
        s.put_chunk(alice(), wrong, 0, bytes.clone()).unwrap();
        assert!(matches!(
            s.commit(0, alice(), wrong),
            Err(StoreError::DigestMismatch { .. })
        ));
        assert_eq!(s.meta(&wrong), None);
        // A third pending upload by one principal is refused.
        s.begin(0, alice(), [7; 32], 10).unwrap();
        assert_eq!(
            s.begin(0, alice(), [8; 32], 10),
            Err(StoreError::TooManyUploads)
        );
    }

    #[test]
    fn modules_no_job_uses_are_bounded_per_uploader() {
        let mut s = store();
        let bob = Principal::from_slice(&[2]);
        let big = MAX_MODULE_BYTES as u64;
        let fit = (MAX_IDLE_BYTES_PER_UPLOADER / big) as u8;
        // Fill alice's quota with committed modules nobody uses (begin only
        // counts sizes; two uploads may be pending, so commit by hand).
        for i in 0..fit {
            s.begin(0, alice(), [i; 32], big).unwrap();
            let mut m = s.meta(&[i; 32]).unwrap();
            m.committed = true;
            s.meta.insert([i; 32], Cbor(m));
        }
        assert_eq!(
            s.begin(0, alice(), [200; 32], 1),
            Err(StoreError::IdleQuota {
                limit: MAX_IDLE_BYTES_PER_UPLOADER
            })
        );
        // Another principal has its own quota.
        s.begin(0, bob, [201; 32], big).unwrap();
        // A module a job uses no longer counts; released, it counts again.
        s.acquire(&[0; 32]).unwrap();
        s.begin(0, alice(), [202; 32], big).unwrap();
        s.release(1, &[0; 32]);
        assert!(matches!(
            s.begin(1, alice(), [203; 32], 1),
            Err(StoreError::IdleQuota { .. })
        ));
        // Collected after its time, the space comes back.
        s.collect_garbage(1 + UNUSED_TTL_NS, 100);
        s.begin(2 + UNUSED_TTL_NS, alice(), [203; 32], big).unwrap();
    }

    #[test]
    fn unused_modules_and_abandoned_uploads_are_collected() {
        let mut s = store();
        let bytes = b"module".to_vec();
        let h = sha(&bytes);
        upload(&mut s, &bytes).unwrap();
        s.begin(0, alice(), [7; 32], 10).unwrap(); // never committed
        s.acquire(&h).unwrap();
        assert_eq!(
            s.collect_garbage(UNUSED_TTL_NS * 2, 10),
            1,
            "only the abandoned upload goes"
        );
        assert!(s.meta(&h).is_some());
        s.release(UNUSED_TTL_NS * 2, &h);
        assert_eq!(
            s.collect_garbage(UNUSED_TTL_NS * 2 + 1, 10),
            0,
            "recently used"
        );
        assert_eq!(s.collect_garbage(UNUSED_TTL_NS * 3, 10), 1);
        assert_eq!(s.meta(&h), None);
        assert_eq!(s.chunks.len(), 0, "chunks go with the module");
    }
}
