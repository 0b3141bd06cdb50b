//! Identities: PEM files as dfx writes them.
//!
//! Accepted: Ed25519 keys in PKCS#8 (`PRIVATE KEY`, v1 or v2, including the
//! form very old dfx versions wrote), secp256k1 keys in SEC1 (`EC PRIVATE
//! KEY`, optionally preceded by `EC PARAMETERS`, as `dfx identity export`
//! prints them) or PKCS#8, and prime256v1 keys. The same file gives the same
//! principal whichever transport uses it, because both take the principal
//! from ic-agent's [`Identity`].

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candid::Principal;
use ic_agent::Identity;
use ic_agent::identity::{BasicIdentity, Prime256v1Identity, Secp256k1Identity};

/// The key types a PEM file may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// Ed25519 (dfx's `--storage-mode plaintext` default before 0.12, and
    /// what `provider-node identity new` writes).
    Ed25519,
    /// secp256k1 (dfx's default since 0.12).
    Secp256k1,
    /// NIST P-256.
    Prime256v1,
}

/// Why an identity file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The file could not be read.
    #[error("cannot read identity file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not PEM, or holds no key we know.
    #[error(
        "identity file {path} is not a usable PEM private key ({reason}); expected an Ed25519 \
         `PRIVATE KEY` or a secp256k1 `EC PRIVATE KEY` as `dfx identity export` prints it"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// `identity new` would overwrite a file.
    #[error("{path} already exists; refusing to overwrite an identity (move it away first)")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Writing a new identity failed.
    #[error("cannot write identity file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A loaded identity: the signer and its principal.
#[derive(Clone)]
pub struct LoadedIdentity {
    /// The signer, ready for ic-agent.
    pub identity: Arc<dyn Identity>,
    /// Its principal.
    pub principal: Principal,
    /// The key type found in the file.
    pub key_type: KeyType,
}

impl std::fmt::Debug for LoadedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedIdentity")
            .field("principal", &self.principal.to_text())
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

/// Loads a PEM identity file.
pub fn load_pem_file(path: &Path) -> Result<LoadedIdentity, IdentityError> {
    let bytes = std::fs::read(path).map_err(|source| IdentityError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_pem(&bytes).map_err(|reason| IdentityError::Invalid {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses PEM text into an identity; the error says why it is not one.
pub fn load_pem(bytes: &[u8]) -> Result<LoadedIdentity, String> {
    let blocks = pem::parse_many(bytes).map_err(|e| format!("not PEM: {e}"))?;
    if blocks.is_empty() {
        return Err("no PEM block found".into());
    }
    let tags: Vec<&str> = blocks.iter().map(|b| b.tag()).collect();
    let (identity, key_type): (Arc<dyn Identity>, KeyType) = if tags.contains(&"EC PRIVATE KEY") {
        match Secp256k1Identity::from_pem(bytes) {
            Ok(id) => (Arc::new(id), KeyType::Secp256k1),
            Err(k1_err) => match Prime256v1Identity::from_pem(bytes) {
                Ok(id) => (Arc::new(id), KeyType::Prime256v1),
                Err(_) => return Err(format!("EC key: {k1_err}")),
            },
        }
    } else if tags.contains(&"PRIVATE KEY") {
        // PKCS#8 names the algorithm; try each the IC supports.
        match BasicIdentity::from_pem(bytes) {
            Ok(id) => (Arc::new(id), KeyType::Ed25519),
            Err(ed_err) => match Secp256k1Identity::from_pem(bytes) {
                Ok(id) => (Arc::new(id), KeyType::Secp256k1),
                Err(_) => match Prime256v1Identity::from_pem(bytes) {
                    Ok(id) => (Arc::new(id), KeyType::Prime256v1),
                    Err(_) => return Err(format!("PKCS#8 key: {ed_err}")),
                },
            },
        }
    } else {
        return Err(format!(
            "found PEM blocks {tags:?} but no `PRIVATE KEY` or `EC PRIVATE KEY`"
        ));
    };
    let principal = identity
        .sender()
        .map_err(|e| format!("the key has no principal: {e}"))?;
    Ok(LoadedIdentity {
        identity,
        principal,
        key_type,
    })
}

/// Writes a fresh Ed25519 identity (PKCS#8 v2 PEM) to `path` with mode
/// 0600, creating parent directories; never overwrites a file.
pub fn create_ed25519_pem_file(path: &Path) -> Result<LoadedIdentity, IdentityError> {
    let write_err = |source| IdentityError::Write {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        return Err(IdentityError::Exists {
            path: path.to_path_buf(),
        });
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(write_err)?;
    }
    let key = ic_ed25519::PrivateKey::generate();
    let pem = key.serialize_pkcs8_pem(ic_ed25519::PrivateKeyFormat::Pkcs8v2);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            IdentityError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            write_err(source)
        }
    })?;
    file.write_all(pem.as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    load_pem(pem.as_bytes()).map_err(|reason| IdentityError::Invalid {
        path: path.to_path_buf(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ed25519 key as ic-agent's own tests carry it (dfx's format).
    const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MFMCAQEwBQYDK2VwBCIEIL9r4XBKsg4pquYBHY6rgfzuBsvCy89tgqDfDpofXRBP
oSMDIQBCkE1NL4X43clXS1LFauiceiiKW9NhVzTJOFW6/Cl7Zg==
-----END PRIVATE KEY-----
";
    /// A secp256k1 key as `dfx identity export` prints it.
    const SECP256K1_PEM: &str = "-----BEGIN EC PARAMETERS-----
BgUrgQQACg==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MHQCAQEEIAgy7nZEcVHkQ4Z1Kdqby8SwyAiyKDQmtbEHTIM+WNeBoAcGBSuBBAAK
oUQDQgAEgO87rJ1ozzdMvJyZQ+GABDqUxGLvgnAnTlcInV3NuhuPv4O3VGzMGzeB
N3d26cRxD99TPtm8uo2OuzKhSiq6EQ==
-----END EC PRIVATE KEY-----
";

    /// The same secp256k1 key in PKCS#8.
    const SECP256K1_PKCS8_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGEAgEAMBAGByqGSM49AgEGBSuBBAAKBG0wawIBAQQgCDLudkRxUeRDhnUp2pvL
xLDICLIoNCa1sQdMgz5Y14GhRANCAASA7zusnWjPN0y8nJlD4YAEOpTEYu+CcCdO
VwidXc26G4+/g7dUbMwbN4E3d3bpxHEP31M+2by6jY67MqFKKroR
-----END PRIVATE KEY-----
";

    #[test]
    fn secp256k1_pkcs8_gives_the_same_principal_as_sec1() {
        let sec1 = load_pem(SECP256K1_PEM.as_bytes()).unwrap();
        let pkcs8 = load_pem(SECP256K1_PKCS8_PEM.as_bytes()).unwrap();
        assert_eq!(pkcs8.key_type, KeyType::Secp256k1);
        assert_eq!(sec1.principal, pkcs8.principal);
    }

    #[test]
    fn ed25519_pkcs8_loads() {
        let id = load_pem(ED25519_PEM.as_bytes()).unwrap();
        assert_eq!(id.key_type, KeyType::Ed25519);
        assert_ne!(id.principal, Principal::anonymous());
        // Self-authenticating principals end in 0x02.
        assert_eq!(id.principal.as_slice().last(), Some(&0x02));
    }

    #[test]
    fn secp256k1_sec1_loads_as_dfx_exports_it() {
        let id = load_pem(SECP256K1_PEM.as_bytes()).unwrap();
        assert_eq!(id.key_type, KeyType::Secp256k1);
        assert_eq!(id.principal.as_slice().last(), Some(&0x02));
        // Without the EC PARAMETERS block too.
        let bare = SECP256K1_PEM
            .split_once("-----END EC PARAMETERS-----\n")
            .unwrap()
            .1;
        assert_eq!(load_pem(bare.as_bytes()).unwrap().principal, id.principal);
    }

    #[test]
    fn corrupt_files_are_refused_with_a_reason() {
        assert!(load_pem(b"").is_err());
        assert!(load_pem(b"hello").is_err());
        let wrong_block = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = load_pem(wrong_block.as_bytes()).unwrap_err();
        assert!(err.contains("CERTIFICATE"), "{err}");
        let truncated =
            ED25519_PEM.replace("oSMDIQBCkE1NL4X43clXS1LFauiceiiKW9NhVzTJOFW6/Cl7Zg==\n", "");
        assert!(load_pem(truncated.as_bytes()).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        std::fs::write(
            &path,
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = load_pem_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.pem") && err.contains("dfx identity export"),
            "{err}"
        );
        let err = load_pem_file(&dir.path().join("missing.pem")).unwrap_err();
        assert!(matches!(err, IdentityError::Read { .. }));
    }

    #[test]
    fn new_identity_is_private_loadable_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/node.pem");
        let created = create_ed25519_pem_file(&path).unwrap();
        let loaded = load_pem_file(&path).unwrap();
        assert_eq!(created.principal, loaded.principal);
        assert_eq!(loaded.key_type, KeyType::Ed25519);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let before = std::fs::read(&path).unwrap();
        assert!(matches!(
            create_ed25519_pem_file(&path),
            Err(IdentityError::Exists { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
