//! vetKeys: the management canister's `vetkd_public_key` and
//! `vetkd_derive_key`, with one master key per key name held in the clear
//! (no threshold, no NI-DKG), deriving exactly as the IC does so that the
//! `ic-vetkeys` client verifies and decrypts what they answer.
//!
//! Derivation (BLS12-381, generators `g1`, `g2`):
//! - master key: secret `s`, public `S = g2·s` (G2, 96 bytes compressed);
//! - canister key: `δ₁ = H(S ‖ canister, DST_CANISTER)`, `P₁ = S + g2·δ₁`;
//! - context key (only for a non-empty context):
//!   `δ₂ = H(P₁ ‖ context, DST_CONTEXT)`, `P = P₁ + g2·δ₂`;
//! - vetKey for `input`: the augmented BLS signature
//!   `k = H_G1(P ‖ input)·(s + δ₁ + δ₂)`, 48 bytes;
//! - encrypted key for transport key `T = g1·t` and random `r`:
//!   `c1 = g1·r`, `c2 = g2·r`, `c3 = T·r + k` (192 bytes, `c1 ‖ c2 ‖ c3`).
//!
//! `H(a ‖ b, dst)` is hash-to-field with expand_message_xmd(SHA-256) over
//! `len(a) as u64 BE, a, len(b) as u64 BE, b`.
//!
//! As on the IC: both methods refuse ingress; `vetkd_public_key` is free
//! and derives for `canister_id` (the caller by default);
//! `vetkd_derive_key` derives for the caller, checks the key, then the
//! transport key, then the fee (10 B cycles on a 13-node subnet, scaled
//! with the key's subnet), each refusal a `CANISTER_REJECT` refunding
//! every cycle; the fee is kept and the rest refunded. The keys are fixed
//! (not drawn from the devnet's seed) so that ciphertexts stay decryptable
//! across a save and restore; the encryption's randomness comes from the
//! devnet's seeded generator.

use candid::{Decode, Encode, Principal};
use ic_bls12_381::hash_to_curve::{ExpandMsgXmd, HashToCurve, HashToField};
use ic_bls12_381::{G1Affine, G1Projective, G2Affine, Scalar};
use ic_management_canister_types::{
    VetKDCurve, VetKDDeriveKeyArgs, VetKDDeriveKeyResult, VetKDKeyId, VetKDPublicKeyArgs,
    VetKDPublicKeyResult,
};
use sha2::{Digest, Sha256, Sha512};

use crate::Devnet;
use crate::error::{Reject, RejectCode};

/// Compressed G1 point.
pub const G1_BYTES: usize = 48;
/// Compressed G2 point.
pub const G2_BYTES: usize = 96;
/// `c1 ‖ c2 ‖ c3`.
pub const ENCRYPTED_KEY_BYTES: usize = 2 * G1_BYTES + G2_BYTES;

const DST_CANISTER: &[u8] = b"ic-vetkd-bls12-381-g2-canister-id";
const DST_CONTEXT: &[u8] = b"ic-vetkd-bls12-381-g2-context";
/// The ciphersuite of draft-irtf-cfrg-bls-signature's message augmentation.
const DST_AUGMENTED_SIG: &[u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_AUG_";

/// The transport public key is not a compressed G1 point (48 bytes, on the
/// curve, in the prime-order subgroup). The identity point is accepted, as
/// on the IC: it yields the vetKey unencrypted in `c3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTransportKey;

/// Scalar offset of one derivation step.
fn derivation_offset(point: &[u8], data: &[u8], dst: &[u8]) -> Scalar {
    let mut msg = Vec::with_capacity(16 + point.len() + data.len());
    for part in [point, data] {
        msg.extend_from_slice(&(part.len() as u64).to_be_bytes());
        msg.extend_from_slice(part);
    }
    let mut out = [Scalar::zero()];
    Scalar::hash_to_field::<ExpandMsgXmd<Sha256>>(&msg, dst, &mut out);
    out[0]
}

/// `H_G1(pk ‖ input)`: the point a vetKey for `input` signs.
fn augmented_message(derived_pk: &G2Affine, input: &[u8]) -> G1Affine {
    let mut msg = Vec::with_capacity(G2_BYTES + input.len());
    msg.extend_from_slice(&derived_pk.to_compressed());
    msg.extend_from_slice(input);
    let pt =
        <G1Projective as HashToCurve<ExpandMsgXmd<Sha256>>>::hash_to_curve(&msg, DST_AUGMENTED_SIG);
    G1Affine::from(pt)
}

/// Parses a transport public key as the IC does.
pub fn parse_transport_key(bytes: &[u8]) -> Result<G1Affine, InvalidTransportKey> {
    let arr: &[u8; G1_BYTES] = bytes.try_into().map_err(|_| InvalidTransportKey)?;
    G1Affine::from_compressed(arr)
        .into_option()
        .ok_or(InvalidTransportKey)
}

/// One vetKD master key, secret and public.
#[derive(Clone)]
pub struct MasterKey {
    secret: Scalar,
    public: G2Affine,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", crate::hex(&self.public.to_compressed()))
    }
}

impl MasterKey {
    /// A master key determined by `seed` (a test network's key: anyone who
    /// knows the seed knows the secret).
    pub fn from_seed(seed: &[u8]) -> Self {
        let wide: [u8; 64] = Sha512::new()
            .chain_update(b"devnet-vetkd-master-key\0")
            .chain_update(seed)
            .finalize()
            .into();
        let secret = Scalar::from_bytes_wide(&wide);
        let public = G2Affine::from(G2Affine::generator() * secret);
        MasterKey { secret, public }
    }

    /// The master public key, compressed G2 (what `ic-vetkeys`'
    /// `MasterPublicKey::deserialize` reads).
    pub fn master_public_key(&self) -> [u8; G2_BYTES] {
        self.public.to_compressed()
    }

    /// The derived secret and public key for `canister` (its principal's
    /// bytes) and `context`.
    fn derive(&self, canister: &[u8], context: &[u8]) -> (Scalar, G2Affine) {
        let mut delta = derivation_offset(&self.public.to_compressed(), canister, DST_CANISTER);
        let mut public = G2Affine::from(G2Affine::generator() * delta + self.public);
        if !context.is_empty() {
            let step = derivation_offset(&public.to_compressed(), context, DST_CONTEXT);
            public = G2Affine::from(G2Affine::generator() * step + public);
            delta += step;
        }
        (self.secret + delta, public)
    }

    /// `vetkd_public_key`'s `public_key`: compressed G2, 96 bytes.
    pub fn public_key(&self, canister: &[u8], context: &[u8]) -> [u8; G2_BYTES] {
        self.derive(canister, context).1.to_compressed()
    }

    /// The vetKey itself (an augmented BLS signature on `input`), 48 bytes.
    /// The IC never returns it in the clear except to the identity
    /// transport key; tests use it to check what the client recovers.
    pub fn vetkey(&self, canister: &[u8], context: &[u8], input: &[u8]) -> [u8; G1_BYTES] {
        let (secret, public) = self.derive(canister, context);
        G1Affine::from(augmented_message(&public, input) * secret).to_compressed()
    }

    /// `vetkd_derive_key`'s `encrypted_key`: `c1 ‖ c2 ‖ c3`, 192 bytes.
    /// `randomness` (64 bytes, reduced mod the group order) picks `r`; the
    /// same arguments with other randomness give another encryption of the
    /// same vetKey.
    pub fn encrypted_key(
        &self,
        canister: &[u8],
        context: &[u8],
        input: &[u8],
        transport_public_key: &[u8],
        randomness: &[u8; 64],
    ) -> Result<[u8; ENCRYPTED_KEY_BYTES], InvalidTransportKey> {
        let transport = parse_transport_key(transport_public_key)?;
        let (secret, public) = self.derive(canister, context);
        let r = Scalar::from_bytes_wide(randomness);
        let c1 = G1Affine::from(G1Affine::generator() * r);
        let c2 = G2Affine::from(G2Affine::generator() * r);
        let c3 = G1Affine::from(transport * r + augmented_message(&public, input) * secret);
        let mut out = [0u8; ENCRYPTED_KEY_BYTES];
        out[..G1_BYTES].copy_from_slice(&c1.to_compressed());
        out[G1_BYTES..G1_BYTES + G2_BYTES].copy_from_slice(&c2.to_compressed());
        out[G1_BYTES + G2_BYTES..].copy_from_slice(&c3.to_compressed());
        Ok(out)
    }
}

/// The IC's vetKD fee on a 13-node subnet (its `VETKD_FEE`); the IC scales
/// it linearly with the size of the subnet holding the key.
pub const VETKD_FEE_13_NODES: u128 = 10_000_000_000;

/// The fee for a key held by a subnet of `nodes` nodes: 10 B × n / 13
/// (13 nodes: 10_000_000_000; 34 nodes: 26_153_846_153).
pub fn vetkd_fee(nodes: u128) -> u128 {
    VETKD_FEE_13_NODES * nodes / 13
}

/// The devnet's keys, by name, with the size of the subnet whose price
/// they are charged at: the local replica's key, and mainnet's test and
/// production keys' names (with other master keys than mainnet's).
pub const KEYS: [(&str, u128); 3] = [("dfx_test_key", 13), ("test_key_1", 13), ("key_1", 34)];

/// The seed of the devnet's master keys: fixed, so they are the same on
/// every devnet and after every restore.
const KEYS_SEED: &[u8] = b"devnet vetkd master key v1";

/// The devnet's master keys (see [`KEYS`]).
pub struct VetKdKeys {
    keys: Vec<(&'static str, MasterKey, u128)>,
}

fn reject(message: impl Into<String>) -> Reject {
    Reject::new(RejectCode::CanisterReject, message)
}

impl VetKdKeys {
    /// The devnet's keys, made once per process.
    pub fn devnet() -> &'static VetKdKeys {
        static KEYS_ONCE: std::sync::OnceLock<VetKdKeys> = std::sync::OnceLock::new();
        KEYS_ONCE.get_or_init(|| VetKdKeys {
            keys: KEYS
                .iter()
                .map(|&(name, nodes)| {
                    let mut seed = KEYS_SEED.to_vec();
                    seed.extend_from_slice(name.as_bytes());
                    (name, MasterKey::from_seed(&seed), nodes)
                })
                .collect(),
        })
    }

    /// The master key named `name`.
    pub fn master(&self, name: &str) -> Option<&MasterKey> {
        self.keys
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, k, _)| k)
    }

    /// The fee `vetkd_derive_key` takes for key `name`.
    pub fn fee(&self, name: &str) -> Option<u128> {
        let nodes = self.keys.iter().find(|(n, ..)| *n == name)?.2;
        Some(vetkd_fee(nodes))
    }

    fn key(&self, key_id: &VetKDKeyId) -> Result<&MasterKey, Reject> {
        match key_id.curve {
            VetKDCurve::Bls12_381_G2 => {}
        }
        self.master(&key_id.name).ok_or_else(|| {
            reject(format!(
                "Subnet does not hold threshold key vetkd:Bls12_381_G2:{}.",
                key_id.name
            ))
        })
    }

    /// `vetkd_public_key` from canister `caller`: the reply's Candid.
    pub fn public_key_reply(&self, caller: Principal, arg: &[u8]) -> Result<Vec<u8>, Reject> {
        let args = Decode!(arg, VetKDPublicKeyArgs)
            .map_err(|e| reject(format!("vetkd_public_key: invalid argument: {e}")))?;
        let key = self.key(&args.key_id)?;
        let canister = args.canister_id.unwrap_or(caller);
        let public_key = key.public_key(canister.as_slice(), &args.context).to_vec();
        Encode!(&VetKDPublicKeyResult { public_key })
            .map_err(|e| reject(format!("vetkd_public_key: encoding the reply: {e}")))
    }

    /// `vetkd_derive_key` from canister `caller` with `cycles` attached,
    /// encrypting with `randomness`: the reply or reject, and the cycles
    /// refunded.
    pub fn derive_key_reply(
        &self,
        caller: Principal,
        arg: &[u8],
        cycles: u128,
        randomness: &[u8; 64],
    ) -> (Result<Vec<u8>, Reject>, u128) {
        let args = match Decode!(arg, VetKDDeriveKeyArgs) {
            Ok(a) => a,
            Err(e) => {
                let msg = format!("vetkd_derive_key: invalid argument: {e}");
                return (Err(reject(msg)), cycles);
            }
        };
        let key = match self.key(&args.key_id) {
            Ok(k) => k,
            Err(e) => return (Err(e), cycles),
        };
        let Some(fee) = self.fee(&args.key_id.name) else {
            return (Err(reject("unknown key")), cycles);
        };
        let encrypted = key.encrypted_key(
            caller.as_slice(),
            &args.context,
            &args.input,
            &args.transport_public_key,
            randomness,
        );
        let Ok(encrypted) = encrypted else {
            let msg = "The provided transport public key is invalid.";
            return (Err(reject(msg)), cycles);
        };
        if cycles < fee {
            let msg = format!(
                "vetkd_derive_key request sent with {cycles} cycles, but {fee} cycles are required."
            );
            return (Err(reject(msg)), cycles);
        }
        let reply = Encode!(&VetKDDeriveKeyResult {
            encrypted_key: encrypted.to_vec()
        });
        match reply {
            Ok(bytes) => (Ok(bytes), cycles - fee),
            Err(e) => (
                Err(reject(format!("vetkd_derive_key: encoding the reply: {e}"))),
                cycles,
            ),
        }
    }
}

impl Devnet {
    /// Canister `caller`'s `vetkd_derive_key` with `cycles` attached: the
    /// reply or reject, and the cycles refunded.
    pub(crate) fn vetkd_derive_key(
        &mut self,
        caller: Principal,
        arg: &[u8],
        cycles: u128,
    ) -> (Result<Vec<u8>, Reject>, u128) {
        let mut randomness = [0u8; 64];
        self.rng.fill(&mut randomness);
        VetKdKeys::devnet().derive_key_reply(caller, arg, cycles, &randomness)
    }

    /// The master public key named `name` (96 bytes), for tests that
    /// derive what a canister's key must be.
    pub fn vetkd_master_public_key(&self, name: &str) -> Option<[u8; G2_BYTES]> {
        VetKdKeys::devnet()
            .master(name)
            .map(MasterKey::master_public_key)
    }
}
