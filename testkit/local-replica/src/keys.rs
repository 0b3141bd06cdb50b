//! The devnet's keys: a BLS12-381 root key that signs certificates (the
//! devnet is its own root subnet, so there is no delegation) and one node's
//! Ed25519 key that signs query responses.

use candid::Principal;
use sha2::{Digest, Sha256};

/// DER prefix of a BLS12-381 G2 public key as the IC encodes its root key.
const BLS_DER_PREFIX: &[u8; 37] = b"\x30\x81\x82\x30\x1d\x06\x0d\x2b\x06\x01\x04\x01\x82\xdc\x7c\x05\x03\x01\x02\x01\x06\x0c\x2b\x06\x01\x04\x01\x82\xdc\x7c\x05\x03\x02\x01\x03\x61\x00";

/// Domain separator of certificate signatures.
const STATE_ROOT_DOMAIN: &[u8] = b"\x0Dic-state-root";

/// The keys of a devnet node. Generated at start; clients learn the root key
/// from `/api/v2/status` (`fetch_root_key`), as with any local replica.
pub struct NodeKeys {
    seed: [u8; 32],
    bls: ic_verify_bls_signature::PrivateKey,
    root_key_der: Vec<u8>,
    subnet_id: Principal,
    node_key: ic_ed25519::PrivateKey,
    node_key_der: Vec<u8>,
    node_id: Principal,
}

impl NodeKeys {
    /// Keys derived from 32 bytes of the operating system's randomness.
    pub fn generate() -> Self {
        // ic-ed25519 draws from the OS generator; its raw bytes seed both keys.
        let seed = ic_ed25519::PrivateKey::generate().serialize_raw();
        Self::from_seed(seed)
    }

    /// Keys derived deterministically from `seed` (tests, reproducible demos).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let bls = (0u32..)
            .find_map(|counter| {
                let bytes = Sha256::new()
                    .chain_update(b"devnet bls root key")
                    .chain_update(seed)
                    .chain_update(counter.to_be_bytes())
                    .finalize();
                ic_verify_bls_signature::PrivateKey::deserialize(&bytes).ok()
            })
            .expect("some hash is a valid scalar");
        let mut root_key_der = BLS_DER_PREFIX.to_vec();
        root_key_der.extend_from_slice(&bls.public_key().serialize());
        let node_seed: [u8; 32] = Sha256::new()
            .chain_update(b"devnet node key")
            .chain_update(seed)
            .finalize()
            .into();
        let node_key = ic_ed25519::PrivateKey::deserialize_raw_32(&node_seed);
        let node_key_der = node_key.public_key().serialize_rfc8410_der();
        NodeKeys {
            seed,
            subnet_id: Principal::self_authenticating(&root_key_der),
            node_id: Principal::self_authenticating(&node_key_der),
            bls,
            root_key_der,
            node_key,
            node_key_der,
        }
    }

    /// The seed the keys derive from (saved in a state directory, so the
    /// root key outlives a restart).
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// The root public key, DER-encoded (133 bytes), as `/api/v2/status` serves it.
    pub fn root_key_der(&self) -> &[u8] {
        &self.root_key_der
    }

    /// The subnet's id: the self-authenticating principal of the root key,
    /// which is what ic-agent assumes for a certificate without delegation.
    pub fn subnet_id(&self) -> Principal {
        self.subnet_id
    }

    /// The only node's id.
    pub fn node_id(&self) -> Principal {
        self.node_id
    }

    /// The node's Ed25519 public key, DER-encoded (44 bytes).
    pub fn node_key_der(&self) -> &[u8] {
        &self.node_key_der
    }

    /// The BLS signature (48 bytes) of a state tree with this root hash.
    pub fn sign_state_root(&self, root_hash: &[u8; 32]) -> Vec<u8> {
        let mut msg = STATE_ROOT_DOMAIN.to_vec();
        msg.extend_from_slice(root_hash);
        self.bls.sign(&msg).serialize().to_vec()
    }

    /// Whether `signature` is the root key's over a state tree with this
    /// root hash (how a client checks a certificate).
    pub fn verifies_state_root(&self, root_hash: &[u8; 32], signature: &[u8]) -> bool {
        let mut msg = STATE_ROOT_DOMAIN.to_vec();
        msg.extend_from_slice(root_hash);
        ic_verify_bls_signature::verify_bls_signature(signature, &msg, &self.root_key_der[37..])
            .is_ok()
    }

    /// The node's Ed25519 signature of a query response's signable bytes.
    pub fn sign_as_node(&self, msg: &[u8]) -> Vec<u8> {
        self.node_key.sign_message(msg).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_key_signs_verifiably_and_seeds_are_deterministic() {
        let keys = NodeKeys::from_seed([7; 32]);
        assert_eq!(keys.root_key_der().len(), 133);
        assert_eq!(keys.node_key_der().len(), 44);
        let hash = [3u8; 32];
        let sig = keys.sign_state_root(&hash);
        let mut msg = STATE_ROOT_DOMAIN.to_vec();
        msg.extend_from_slice(&hash);
        ic_verify_bls_signature::verify_bls_signature(&sig, &msg, &keys.root_key_der()[37..])
            .expect("valid signature");
        assert_eq!(
            NodeKeys::from_seed([7; 32]).root_key_der(),
            keys.root_key_der()
        );
        assert_ne!(
            NodeKeys::from_seed([8; 32]).root_key_der(),
            keys.root_key_der()
        );
    }
}
