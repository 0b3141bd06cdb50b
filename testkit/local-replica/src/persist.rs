//! The state directory (`local-replica --state-dir DIR`): the devnet's state, the
//! key seed (so the root key clients have fetched stays valid), the metadata
//! of installed modules and the names given with `--install`, saved to one
//! file and loaded at the next start.
//!
//! Writes are atomic (a temporary file, fsync, rename), so a crash while
//! saving leaves the previous state. A lock file keeps two devnets from
//! sharing a directory. Not saved: the ingress history (a request answered
//! before the restart reads as unknown after it), wasm chunk stores of
//! uploads not yet installed, and injected faults.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use candid::Principal;
use devnet::{Devnet, DevnetConfig};
use serde::{Deserialize, Serialize};

use crate::metadata::ModuleMetadata;

/// The state file's name inside the directory.
pub const STATE_FILE: &str = "devnet-state.cbor";
const LOCK_FILE: &str = "devnet.lock";
/// Format of the state file; bumped when its layout changes.
const FORMAT: u32 = 1;

/// Why a state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Creating, locking, reading or writing a file failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process holds the directory.
    #[error("{} is in use by another devnet (its lock file {LOCK_FILE} is held)", .0.display())]
    Locked(PathBuf),
    /// The state file is damaged or of another format.
    #[error("the state in {} cannot be loaded: {why}", .0.display(), why = .1)]
    Corrupt(PathBuf, String),
}

/// What a state file holds besides the devnet itself.
#[derive(Default)]
pub struct NodeExtras {
    /// Metadata sections of the installed modules.
    pub metadata: ModuleMetadata,
    /// Canister names given with `--install`.
    pub names: BTreeMap<String, Principal>,
}

/// A state loaded from a directory.
pub struct Loaded {
    /// The devnet as it was saved.
    pub devnet: Devnet,
    /// The seed of the keys it was served with.
    pub key_seed: [u8; 32],
    /// Metadata and names.
    pub extras: NodeExtras,
}

#[derive(Serialize, Deserialize)]
struct SavedNode {
    format: u32,
    key_seed: [u8; 32],
    #[serde(with = "serde_bytes")]
    devnet: Vec<u8>,
    metadata: ModuleMetadata,
    names: BTreeMap<String, Principal>,
}

/// An open, locked state directory.
pub struct StateDir {
    path: PathBuf,
    /// Held (locked) for as long as the directory is open.
    _lock: File,
}

impl StateDir {
    /// Creates the directory if needed and locks it.
    pub fn open(path: &Path) -> Result<StateDir, PersistError> {
        fs::create_dir_all(path).map_err(|source| PersistError::Io {
            what: "creating",
            path: path.to_path_buf(),
            source,
        })?;
        let lock_path = path.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| PersistError::Io {
                what: "opening",
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(PersistError::Locked(path.to_path_buf()));
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(PersistError::Io {
                    what: "locking",
                    path: lock_path,
                    source,
                });
            }
        }
        Ok(StateDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, if the directory holds one; the devnet runs with `config`.
    pub fn load(&self, config: DevnetConfig) -> Result<Option<Loaded>, PersistError> {
        let file = self.path.join(STATE_FILE);
        let bytes = match fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(PersistError::Io {
                    what: "reading",
                    path: file,
                    source,
                });
            }
        };
        let corrupt = |why: String| PersistError::Corrupt(file.clone(), why);
        let saved: SavedNode =
            serde_cbor::from_slice(&bytes).map_err(|e| corrupt(format!("decoding: {e}")))?;
        if saved.format != FORMAT {
            return Err(corrupt(format!(
                "it has format {}; this devnet reads format {FORMAT}",
                saved.format
            )));
        }
        let devnet =
            Devnet::load_state(config, &saved.devnet).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(Loaded {
            devnet,
            key_seed: saved.key_seed,
            extras: NodeExtras {
                metadata: saved.metadata,
                names: saved.names,
            },
        }))
    }

    /// Writes a state made by [`encode`] atomically.
    pub fn write(&self, bytes: &[u8]) -> Result<(), PersistError> {
        let file = self.path.join(STATE_FILE);
        let tmp = self.path.join(format!("{STATE_FILE}.tmp"));
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| PersistError::Io { what, path, source }
        };
        let mut out = File::create(&tmp).map_err(io("creating", &tmp))?;
        out.write_all(bytes).map_err(io("writing", &tmp))?;
        out.sync_all().map_err(io("syncing", &tmp))?;
        drop(out);
        fs::rename(&tmp, &file).map_err(io("renaming into", &file))?;
        // Make the rename itself durable.
        File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing", &self.path))?;
        Ok(())
    }
}

/// [`SavedNode`] by reference, for writing.
#[derive(Serialize)]
struct SavedNodeRef<'a> {
    format: u32,
    key_seed: [u8; 32],
    #[serde(with = "serde_bytes")]
    devnet: &'a [u8],
    metadata: &'a ModuleMetadata,
    names: &'a BTreeMap<String, Principal>,
}

/// The bytes of a state file: `devnet` (between messages), the key seed,
/// the metadata and the names.
pub fn encode(
    devnet: &mut Devnet,
    key_seed: [u8; 32],
    metadata: &ModuleMetadata,
    names: &BTreeMap<String, Principal>,
) -> Result<Vec<u8>, String> {
    let devnet = devnet.save_state().map_err(|e| e.to_string())?;
    let saved = SavedNodeRef {
        format: FORMAT,
        key_seed,
        devnet: &devnet,
        metadata,
        names,
    };
    serde_cbor::to_vec(&saved).map_err(|e| format!("encoding the state: {e}"))
}
