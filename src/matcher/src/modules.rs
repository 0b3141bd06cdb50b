//! The content-addressed store of job modules.
//!
//! A module is uploaded in chunks of [`MAX_CHUNK_BYTES`] (the last may be
//! shorter) under the sha256 its uploader declares, and becomes usable only
//! when `commit` finds every chunk present and the digest right. Stored
//! modules are reference-counted by the jobs that name them; one nobody uses
//! is deleted [`UNUSED_TTL_NS`] after it was last released (or committed),
//! and an upload that never commits is deleted [`UNUSED_TTL_NS`] after it began.

use candid::Principal;
use canister_common::codec::Cbor;
use ic_stable_structures::{Memory, StableBTreeMap};
use market_api::matcher::{MAX_CHUNK_BYTES, MAX_MODULE_BYTES, Sha256};
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

/// The store over two stable maps.
pub struct ModuleStore<M: Memory> {
    meta: StableBTreeMap<Sha256, Cbor<ModuleMeta>, M>,
    chunks: StableBTreeMap<(Sha256, u32), Vec<u8>, M>,
}

impl<M: Memory> ModuleStore<M> {
    /// Opens the store kept in these memories.
    pub fn init(meta: M, chunks: M) -> Self {
        Self {
            meta: StableBTreeMap::init(meta),
            chunks: StableBTreeMap::init(chunks),
        }
    }

    /// A module's metadata.
    pub fn meta(&self, sha: &Sha256) -> Option<ModuleMeta> {
        self.meta.get(sha).map(|c| c.0)
    }

    fn stored_bytes(&self) -> u64 {
        self.meta.values().map(|m| m.0.size).sum()
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
        let pending = self
            .meta
            .values()
            .filter(|m| !m.0.committed && m.0.uploader == uploader)
            .count();
        if pending >= MAX_PENDING_UPLOADS_PER_PRINCIPAL {
            return Err(StoreError::TooManyUploads);
        }
        let idle: u64 = self
            .meta
            .values()
            .filter(|m| m.0.uploader == uploader && m.0.refs == 0)
            .map(|m| m.0.size)
            .sum();
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
        self.meta.insert(sha, Cbor(meta.clone()));
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
        self.meta.insert(sha, Cbor(m.clone()));
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
        self.meta.insert(*sha, Cbor(m));
        Ok(())
    }

    /// A job stops using a module.
    pub fn release(&mut self, now_ns: u64, sha: &Sha256) {
        if let Some(mut m) = self.meta(sha) {
            m.refs = m.refs.saturating_sub(1);
            if m.refs == 0 {
                m.idle_since_ns = now_ns;
            }
            self.meta.insert(*sha, Cbor(m));
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
        self.meta.remove(sha);
    }

    /// Deletes up to `budget` modules that nobody used for [`UNUSED_TTL_NS`]
    /// (and uploads abandoned that long); returns how many it deleted.
    pub fn collect_garbage(&mut self, now_ns: u64, budget: usize) -> usize {
        let expired: Vec<Sha256> = self
            .meta
            .iter()
            .filter(|e| {
                let m = &e.value().0;
                m.refs == 0 && now_ns.saturating_sub(m.idle_since_ns) >= UNUSED_TTL_NS
            })
            .map(|e| *e.key())
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
        ModuleStore::init(VectorMemory::default(), VectorMemory::default())
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
