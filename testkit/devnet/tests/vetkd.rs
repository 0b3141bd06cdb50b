//! vetKeys: the management canister's `vetkd_public_key` and
//! `vetkd_derive_key`, called by a canister (the probe), checked with the
//! `ic-vetkeys` client as a canister's users would: the derived public key
//! is the one the client derives from the master key, an encrypted key
//! decrypts and verifies with the transport secret and opens an IBE
//! ciphertext to its identity; the IC's fee is taken and its refusals made.

mod common;

use candid::{Decode, Encode, Principal};
use common::*;
use devnet::Devnet;
use devnet::vetkd::VETKD_FEE_13_NODES;
use ic_management_canister_types::{
    VetKDCurve, VetKDDeriveKeyArgs, VetKDDeriveKeyResult, VetKDKeyId, VetKDPublicKeyArgs,
    VetKDPublicKeyResult,
};
use ic_vetkeys::{
    DerivedPublicKey, EncryptedVetKey, IbeCiphertext, IbeIdentity, IbeSeed, MasterPublicKey,
    TransportSecretKey,
};

const CONTEXT: &[u8] = b"market-job-v1";

fn key_id(name: &str) -> VetKDKeyId {
    VetKDKeyId {
        curve: VetKDCurve::Bls12_381_G2,
        name: name.into(),
    }
}

fn management(
    dn: &mut Devnet,
    probe: Principal,
    method: &str,
    arg: Vec<u8>,
    cycles: u128,
) -> CallOutcome {
    let (out,): (CallOutcome,) = dn
        .update_args(
            probe,
            user(),
            "call_management",
            (method.to_string(), arg, cycles),
        )
        .expect("call_management");
    out
}

fn public_key(dn: &mut Devnet, probe: Principal, name: &str) -> CallOutcome {
    let arg = Encode!(&VetKDPublicKeyArgs {
        canister_id: None,
        context: CONTEXT.to_vec(),
        key_id: key_id(name),
    })
    .unwrap();
    management(dn, probe, "vetkd_public_key", arg, 0)
}

fn derive_key(
    dn: &mut Devnet,
    probe: Principal,
    input: &[u8],
    transport: &[u8],
    cycles: u128,
) -> CallOutcome {
    let arg = Encode!(&VetKDDeriveKeyArgs {
        input: input.to_vec(),
        context: CONTEXT.to_vec(),
        transport_public_key: transport.to_vec(),
        key_id: key_id("dfx_test_key"),
    })
    .unwrap();
    management(dn, probe, "vetkd_derive_key", arg, cycles)
}

fn rejected(out: CallOutcome) -> (u32, String) {
    match out {
        CallOutcome::Reject(code, message) => (code, message),
        other => panic!("expected a reject, got {other:?}"),
    }
}

fn balance(dn: &mut Devnet, c: Principal) -> u128 {
    dn.cycle_balance(c).expect("the canister exists")
}

#[test]
fn a_canisters_key_is_the_one_the_client_derives_and_its_vetkey_opens_ibe() {
    let (mut dn, [probe]) = with_probes(["p"]);
    let CallOutcome::Reply(bytes) = public_key(&mut dn, probe, "dfx_test_key") else {
        panic!("no public key")
    };
    let dpk_bytes = Decode!(&bytes, VetKDPublicKeyResult).unwrap().public_key;
    assert_eq!(dpk_bytes.len(), 96);
    // The IC derives it as ic-vetkeys does from the master key.
    let master = dn.vetkd_master_public_key("dfx_test_key").unwrap();
    let expected = MasterPublicKey::deserialize(&master)
        .unwrap()
        .derive_canister_key(probe.as_slice())
        .derive_sub_key(CONTEXT);
    assert_eq!(dpk_bytes, expected.serialize());
    let dpk = DerivedPublicKey::deserialize(&dpk_bytes).unwrap();

    // A buyer encrypts to the identity "job-17" under the canister's key.
    let secret = b"API_KEY=s3cr3t";
    let ct = IbeCiphertext::encrypt(
        &dpk,
        &IbeIdentity::from_bytes(b"job-17"),
        secret,
        &IbeSeed::from_bytes(&[7; 32]).unwrap(),
    );

    // The provider's transport key; the canister asks for job-17's key.
    let tsk = TransportSecretKey::from_seed(vec![9; 32]).unwrap();
    dn.reset_cycles_burned();
    let before = balance(&mut dn, probe);
    let CallOutcome::Reply(bytes) = derive_key(
        &mut dn,
        probe,
        b"job-17",
        &tsk.public_key(),
        3 * VETKD_FEE_13_NODES,
    ) else {
        panic!("no encrypted key")
    };
    assert_eq!(
        before - balance(&mut dn, probe) - running_costs(&dn, probe),
        VETKD_FEE_13_NODES,
        "the fee is kept, the rest refunded"
    );
    assert_eq!(dn.cycles_burned(probe).unwrap().vetkd, VETKD_FEE_13_NODES);
    let encrypted = Decode!(&bytes, VetKDDeriveKeyResult).unwrap().encrypted_key;
    assert_eq!(encrypted.len(), 192);
    let vetkey = EncryptedVetKey::deserialize(&encrypted)
        .unwrap()
        .decrypt_and_verify(&tsk, &dpk, b"job-17")
        .expect("the client verifies the key");
    assert_eq!(ct.decrypt(&vetkey).unwrap(), secret);

    // Another transport secret can't open it; nor does job-17's key verify
    // for another identity.
    let other = TransportSecretKey::from_seed(vec![8; 32]).unwrap();
    assert!(
        EncryptedVetKey::deserialize(&encrypted)
            .unwrap()
            .decrypt_and_verify(&other, &dpk, b"job-17")
            .is_err()
    );
    assert!(
        EncryptedVetKey::deserialize(&encrypted)
            .unwrap()
            .decrypt_and_verify(&tsk, &dpk, b"job-18")
            .is_err()
    );
}

#[test]
fn the_ics_refusals_keep_no_cycles() {
    let (mut dn, [probe]) = with_probes(["p"]);
    let tsk = TransportSecretKey::from_seed(vec![9; 32]).unwrap();
    dn.reset_cycles_burned();
    let before = balance(&mut dn, probe);
    // Too few cycles: refused, all refunded.
    let (code, message) = rejected(derive_key(
        &mut dn,
        probe,
        b"x",
        &tsk.public_key(),
        VETKD_FEE_13_NODES - 1,
    ));
    assert_eq!(code, 4);
    assert!(message.contains("cycles are required"), "{message}");
    // A transport key that is not a G1 point.
    let mut bad = tsk.public_key();
    bad[5] ^= 0xff;
    let (code, message) = rejected(derive_key(&mut dn, probe, b"x", &bad, VETKD_FEE_13_NODES));
    assert_eq!(code, 4);
    assert!(
        message.contains("transport public key is invalid"),
        "{message}"
    );
    // A key the devnet doesn't hold.
    let (code, message) = rejected(public_key(&mut dn, probe, "no_such_key"));
    assert_eq!(code, 4);
    assert!(message.contains("does not hold"), "{message}");
    assert_eq!(
        balance(&mut dn, probe),
        before - running_costs(&dn, probe),
        "every refusal refunded all"
    );
    assert_eq!(dn.cycles_burned(probe).unwrap().vetkd, 0);
    // Ingress may not call them.
    let arg = Encode!(&VetKDPublicKeyArgs {
        canister_id: None,
        context: vec![],
        key_id: key_id("dfx_test_key"),
    })
    .unwrap();
    let err = dn
        .update_call(
            Principal::management_canister(),
            user(),
            "vetkd_public_key",
            arg,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("only be called by canisters"),
        "{err}"
    );
}
