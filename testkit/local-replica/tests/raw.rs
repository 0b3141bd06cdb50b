//! Hand-built envelopes POSTed with a plain HTTP client: what the devnet
//! refuses (expired, too far in the future, forged, wrong sender, wrong
//! effective canister id) and the v2 asynchronous call with polling.

mod common;

use std::borrow::Cow;
use std::time::Duration;

use candid::{Decode, Encode, Principal};
use common::*;
use ic_certification::{Certificate, LookupResult};
use ic_transport_types::{Envelope, EnvelopeContent, ReadStateResponse};

const MINUTE: u64 = 60_000_000_000;

/// A signed envelope of `content` by an Ed25519 key.
fn sign(key: &ic_ed25519::PrivateKey, content: EnvelopeContent) -> Vec<u8> {
    let der = key.public_key().serialize_rfc8410_der();
    let sig = key.sign_message(&content.to_request_id().signable());
    Envelope {
        content: Cow::Owned(content),
        sender_pubkey: Some(der),
        sender_sig: Some(sig.to_vec()),
        sender_delegation: None,
    }
    .encode_bytes()
}

fn principal_of(key: &ic_ed25519::PrivateKey) -> Principal {
    Principal::self_authenticating(key.public_key().serialize_rfc8410_der())
}

fn call(
    key: &ic_ed25519::PrivateKey,
    canister: Principal,
    method: &str,
    expiry: u64,
) -> EnvelopeContent {
    EnvelopeContent::Call {
        nonce: Some(expiry.to_be_bytes().to_vec()),
        ingress_expiry: expiry,
        sender: principal_of(key),
        canister_id: canister,
        method_name: method.into(),
        arg: Encode!().unwrap(),
        sender_info: None,
    }
}

async fn post(url: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/cbor")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("HTTP request");
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_forged_and_misaddressed_requests_are_refused() {
    let (server, owner, id) = server_with_probe(10, "raw").await;
    let url = format!("{}/api/v4/canister/{id}/call", server.url());
    let key = ic_ed25519::PrivateKey::generate_from_seed(&[11; 32]);

    // A well-formed call succeeds: 200 with a certificate.
    let good = sign(&key, call(&key, id, "inc", now_nanos() + 2 * MINUTE));
    let (status, _) = post(&url, good).await;
    assert_eq!(status, 200);

    // Expired.
    let expired = sign(&key, call(&key, id, "inc", now_nanos() - MINUTE));
    let (status, body) = post(&url, expired).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("expiry"));

    // Too far in the future (more than 5 minutes plus drift).
    let future = sign(&key, call(&key, id, "inc", now_nanos() + 10 * MINUTE));
    let (status, _) = post(&url, future).await;
    assert_eq!(status, 400);

    // Forged: the signature is over a different request.
    let content = call(&key, id, "inc", now_nanos() + 2 * MINUTE);
    let other = call(&key, id, "get", now_nanos() + 2 * MINUTE);
    let forged = Envelope {
        content: Cow::Owned(content),
        sender_pubkey: Some(key.public_key().serialize_rfc8410_der()),
        sender_sig: Some(key.sign_message(&other.to_request_id().signable()).to_vec()),
        sender_delegation: None,
    };
    let (status, body) = post(&url, forged.encode_bytes()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("signature"));

    // Signed by one key, claiming another key's principal.
    let intruder = ic_ed25519::PrivateKey::generate_from_seed(&[12; 32]);
    let claimed = call(&key, id, "inc", now_nanos() + 2 * MINUTE);
    let impostor = Envelope {
        content: Cow::Owned(claimed.clone()),
        sender_pubkey: Some(intruder.public_key().serialize_rfc8410_der()),
        sender_sig: Some(
            intruder
                .sign_message(&claimed.to_request_id().signable())
                .to_vec(),
        ),
        sender_delegation: None,
    };
    let (status, _) = post(&url, impostor.encode_bytes()).await;
    assert_eq!(status, 400);

    // A named sender without a signature.
    let unsigned = Envelope {
        content: Cow::Owned(call(&key, id, "inc", now_nanos() + 2 * MINUTE)),
        sender_pubkey: None,
        sender_sig: None,
        sender_delegation: None,
    };
    let (status, _) = post(&url, unsigned.encode_bytes()).await;
    assert_eq!(status, 400);

    // Effective canister id in the URL differs from the callee.
    let misaddressed = sign(&key, call(&key, id, "inc", now_nanos() + 2 * MINUTE + 1));
    let (status, _) = post(
        &format!(
            "{}/api/v4/canister/{}/call",
            server.url(),
            Principal::management_canister()
        ),
        misaddressed,
    )
    .await;
    assert_eq!(status, 400);

    // None of the refused calls ran: only the good one incremented.
    assert_eq!(query_as::<u64>(&owner, id, "get").await, 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_call_is_asynchronous_and_only_its_sender_reads_its_status() {
    let (server, _owner, id) = server_with_probe(13, "v2").await;
    let key = ic_ed25519::PrivateKey::generate_from_seed(&[14; 32]);
    let expiry = now_nanos() + 2 * MINUTE;
    let content = call(&key, id, "inc", expiry);
    let request_id = content.to_request_id();

    let (status, body) = post(
        &format!("{}/api/v2/canister/{id}/call", server.url()),
        sign(&key, content),
    )
    .await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));

    let read_state = |key: &ic_ed25519::PrivateKey| {
        sign(
            key,
            EnvelopeContent::ReadState {
                ingress_expiry: expiry,
                sender: principal_of(key),
                paths: vec![vec!["request_status".into(), request_id.to_vec().into()]],
            },
        )
    };
    let url = format!("{}/api/v3/canister/{id}/read_state", server.url());
    let reply = loop {
        let (status, body) = post(&url, read_state(&key)).await;
        assert_eq!(status, 200);
        let response: ReadStateResponse = serde_cbor::from_slice(&body).unwrap();
        let cert: Certificate = serde_cbor::from_slice(&response.certificate).unwrap();
        let path = [b"request_status".as_ref(), request_id.as_slice(), b"reply"];
        if let LookupResult::Found(reply) = cert.tree.lookup_path(path) {
            break reply.to_vec();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(Decode!(&reply, u64).unwrap(), 1);

    // Someone else asking for that request's status is refused.
    let other = ic_ed25519::PrivateKey::generate_from_seed(&[15; 32]);
    let (status, _) = post(&url, read_state(&other)).await;
    assert_eq!(status, 403);
    server.shutdown().await.unwrap();
}
