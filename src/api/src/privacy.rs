//! Private jobs: contents sealed to the job with vetKeys identity-based
//! encryption (IBE), and the key handed to the provider that runs it.
//!
//! The matcher holds one vetKD-derived public key (its canister's key for
//! [`JOB_KEY_CONTEXT`]). A buyer encrypts a job's input, its secret env, or a
//! service's secret env to the identity [`job_identity`]`(owner, key_id)`
//! under that key, where `key_id` is 32 bytes it picks at random for the job
//! (the job's id does not exist until it is submitted; tying the identity to
//! the owner means no one else's job can name it). The ciphertexts are stored
//! as the matcher stores any content and shown to no one but the job's
//! readers.
//!
//! The matcher asks the management canister for the identity's vetKey
//! (`vetkd_derive_key`) only for a transport key given by the provider
//! holding an assignment of a job with that identity (an audit's re-run
//! is such a job), or by the job's owner (to read a sealed result); the
//! vetKey comes back encrypted to that transport key, so only its holder can
//! open it. The provider decrypts the contents, runs the job, and, when
//! [`Sealed::output`] asks for it, encrypts the output to the same identity.
//!
//! What this protects: a job's contents from the public, from the chain's
//! readers and from every provider but the ones that run it. What it does
//! not: the provider running the job sees the plaintext (there is no enclave).
//!
//! The byte formats (IBE ciphertexts, transport keys, encrypted keys) are
//! the `ic-vetkeys` crate's; the matcher checks only their shape, never
//! decrypts, and needs no cryptography of its own.

use candid::{CandidType, Deserialize, Principal};
use serde::Serialize;

/// The vetKD context the matcher derives every job key under: its domain
/// separator (the canister's id is part of the derivation anyway).
pub const JOB_KEY_CONTEXT: &[u8] = b"icp-compute-market/job-key/v1";

/// Size of a job's key id, in bytes.
pub const KEY_ID_BYTES: usize = 32;

/// Size of a transport public key (a compressed BLS12-381 G1 point).
pub const TRANSPORT_KEY_BYTES: usize = 48;

/// Size of a derived public key (a compressed BLS12-381 G2 point).
pub const PUBLIC_KEY_BYTES: usize = 96;

/// The first bytes of every IBE ciphertext (format version 1).
pub const IBE_HEADER: [u8; 8] = *b"IC IBE\x00\x01";

/// What an IBE ciphertext adds to its plaintext: the header, a G2 point and
/// a 32-byte masked seed.
pub const IBE_OVERHEAD: usize = IBE_HEADER.len() + 96 + 32;

/// Largest sealed env ciphertext: room for the candid encoding of the
/// env's bounds (64 entries of 1 KiB names and values) and the overhead.
pub const MAX_SEALED_ENV_BYTES: usize = 160 * 1024;

/// Most vetKeys the matcher derives for one assignment attempt (a daemon
/// that restarts makes a new transport key) or for one job's owner.
pub const MAX_KEYS_PER_HOLDER: u32 = 4;

/// Cycles `vetkd_derive_key` costs on the IC with `key_1` (34 nodes).
pub const KEY_1_DERIVE_CYCLES: u128 = 26_153_846_153;

/// Cycles `vetkd_derive_key` costs on the IC with `test_key_1` (13 nodes).
pub const TEST_KEY_DERIVE_CYCLES: u128 = 10_000_000_000;

/// Which vetKD master key the matcher uses, in `MatcherInit.privacy`.
/// Without it the market takes no sealed jobs.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct PrivacyConfig {
    /// The key's name: `key_1` on the IC, `test_key_1` for tests on the
    /// IC, `dfx_test_key` locally.
    pub key_name: String,
    /// Cycles attached to each `vetkd_derive_key` call; `None`: the IC's
    /// fee for the key (see [`PrivacyConfig::derive_cycles`]).
    pub derive_key_cycles: Option<u128>,
}

impl PrivacyConfig {
    /// Cycles attached to each `vetkd_derive_key` call.
    pub fn derive_cycles(&self) -> u128 {
        self.derive_key_cycles
            .unwrap_or(if self.key_name == "key_1" {
                KEY_1_DERIVE_CYCLES
            } else {
                TEST_KEY_DERIVE_CYCLES
            })
    }

    /// Checks the configuration.
    pub fn check(&self) -> Result<(), String> {
        if self.key_name.is_empty() || self.key_name.len() > 64 {
            return Err("privacy.key_name must be 1 to 64 bytes".into());
        }
        Ok(())
    }
}

/// What of a job (or a service's replica) is sealed to its key.
///
/// On a [`crate::matcher::JobSpec`]: `input` says the spec's input is an
/// IBE ciphertext, `env` holds the ciphertext of the secret env, and
/// `output` asks the provider to encrypt the output. On a
/// [`crate::matcher::ServiceSpec`] only `env` may be set.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The key id, [`KEY_ID_BYTES`] random bytes: with the owner's
    /// principal it makes the identity the contents are encrypted to
    /// ([`job_identity`]).
    #[serde(with = "serde_bytes")]
    pub key_id: Vec<u8>,
    /// Whether the spec's `input` is the IBE ciphertext of the real input.
    pub input: bool,
    /// The IBE ciphertext of the secret env: the candid encoding of a
    /// `vec record { text; text }`, added to the spec's plain env when the
    /// job runs (a secret with the name of a plain variable replaces it).
    /// Its plaintext obeys the env's bounds.
    #[serde(default)]
    pub env: Option<serde_bytes::ByteBuf>,
    /// Whether the provider encrypts the job's output to the job's
    /// identity, so that only the owner (asking for the key with
    /// `job_key`) reads it. The encryption is deterministic given the
    /// key and the output, so an audit's re-run compares equal.
    pub output: bool,
}

impl Sealed {
    /// Checks the shape of a job's sealing against its spec's `input`:
    /// a key id of the right size, and ciphertexts that could be IBE
    /// ciphertexts (their header and size; only the key's holder can tell
    /// more). Errors name the field.
    pub fn check_job(&self, input: &[u8]) -> Result<(), (&'static str, String)> {
        self.check_common()?;
        if self.input {
            check_ciphertext(input).map_err(|e| ("input", e))?;
        }
        Ok(())
    }

    /// Checks the shape of a service's sealing: only its env may be sealed.
    pub fn check_service(&self) -> Result<(), (&'static str, String)> {
        self.check_common()?;
        if self.input || self.output {
            return Err((
                "sealed",
                "a service seals its env only: input and output must be false".into(),
            ));
        }
        Ok(())
    }

    fn check_common(&self) -> Result<(), (&'static str, String)> {
        if self.key_id.len() != KEY_ID_BYTES {
            return Err((
                "sealed.key_id",
                format!("must be {KEY_ID_BYTES} bytes, not {}", self.key_id.len()),
            ));
        }
        if let Some(env) = &self.env {
            if env.len() > MAX_SEALED_ENV_BYTES {
                return Err((
                    "sealed.env",
                    format!("at most {MAX_SEALED_ENV_BYTES} bytes"),
                ));
            }
            check_ciphertext(env).map_err(|e| ("sealed.env", e))?;
        }
        Ok(())
    }

    /// Bytes the sealing adds to what the matcher stores for the job.
    pub fn stored_bytes(&self) -> u64 {
        (self.key_id.len() + self.env.as_ref().map_or(0, |e| e.len())) as u64
    }
}

/// Whether `bytes` has the shape of an IBE ciphertext: the version-1 header
/// and at least the overhead's length.
pub fn check_ciphertext(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < IBE_OVERHEAD {
        return Err(format!(
            "not an IBE ciphertext: {} bytes, at least {IBE_OVERHEAD} expected",
            bytes.len()
        ));
    }
    if bytes[..IBE_HEADER.len()] != IBE_HEADER {
        return Err("not an IBE ciphertext: unknown header".into());
    }
    Ok(())
}

/// Checks a decrypted secret env against the env's bounds: at most
/// [`crate::matcher::MAX_ARGS`] entries, each name and value at most
/// [`crate::matcher::MAX_ARG_LEN`] bytes, names non-empty and without
/// `=`, no NUL anywhere.
pub fn check_secret_env(env: &[(String, String)]) -> Result<(), String> {
    use crate::matcher::{MAX_ARG_LEN, MAX_ARGS};
    if env.len() > MAX_ARGS {
        return Err(format!("at most {MAX_ARGS} entries"));
    }
    if env
        .iter()
        .any(|(k, v)| k.is_empty() || k.len() > MAX_ARG_LEN || v.len() > MAX_ARG_LEN)
    {
        return Err(format!(
            "each name (non-empty) and value at most {MAX_ARG_LEN} bytes"
        ));
    }
    // What no process environment can hold: a name with `=`, a NUL anywhere.
    if env
        .iter()
        .any(|(k, v)| k.contains(['=', '\0']) || v.contains('\0'))
    {
        return Err("a name holds `=` or NUL, or a value NUL".into());
    }
    Ok(())
}

/// The IBE identity (the vetKD `input`) of a job's sealed contents: the
/// owner's principal, length-prefixed, then the key id.
pub fn job_identity(owner: Principal, key_id: &[u8]) -> Vec<u8> {
    let owner = owner.as_slice();
    let mut out = Vec::with_capacity(1 + owner.len() + key_id.len());
    // A principal is at most 29 bytes, so its length fits one byte.
    out.push(owner.len() as u8);
    out.extend_from_slice(owner);
    out.extend_from_slice(key_id);
    out
}

/// The matcher's job key, as `privacy_key` shows it.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct PrivacyKey {
    /// The vetKD master key's name.
    pub key_name: String,
    /// The context the matcher derives under ([`JOB_KEY_CONTEXT`]).
    #[serde(with = "serde_bytes")]
    pub context: Vec<u8>,
    /// The derived public key (`vetkd_public_key` of the matcher for the
    /// context, [`PUBLIC_KEY_BYTES`] bytes): what contents are encrypted
    /// under.
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
}

/// Arguments of `job_key`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JobKeyRequest {
    /// The job (a one-off job, a job in a reservation, an audit's re-run, or
    /// a service replica's slot).
    pub job_id: crate::JobId,
    /// For the provider: the assignment attempt it holds; ignored for the
    /// owner.
    pub attempt: u32,
    /// The transport public key the vetKey is encrypted to
    /// ([`TRANSPORT_KEY_BYTES`] bytes).
    #[serde(with = "serde_bytes")]
    pub transport_public_key: Vec<u8>,
}

/// The job's vetKey, encrypted to the transport key asked with.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JobKey {
    /// The identity the key is for ([`job_identity`]).
    #[serde(with = "serde_bytes")]
    pub identity: Vec<u8>,
    /// The encrypted vetKey, as `vetkd_derive_key` returned it.
    #[serde(with = "serde_bytes")]
    pub encrypted_key: Vec<u8>,
    /// The derived public key it verifies against ([`PrivacyKey::public_key`]).
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_of_different_owners_never_collide() {
        let a = Principal::from_slice(&[1, 2]);
        let b = Principal::from_slice(&[1]);
        // Without the length prefix, `a ‖ key` and `b ‖ 2 ‖ key'` could be equal.
        let mut key_b = vec![2];
        key_b.extend_from_slice(&[7; 31]);
        assert_ne!(
            job_identity(a, &[7; 32])[..33],
            job_identity(b, &key_b)[..33]
        );
        assert_eq!(job_identity(a, &[7; 32]).len(), 1 + 2 + 32);
    }

    #[test]
    fn secret_envs_a_process_cannot_hold_are_refused() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(check_secret_env(&env("API_KEY", "x=y")).is_ok());
        assert!(check_secret_env(&env("A=B", "x")).is_err());
        assert!(check_secret_env(&env("A\0", "x")).is_err());
        assert!(check_secret_env(&env("A", "x\0")).is_err());
        assert!(check_secret_env(&env("", "x")).is_err());
        assert!(check_secret_env(&env("A", &"x".repeat(1025))).is_err());
    }

    #[test]
    fn ciphertext_shapes() {
        let mut ok = IBE_HEADER.to_vec();
        ok.resize(IBE_OVERHEAD, 0);
        assert!(check_ciphertext(&ok).is_ok());
        assert!(check_ciphertext(&ok[..IBE_OVERHEAD - 1]).is_err());
        ok[0] = b'X';
        assert!(check_ciphertext(&ok).is_err());
    }

    #[test]
    fn sealing_shapes() {
        let mut ct = IBE_HEADER.to_vec();
        ct.resize(IBE_OVERHEAD + 5, 0);
        let s = Sealed {
            key_id: vec![1; 32],
            input: true,
            env: Some(ct.clone().into()),
            output: true,
        };
        assert!(s.check_job(&ct).is_ok());
        assert_eq!(s.check_job(b"plain").unwrap_err().0, "input");
        assert_eq!(s.check_service().unwrap_err().0, "sealed");
        let short = Sealed {
            key_id: vec![1; 31],
            ..s.clone()
        };
        assert_eq!(short.check_job(&ct).unwrap_err().0, "sealed.key_id");
        let env_only = Sealed {
            input: false,
            output: false,
            env: Some(b"forged".to_vec().into()),
            ..s
        };
        assert_eq!(env_only.check_service().unwrap_err().0, "sealed.env");
    }
}
