//! Compiled modules cached by the sha256 of their wasm bytes: in memory (ready
//! to instantiate) and on disk (wasmtime's serialised artefacts, each sealed
//! with an HMAC so a tampered or foreign file is never deserialised). The
//! disk cache also holds the services' compiled components ([`Artefact`]).

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::error::SandboxError;

type HmacSha256 = Hmac<Sha256>;

/// The sha256 of a module's wasm bytes: how the marketplace names code.
pub type CodeHash = [u8; 32];

/// A bounded map from code hash to a value, evicting the oldest insertion.
#[derive(Debug)]
pub(crate) struct BoundedMap<V> {
    capacity: usize,
    entries: Mutex<(HashMap<CodeHash, V>, VecDeque<CodeHash>)>,
}

impl<V: Clone> BoundedMap<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    pub(crate) fn get(&self, key: &CodeHash) -> Option<V> {
        let guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.get(key).cloned()
    }

    pub(crate) fn insert(&self, key: CodeHash, value: V) {
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        if map.insert(key, value).is_none() {
            order.push_back(key);
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }
}

/// What the disk cache stores: wasmtime's compiled core modules and
/// components.
pub trait Artefact: Sized {
    /// Distinguishes the kinds in file names.
    const EXTENSION: &'static str;
    /// `Module::serialize` or `Component::serialize`.
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    /// `Module::deserialize` or `Component::deserialize`.
    ///
    /// # Safety
    /// `bytes` must come from [`Artefact::serialize`] with a compatible
    /// engine (wasmtime runs them as machine code).
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
}

impl Artefact for Module {
    const EXTENSION: &'static str = "cwasm";
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Module::serialize(self)
    }
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's contract.
        unsafe { Module::deserialize(engine, bytes) }
    }
}

impl Artefact for Component {
    const EXTENSION: &'static str = "ccwasm";
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's contract.
        unsafe { Component::deserialize(engine, bytes) }
    }
}

const MAGIC: &[u8; 8] = b"PNCWASM1";
const MAC_LEN: usize = 32;
const KEY_FILE: &str = "cache.key";

/// The on-disk cache of compiled modules.
///
/// File layout: `MAGIC`, then HMAC-SHA256(key, MAGIC || engine fingerprint ||
/// code hash || artefact), then the artefact from `Module::serialize`. The
/// key is the node's own secret (`cache.key`, mode 0600, created on first
/// use), so a file written by anyone else, truncated or flipped fails the
/// check and is deleted instead of reaching `Module::deserialize`, which
/// must only ever see bytes this node produced. Files are named by code hash
/// and engine fingerprint, so a wasmtime upgrade or a config change simply
/// misses.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    key: [u8; 32],
    fingerprint: [u8; 32],
}

impl DiskCache {
    /// Opens (creating if needed) the cache in `dir` for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, SandboxError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SandboxError::Cache { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let key_path = dir.join(KEY_FILE);
        let key = match fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => bytes.try_into().expect("length checked"),
            Ok(_) => {
                return Err(SandboxError::Cache {
                    path: key_path,
                    source: std::io::Error::other("cache key must be 32 bytes"),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = new_key();
                write_private(&key_path, &key).map_err(io(&key_path))?;
                key
            }
            Err(e) => return Err(io(&key_path)(e)),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            fingerprint: engine_fingerprint(engine),
        })
    }

    fn path<A: Artefact>(&self, hash: &CodeHash) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.{}",
            hex::encode(hash),
            hex::encode(&self.fingerprint[..8]),
            A::EXTENSION
        ))
    }

    fn mac(&self, hash: &CodeHash, artefact: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length works");
        mac.update(MAGIC);
        mac.update(&self.fingerprint);
        mac.update(hash);
        mac.update(artefact);
        mac
    }

    /// Loads the compiled module (or component) for `hash`, if present and
    /// intact. A file that fails the integrity check is removed.
    pub fn load<A: Artefact>(&self, engine: &Engine, hash: &CodeHash) -> Option<A> {
        let path = self.path::<A>(hash);
        let bytes = fs::read(&path).ok()?;
        let header = MAGIC.len() + MAC_LEN;
        let intact = bytes.len() > header
            && &bytes[..MAGIC.len()] == MAGIC
            && self
                .mac(hash, &bytes[header..])
                .verify_slice(&bytes[MAGIC.len()..header])
                .is_ok();
        if !intact {
            let _ = fs::remove_file(&path);
            return None;
        }
        // SAFETY: the HMAC proves these bytes were produced by this node's
        // `serialize` for this engine fingerprint and code hash.
        match unsafe { A::deserialize(engine, &bytes[header..]) } {
            Ok(module) => Some(module),
            Err(_) => {
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores `compiled` for `hash`, atomically (write then rename).
    pub fn store<A: Artefact>(&self, hash: &CodeHash, compiled: &A) -> std::io::Result<()> {
        let artefact = compiled.serialize().map_err(std::io::Error::other)?;
        let tag = self.mac(hash, &artefact).finalize().into_bytes();
        let path = self.path::<A>(hash);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(MAGIC)?;
            file.write_all(&tag)?;
            file.write_all(&artefact)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &path)
    }
}

/// A stable digest of what makes compiled code compatible with `engine`
/// (wasmtime version, target and compilation settings).
fn engine_fingerprint(engine: &Engine) -> [u8; 32] {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = ShaHasher(Sha256::new());
    super::config::ENGINE_VERSION.hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

fn new_key() -> [u8; 32] {
    // A fresh secret per node from a cryptographically secure generator
    // seeded by the OS.
    let mut key = [0u8; 32];
    wasmtime_wasi::Rng::fill_bytes(&mut *wasmtime_wasi::thread_rng(), &mut key);
    key
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
