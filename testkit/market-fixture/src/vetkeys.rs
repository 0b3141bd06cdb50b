//! Job keys as the matcher hands them out, made with a master key of the
//! devnet's kind but without a devnet: for the unit tests of code that
//! seals a job's contents or opens them (the buyer's tool, the provider
//! node's daemon against a fake matcher).

use devnet::vetkd::MasterKey;
use market_api::privacy::{JOB_KEY_CONTEXT, JobKey, PrivacyKey};

/// The canister id the keys are derived under, standing for the matcher.
const MATCHER: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 7, 1, 1];

/// A vetKD master key and what the matcher derives from it.
pub struct TestKeys {
    master: MasterKey,
}

impl TestKeys {
    /// The keys a seed makes (each test suite its own).
    pub fn new(seed: &[u8]) -> Self {
        Self {
            master: MasterKey::from_seed(seed),
        }
    }

    /// The matcher's derived public key: what buyers seal to.
    pub fn public_key(&self) -> Vec<u8> {
        self.master.public_key(MATCHER, JOB_KEY_CONTEXT).to_vec()
    }

    /// `privacy_key`'s answer.
    pub fn privacy_key(&self) -> PrivacyKey {
        PrivacyKey {
            key_name: "dfx_test_key".into(),
            context: JOB_KEY_CONTEXT.to_vec(),
            public_key: self.public_key(),
        }
    }

    /// `job_key`'s answer: the vetKey of `identity` encrypted to
    /// `transport_public_key`; `None` if that is no transport key.
    pub fn job_key(&self, identity: &[u8], transport_public_key: &[u8]) -> Option<JobKey> {
        let encrypted = self
            .master
            .encrypted_key(
                MATCHER,
                JOB_KEY_CONTEXT,
                identity,
                transport_public_key,
                &[9; 64],
            )
            .ok()?;
        Some(JobKey {
            identity: identity.to_vec(),
            encrypted_key: encrypted.to_vec(),
            public_key: self.public_key(),
        })
    }
}
