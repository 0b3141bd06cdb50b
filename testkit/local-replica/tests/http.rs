//! The devnet over HTTP with the real ic-agent: install through the
//! management canister, queries, updates, rejects, traps, identities,
//! synchronous and polled calls, timers in real time.

mod common;

use std::time::{Duration, Instant};

use candid::{Decode, Encode, Principal};
use common::*;
use devnet::{Devnet, DevnetConfig};
use ic_agent::agent::{RejectCode, RejectResponse};
use ic_agent::identity::AnonymousIdentity;
use ic_agent::{Agent, AgentError, Identity};
use ic_utils::call::AsyncCall;
use ic_utils::interfaces::ManagementCanister;
use ic_utils::interfaces::management_canister::builders::CanisterInstallMode;
use local_replica::{Server, ServerConfig};
use sha2::{Digest, Sha256};

async fn query_u64(agent: &Agent, id: Principal, method: &str) -> u64 {
    query_as(agent, id, method).await
}

/// The caller the probe sees, asked by an update and by a query.
async fn callers_seen(agent: &Agent, id: Principal) -> (Principal, Principal) {
    (
        update_as(agent, id, "whoami").await,
        query_as(agent, id, "whoami").await,
    )
}

/// What a certified reject says; any other error fails the test.
fn certified_reject(err: AgentError) -> RejectResponse {
    match err {
        AgentError::CertifiedReject { reject, .. } => reject,
        other => panic!("expected a certified reject, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_query_update_reject_and_trap_over_http() {
    let (server, agent, id) = server_with_probe(1, "over http").await;
    let me = agent.get_principal().unwrap();
    assert_eq!(agent.read_root_key(), server.root_key());

    // canister_status (a query by ic-utils' default) decodes as the full record.
    let mgmt = ManagementCanister::create(&agent);
    let (status,) = mgmt
        .canister_status(&id)
        .call()
        .await
        .expect("canister_status");
    let wasm_hash = Sha256::digest(probe_wasm()).to_vec();
    assert_eq!(status.module_hash.as_deref(), Some(wasm_hash.as_slice()));
    assert_eq!(status.settings.controllers, vec![me]);
    let (status,) = mgmt
        .canister_status(&id)
        .as_update()
        .call()
        .await
        .expect("canister_status as update");
    assert_eq!(status.settings.controllers, vec![me]);

    // read_state: controllers and module hash, certified.
    assert_eq!(
        agent.read_state_canister_controllers(id).await.unwrap(),
        vec![me]
    );
    assert_eq!(
        agent.read_state_canister_module_hash(id).await.unwrap(),
        wasm_hash
    );

    // Queries (signature-verified against the node key served by read_state).
    assert_eq!(query_u64(&agent, id, "get").await, 0);
    assert_eq!(query_as::<String>(&agent, id, "label").await, "over http");

    // Updates, answered synchronously with a certificate.
    for expected in 1..=3u64 {
        assert_eq!(update_as::<u64>(&agent, id, "inc").await, expected);
    }
    assert_eq!(query_u64(&agent, id, "get").await, 3);
    // A query's changes are not kept.
    assert_eq!(query_u64(&agent, id, "inc_in_query").await, 4);
    assert_eq!(query_u64(&agent, id, "get").await, 3);

    // The caller seen by the canister is the identity's principal.
    assert_eq!(update_as::<Principal>(&agent, id, "whoami").await, me);

    // An explicit reject is a certified reject with the canister's message.
    let arg = Encode!(&"not today").unwrap();
    let err = update(&agent, id, "reject_with", arg).await.unwrap_err();
    let reject = certified_reject(err);
    assert_eq!(reject.reject_code, RejectCode::CanisterReject);
    assert_eq!(reject.reject_message, "not today");
    assert_eq!(reject.error_code.as_deref(), Some("IC0406"));

    // A trap rolls back and is a certified CANISTER_ERROR.
    let arg = Encode!(&0u64, &vec![1u8, 2, 3]).unwrap();
    let err = update(&agent, id, "write_then_trap", arg)
        .await
        .unwrap_err();
    let reject = certified_reject(err);
    assert_eq!(reject.reject_code, RejectCode::CanisterError);
    assert!(
        reject.reject_message.contains("trap after write"),
        "{}",
        reject.reject_message
    );
    assert_eq!(reject.error_code.as_deref(), Some("IC0503"));
    assert_eq!(query_u64(&agent, id, "get").await, 3);

    // A query that rejects is a signed uncertified reject.
    let err = query(&agent, id, "no_such_method", no_args())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AgentError::UncertifiedReject { reject, .. }
            if reject.reject_code == RejectCode::CanisterError
                && reject.error_code.as_deref() == Some("IC0536")),
        "{err:?}"
    );

    // inspect_message refuses before execution: a non-replicated rejection.
    let err = update(&agent, id, "refused_by_inspect", no_args())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AgentError::UncertifiedReject { reject, .. } if reject.reject_code == RejectCode::CanisterReject),
        "{err:?}"
    );

    // Upgrade through the management canister: heap reset, stable kept.
    mgmt.install_code(&id, &probe_wasm())
        .with_mode(CanisterInstallMode::Upgrade(None))
        .with_arg(Some(ProbeArg {
            label: "upgraded".into(),
        }))
        .call_and_wait()
        .await
        .expect("upgrade");
    assert_eq!(query_u64(&agent, id, "get").await, 0);
    assert_eq!(query_u64(&agent, id, "upgrades").await, 1);

    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secp256k1_and_anonymous_senders_are_authenticated() {
    let (server, _owner, id) = server_with_probe(2, "ids").await;

    let secp = secp256k1_identity(3);
    let secp_principal = secp.sender().unwrap();
    let agent = agent(&server, secp).await;
    assert_eq!(
        callers_seen(&agent, id).await,
        (secp_principal, secp_principal)
    );

    let anonymous = common::agent(&server, AnonymousIdentity).await;
    let who: Principal = update_as(&anonymous, id, "whoami").await;
    assert_eq!(who, Principal::anonymous());

    // Not a controller: canister_status is refused.
    let err = ManagementCanister::create(&anonymous)
        .canister_status(&id)
        .call()
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::UncertifiedReject { .. }),
        "{err:?}"
    );

    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_update_answers_202_and_the_agent_polls_read_state() {
    // One message per round and 250 ms between rounds: the probe's call to
    // another canister (request in, request out, response) takes two rounds
    // after the one run at submission, longer than the 50 ms synchronous wait.
    let devnet = Devnet::with_config(DevnetConfig {
        max_messages_per_tick: 1,
        ..DevnetConfig::default()
    });
    let config = ServerConfig {
        round_interval: Duration::from_millis(250),
        sync_call_wait: Duration::from_millis(50),
        ..test_config()
    };
    let server = Server::start(config, devnet).await.unwrap();
    let agent = agent(&server, ed25519_identity(4)).await;
    let caller = install_probe(&agent, "caller").await;
    let callee = install_probe(&agent, "callee").await;

    let started = Instant::now();
    let arg = Encode!(&callee, &"inc", &no_args(), &None::<u32>).unwrap();
    let bytes = update(&agent, caller, "call", arg)
        .await
        .expect("polled to completion");
    let elapsed = started.elapsed();
    let outcome = Decode!(&bytes, CallOutcome).unwrap();
    assert_eq!(outcome, CallOutcome::Reply(Encode!(&1u64).unwrap()));
    // The agent's first poll comes 500 ms after the 202.
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");

    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_as_the_clock_runs_faster() {
    // 100 devnet seconds per real second: a 60 s timer fires within ~0.6 s.
    let server = start_server(100.0, Duration::from_secs(5)).await;
    let agent = agent(&server, ed25519_identity(5)).await;
    let id = install_probe(&agent, "timers").await;
    let t0 = query_u64(&agent, id, "time").await;
    update(&agent, id, "set_timer", Encode!(&60u64).unwrap())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while query_u64(&agent, id, "timer_fires").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the timer did not fire within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t1 = query_u64(&agent, id, "time").await;
    assert!(
        t1 - t0 >= 60_000_000_000,
        "devnet time advanced by {} ns",
        t1 - t0
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_install_of_a_module() {
    let server = start_server(1.0, Duration::from_secs(5)).await;
    let agent = agent(&server, ed25519_identity(6)).await;
    let mgmt = ManagementCanister::create(&agent);
    let id = create_canister(&agent).await;
    let wasm = probe_wasm();
    let mut hashes = Vec::new();
    for chunk in wasm.chunks(300_000) {
        let (hash,) = mgmt
            .upload_chunk(
                &id,
                &ic_management_canister_types_v8::UploadChunkArgs {
                    canister_id: id,
                    chunk: chunk.to_vec(),
                },
            )
            .call_and_wait()
            .await
            .expect("upload_chunk");
        hashes.push(hash);
    }
    let (stored,) = mgmt.stored_chunks(&id).call_and_wait().await.unwrap();
    assert_eq!(stored.len(), hashes.len());
    let wasm_hash: [u8; 32] = Sha256::digest(&wasm).into();
    mgmt.install_chunked_code(&id, &wasm_hash)
        .with_chunk_hashes(hashes)
        .with_raw_arg(
            Encode!(&Some(ProbeArg {
                label: "chunked".into()
            }))
            .unwrap(),
        )
        .call_and_wait()
        .await
        .expect("install_chunked_code");
    assert_eq!(query_as::<String>(&agent, id, "label").await, "chunked");
    server.shutdown().await.unwrap();
}

/// The probe's module with two metadata sections appended.
fn probe_with_metadata() -> Vec<u8> {
    fn custom(name: &str, content: &[u8]) -> Vec<u8> {
        let mut body = vec![name.len() as u8];
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(content);
        let mut section = vec![0];
        let mut len = body.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            section.push(if len == 0 { byte } else { byte | 0x80 });
            if len == 0 {
                break;
            }
        }
        section.extend(body);
        section
    }
    let mut wasm = probe_wasm();
    wasm.extend(custom(
        "icp:public candid:service",
        b"service : { get : () -> (nat64) query }",
    ));
    wasm.extend(custom("icp:private build", b"secret"));
    wasm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_sections_are_served_public_to_all_private_to_controllers() {
    let server = start_server(1.0, Duration::from_secs(5)).await;
    let owner = agent(&server, ed25519_identity(7)).await;
    let id = create_canister(&owner).await;
    let arg = Encode!(&Some(ProbeArg::default())).unwrap();
    install_code(&owner, id, &probe_with_metadata(), arg).await;
    let did = owner
        .read_state_canister_metadata(id, "candid:service")
        .await
        .unwrap();
    assert_eq!(did, b"service : { get : () -> (nat64) query }");
    assert_eq!(
        owner
            .read_state_canister_metadata(id, "build")
            .await
            .unwrap(),
        b"secret"
    );

    let stranger = agent(&server, AnonymousIdentity).await;
    let did = stranger
        .read_state_canister_metadata(id, "candid:service")
        .await
        .unwrap();
    assert!(!did.is_empty());
    let err = stranger
        .read_state_canister_metadata(id, "build")
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::HttpError(ref e) if e.status == 403),
        "{err:?}"
    );
    assert!(matches!(
        stranger.read_state_canister_metadata(id, "absent").await,
        Err(AgentError::LookupPathAbsent(_))
    ));
    server.shutdown().await.unwrap();
}

/// A canister that sets its certified data to the raw argument of `set`
/// and replies to the query `cert` with the data certificate it reads.
const CERTIFYING_CANISTER: &str = r#"(module
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (import "ic0" "certified_data_set" (func $cd_set (param i32 i32)))
  (import "ic0" "data_certificate_present" (func $present (result i32)))
  (import "ic0" "data_certificate_size" (func $cert_size (result i32)))
  (import "ic0" "data_certificate_copy" (func $cert_copy (param i32 i32 i32)))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (memory (export "memory") 1)
  (func (export "canister_update set")
    (call $arg_copy (i32.const 0) (i32.const 0) (call $arg_size))
    (call $cd_set (i32.const 0) (call $arg_size))
    (call $reply))
  (func (export "canister_query cert")
    (if (call $present)
      (then
        (call $cert_copy (i32.const 0) (i32.const 0) (call $cert_size))
        (call $append (i32.const 0) (call $cert_size))))
    (call $reply)))"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_read_a_signed_certificate_of_the_certified_data() {
    use ic_certification::{Certificate, LookupResult};

    let server = start_server(1.0, Duration::from_secs(5)).await;
    let agent = agent(&server, ed25519_identity(8)).await;
    let id = create_canister(&agent).await;
    let wasm = wat::parse_str(CERTIFYING_CANISTER).unwrap();
    install_code(&agent, id, &wasm, vec![]).await;

    let data = [7u8; 32];
    update(&agent, id, "set", data.to_vec()).await.unwrap();
    let bytes = query(&agent, id, "cert", vec![]).await.unwrap();
    let cert: Certificate = serde_cbor::from_slice(&bytes).expect("a CBOR certificate");
    let mut msg = b"\x0Dic-state-root".to_vec();
    msg.extend_from_slice(&cert.tree.digest());
    ic_verify_bls_signature::verify_bls_signature(&cert.signature, &msg, &server.root_key()[37..])
        .expect("signed by the root key");
    assert_eq!(
        cert.tree
            .lookup_path([b"canister".as_ref(), id.as_slice(), b"certified_data"]),
        LookupResult::Found(&data)
    );
    assert!(matches!(
        cert.tree.lookup_path([b"time"]),
        LookupResult::Found(_)
    ));

    // The same data through read_state.
    let read = agent
        .read_state_canister_info(id, "certified_data")
        .await
        .unwrap();
    assert_eq!(read, data);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_identities_act_for_the_delegator_within_expiry_and_targets() {
    use ic_agent::identity::{DelegatedIdentity, Delegation, SignedDelegation};

    let (server, _owner, id) = server_with_probe(20, "delegation").await;
    let user = secp256k1_identity(21);
    let user_principal = user.sender().unwrap();
    let now = now_nanos();
    let delegated = |expiration: u64, targets: Option<Vec<Principal>>| {
        let session = ed25519_identity(22);
        let delegation = Delegation {
            pubkey: session.public_key().unwrap(),
            expiration,
            targets,
            permissions: None,
        };
        let signature = user
            .sign_delegation(&delegation)
            .unwrap()
            .signature
            .unwrap();
        DelegatedIdentity::new_unchecked(
            user.public_key().unwrap(),
            Box::new(session),
            vec![SignedDelegation {
                delegation,
                signature,
            }],
        )
    };
    let in_ten_minutes = now + 600_000_000_000;

    let session = common::agent(&server, delegated(in_ten_minutes, None)).await;
    assert_eq!(
        callers_seen(&session, id).await,
        (user_principal, user_principal)
    );

    // Restricted to another canister, and expired: both refused.
    let elsewhere = Principal::from_slice(&[9; 10]);
    for refused in [
        delegated(in_ten_minutes, Some(vec![elsewhere])),
        delegated(now - 1, None),
    ] {
        let refused = common::agent(&server, refused).await;
        let err = update(&refused, id, "whoami", no_args()).await.unwrap_err();
        assert!(
            matches!(err, AgentError::HttpError(ref e) if e.status == 400),
            "{err:?}"
        );
    }
    server.shutdown().await.unwrap();
}
