//! Sealing a job's contents to its key and opening them again: the buyer's
//! and the provider's half of [`market_api::privacy`].
//!
//! A buyer seals with the matcher's public key ([`seal`], [`seal_env`]) and
//! no secret of its own. Whoever may read the job (its provider, an
//! auditor, its owner) makes a [`TransportKey`], asks the matcher's
//! `job_key` for the job's vetKey encrypted to it, and opens that
//! ([`TransportKey::open`]) into a [`JobSecret`], which decrypts the
//! contents and seals the output.

use candid::{Decode, Encode, Principal};
use ic_vetkeys::{
    DerivedPublicKey, EncryptedVetKey, IbeCiphertext, IbeIdentity, IbeSeed, TransportSecretKey,
    VetKey,
};
use market_api::privacy::{JobKey, KEY_ID_BYTES, check_secret_env, job_identity};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The matcher's public key is not a valid derived public key.
    #[error("not a valid vetKD public key")]
    PublicKey,
    /// The encrypted vetKey did not decrypt with the transport key, or did
    /// not verify against the public key for the identity.
    #[error("the job key did not open: {0}")]
    Key(String),
    /// A ciphertext is malformed or did not decrypt with the job's key.
    #[error("the ciphertext did not decrypt: {0}")]
    Ciphertext(String),
    /// A secret env decrypted, but is not an env within the bounds.
    #[error("the secret env is invalid: {0}")]
    Env(String),
}

/// A fresh random key id for a job ([`KEY_ID_BYTES`] bytes).
pub fn new_key_id() -> Vec<u8> {
    random_bytes().to_vec()
}

fn random_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

fn public_key(bytes: &[u8]) -> Result<DerivedPublicKey, SealError> {
    DerivedPublicKey::deserialize(bytes).map_err(|_| SealError::PublicKey)
}

/// Encrypts `plaintext` to the job identity of `owner` and `key_id` under
/// the matcher's public key ([`market_api::privacy::PrivacyKey::public_key`]),
/// with a fresh random seed.
pub fn seal(
    public_key_bytes: &[u8],
    owner: Principal,
    key_id: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let dpk = public_key(public_key_bytes)?;
    let identity = IbeIdentity::from_bytes(&job_identity(owner, key_id));
    let seed = IbeSeed::from_bytes(&random_bytes()).expect("32 bytes are enough");
    Ok(IbeCiphertext::encrypt(&dpk, &identity, plaintext, &seed).serialize())
}

/// Encrypts a secret env (see [`market_api::privacy::Sealed::env`]).
pub fn seal_env(
    public_key_bytes: &[u8],
    owner: Principal,
    key_id: &[u8],
    env: &[(String, String)],
) -> Result<Vec<u8>, SealError> {
    check_secret_env(env).map_err(SealError::Env)?;
    let plaintext = Encode!(&env.to_vec()).map_err(|e| SealError::Env(e.to_string()))?;
    seal(public_key_bytes, owner, key_id, &plaintext)
}

/// A transport key pair: the secret half stays here, the public half goes
/// to `job_key`, and the vetKey comes back encrypted to it.
pub struct TransportKey {
    secret: TransportSecretKey,
}

impl Default for TransportKey {
    fn default() -> Self {
        Self::new()
    }
}

impl TransportKey {
    /// A fresh random transport key.
    pub fn new() -> Self {
        Self::from_seed(random_bytes())
    }

    /// The transport key a seed makes (tests use fixed seeds).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let secret = TransportSecretKey::from_seed(seed.to_vec()).expect("a 32-byte seed");
        Self { secret }
    }

    /// The public half, for [`market_api::privacy::JobKeyRequest`].
    pub fn public_key(&self) -> Vec<u8> {
        self.secret.public_key()
    }

    /// Decrypts the job's vetKey and verifies it against the public key
    /// for the identity, so a key that would not open the contents is
    /// refused here.
    pub fn open(&self, key: &JobKey) -> Result<JobSecret, SealError> {
        let dpk = public_key(&key.public_key)?;
        let encrypted = EncryptedVetKey::deserialize(&key.encrypted_key).map_err(SealError::Key)?;
        let vetkey = encrypted
            .decrypt_and_verify(&self.secret, &dpk, &key.identity)
            .map_err(SealError::Key)?;
        Ok(JobSecret {
            vetkey,
            identity: key.identity.clone(),
            public_key: dpk,
        })
    }
}

/// A job's vetKey: opens its sealed contents and seals its output.
pub struct JobSecret {
    vetkey: VetKey,
    identity: Vec<u8>,
    public_key: DerivedPublicKey,
}

impl JobSecret {
    /// The identity the key is for.
    pub fn identity(&self) -> &[u8] {
        &self.identity
    }

    /// Decrypts a ciphertext sealed to the job.
    pub fn open(&self, ciphertext: &[u8]) -> Result<Vec<u8>, SealError> {
        let ct = IbeCiphertext::deserialize(ciphertext).map_err(SealError::Ciphertext)?;
        ct.decrypt(&self.vetkey).map_err(SealError::Ciphertext)
    }

    /// Decrypts a sealed env and checks it against the env's bounds.
    pub fn open_env(&self, ciphertext: &[u8]) -> Result<Vec<(String, String)>, SealError> {
        let plaintext = self.open(ciphertext)?;
        let env = Decode!(&plaintext, Vec<(String, String)>)
            .map_err(|e| SealError::Env(e.to_string()))?;
        check_secret_env(&env).map_err(SealError::Env)?;
        Ok(env)
    }

    /// Encrypts a job's output to the job's identity. The seed is derived
    /// from the key and the output, so every holder of the key sealing the
    /// same output gets the same bytes (an audit's re-run compares equal),
    /// and no one without the key can predict it.
    pub fn seal_output(&self, output: &[u8]) -> Vec<u8> {
        let key = self
            .vetkey
            .derive_symmetric_key("icp-compute-market/output-seed/v1", 32);
        let mut h = Sha256::new();
        h.update(&key);
        h.update(Sha256::digest(output));
        let seed = IbeSeed::from_bytes(&h.finalize()).expect("32 bytes are enough");
        let identity = IbeIdentity::from_bytes(&self.identity);
        IbeCiphertext::encrypt(&self.public_key, &identity, output, &seed).serialize()
    }
}

/// Whether a key id has the right size.
pub fn valid_key_id(key_id: &[u8]) -> bool {
    key_id.len() == KEY_ID_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use devnet::vetkd::MasterKey;
    use market_api::privacy::{JOB_KEY_CONTEXT, check_ciphertext};

    const MATCHER: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 7, 1, 1];

    fn owner() -> Principal {
        Principal::from_slice(&[42; 29])
    }

    fn master() -> MasterKey {
        MasterKey::from_seed(b"sealing tests")
    }

    /// What the matcher's `job_key` returns for `identity` and `transport`.
    fn job_key(identity: &[u8], transport: &TransportKey) -> JobKey {
        let m = master();
        let encrypted = m
            .encrypted_key(
                MATCHER,
                JOB_KEY_CONTEXT,
                identity,
                &transport.public_key(),
                &[9; 64],
            )
            .unwrap();
        JobKey {
            identity: identity.to_vec(),
            encrypted_key: encrypted.to_vec(),
            public_key: m.public_key(MATCHER, JOB_KEY_CONTEXT).to_vec(),
        }
    }

    fn public_key() -> Vec<u8> {
        master().public_key(MATCHER, JOB_KEY_CONTEXT).to_vec()
    }

    #[test]
    fn sealed_contents_open_with_the_jobs_key_only() {
        let key_id = new_key_id();
        let sealed = seal(&public_key(), owner(), &key_id, b"private input").unwrap();
        assert!(check_ciphertext(&sealed).is_ok());
        let env = vec![("API_KEY".to_string(), "s3cret".to_string())];
        let sealed_env = seal_env(&public_key(), owner(), &key_id, &env).unwrap();

        let transport = TransportKey::new();
        let secret = transport
            .open(&job_key(&job_identity(owner(), &key_id), &transport))
            .unwrap();
        assert_eq!(secret.open(&sealed).unwrap(), b"private input");
        assert_eq!(secret.open_env(&sealed_env).unwrap(), env);

        // The key of another key id, or of another owner with the same key
        // id, opens nothing.
        for identity in [
            job_identity(owner(), &new_key_id()),
            job_identity(Principal::from_slice(&[43; 29]), &key_id),
        ] {
            let other = transport.open(&job_key(&identity, &transport)).unwrap();
            assert!(matches!(other.open(&sealed), Err(SealError::Ciphertext(_))));
        }
    }

    #[test]
    fn a_key_encrypted_to_another_transport_key_does_not_open() {
        let identity = job_identity(owner(), &new_key_id());
        let theirs = TransportKey::new();
        let mine = TransportKey::new();
        assert!(matches!(
            mine.open(&job_key(&identity, &theirs)),
            Err(SealError::Key(_))
        ));
        // Nor does a key for another identity passed off as this one's.
        let mut key = job_key(&job_identity(owner(), &new_key_id()), &mine);
        key.identity = identity;
        assert!(matches!(mine.open(&key), Err(SealError::Key(_))));
    }

    #[test]
    fn forged_ciphertexts_are_refused() {
        let key_id = new_key_id();
        let transport = TransportKey::new();
        let secret = transport
            .open(&job_key(&job_identity(owner(), &key_id), &transport))
            .unwrap();
        let mut sealed = seal(&public_key(), owner(), &key_id, b"input").unwrap();
        assert!(secret.open(&sealed[..20]).is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            secret.open(&sealed),
            Err(SealError::Ciphertext(_))
        ));
        // A ciphertext of bytes that are no env.
        let not_env = seal(&public_key(), owner(), &key_id, b"not candid").unwrap();
        assert!(matches!(secret.open_env(&not_env), Err(SealError::Env(_))));
        // An env past the bounds, sealed by hand.
        let huge = vec![("K".to_string(), "v".repeat(2000))];
        let huge = seal(&public_key(), owner(), &key_id, &Encode!(&huge).unwrap()).unwrap();
        assert!(matches!(secret.open_env(&huge), Err(SealError::Env(_))));
        assert_eq!(
            seal(b"no key", owner(), &key_id, b"x"),
            Err(SealError::PublicKey)
        );
    }

    #[test]
    fn sealed_outputs_are_the_same_for_every_holder_of_the_key() {
        let identity = job_identity(owner(), &new_key_id());
        let a = TransportKey::new();
        let b = TransportKey::new();
        let sa = a.open(&job_key(&identity, &a)).unwrap();
        let sb = b.open(&job_key(&identity, &b)).unwrap();
        let out = sa.seal_output(b"the result");
        assert_eq!(out, sb.seal_output(b"the result"));
        assert_ne!(out, sa.seal_output(b"another result"));
        assert_eq!(sb.open(&out).unwrap(), b"the result");
    }
}
