//! Sealed jobs and secret service envs end to end on the devnet: the real
//! canisters with the matcher's privacy on (`dfx_test_key`), the devnet's
//! vetKD deriving the keys, and a provider daemon that gets each job's key
//! from the matcher's `job_key`.
//!
//! - A job whose input, env and output are sealed runs on the opened input
//!   and env; its result is the sealed output, which the owner opens with a
//!   key of its own asked from `job_key`.
//! - A service lease whose secret env holds `API_KEY` runs a `hello-service`
//!   replica that has the secret in its env and sends it as a bearer token
//!   on its outgoing requests (to a test server on 127.0.0.1, which the
//!   node's egress allows here).
//! - An audit's re-run of a sealed job, by another provider with its own
//!   key, agrees with the job's run, as it does when the job's env opens
//!   for no one and both report it undecryptable.
//!
//! Needs `scripts/build-canisters.sh` and `scripts/build-workloads.sh`.

use std::time::Duration;

use candid::Principal;
use market_api::Tokens;
use market_api::matcher::{AUDIT_ALWAYS_PPM, AuditVerdict, GFUEL, JobSpec, JobStatus, RunOutcome};
use market_api::privacy::{IBE_OVERHEAD, JobKeyRequest, Sealed};
use market_client::sealing::{self, TransportKey};
use market_fixture::{Settings, node, provider};
use test_world::http::{get_ok, until, upstream};
use test_world::node::{Node, NodeSetup};
use test_world::{World, one_slot_offer, service_lease, spawn};

const PRICE: Tokens = 100_000;
const INTERVAL: u64 = 20;

fn buyer() -> Principal {
    market_fixture::principal(0xB1)
}

/// The marketplace with privacy on, a 10 s grace, the buyer's 50 ICP in
/// escrow and provider 1 offering one slot at [`PRICE`].
fn world() -> World {
    let w = World::funded(
        Settings {
            privacy: true,
            ..test_world::settings()
        },
        buyer(),
    );
    w.onboard(
        provider(1),
        node(1),
        &one_slot_offer(64, PRICE, w.ids.ledger),
    );
    w
}

/// The matcher's public key, what the buyer seals to. The matcher reads
/// it from the management canister by timer, soon after its install.
async fn public_key(w: &World) -> Vec<u8> {
    for _ in 0..10 {
        if let Some(key) = w.buyer.privacy_key().await.expect("privacy_key") {
            return key.public_key;
        }
        w.net.advance(Duration::from_secs(1));
    }
    panic!("the matcher never read its privacy key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sealed_job_runs_on_its_opened_contents_and_its_owner_opens_the_output() {
    let w = world();
    let echo = w.upload_workload("echo").await;
    let pk = public_key(&w).await;
    let key_id = sealing::new_key_id();
    let input = sealing::seal(&pk, buyer(), &key_id, b"a private input").unwrap();
    // `echo` exits with ECHO_EXIT: the plain 7 would fail the job, the
    // secret 0 replaces it.
    let secret_env = vec![("ECHO_EXIT".to_string(), "0".to_string())];
    let env = sealing::seal_env(&pk, buyer(), &key_id, &secret_env).unwrap();
    let id = w
        .buyer
        .submit_job(JobSpec {
            input: input.clone(),
            env: vec![("ECHO_EXIT".into(), "7".into())],
            sealed: Some(Sealed {
                key_id: key_id.clone(),
                input: true,
                env: Some(env.into()),
                output: true,
            }),
            ..w.stored_job(echo, INTERVAL, 10 * GFUEL, 2 * PRICE)
        })
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (daemon, metrics) = w.daemon(1, dir.path());
    let (stop, task) = spawn(daemon);
    w.start_clock();
    let job = w
        .until(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    let result = job.result.expect("a result");
    assert_eq!(result.outcome, RunOutcome::Exited { code: 0 });
    let sealed_output = result.output;
    assert_eq!(sealed_output.len(), b"a private input".len() + IBE_OVERHEAD);
    assert!(
        !sealed_output
            .windows(b"private".len())
            .any(|w| w == b"private"),
        "the output is sealed"
    );

    // The owner asks for the job's key with a transport key of its own.
    let transport = TransportKey::new();
    let key = w
        .buyer
        .job_key(JobKeyRequest {
            job_id: id,
            attempt: 0,
            transport_public_key: transport.public_key(),
        })
        .await
        .expect("the owner gets the job's key");
    let secret = transport.open(&key).expect("the key opens");
    assert_eq!(secret.open(&sealed_output).unwrap(), b"a private input");

    // Someone else is refused the key.
    let stranger = w.client(market_fixture::principal(0xEE));
    let refused = stranger
        .job_key(JobKeyRequest {
            job_id: id,
            attempt: 0,
            transport_public_key: TransportKey::new().public_key(),
        })
        .await;
    assert!(refused.is_err(), "{refused:?}");

    let _ = stop.send(());
    let summary = task.await.unwrap();
    assert_eq!(summary.results_submitted, 1);
    assert_eq!(metrics.jobs_failed.get(), 0);
    assert_eq!(w.audit().slashes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_replica_gets_its_secret_env_and_uses_it_on_outgoing_requests() {
    let w = world();
    let sha = w.upload_workload("hello-service").await;
    let pk = public_key(&w).await;
    let key_id = sealing::new_key_id();
    let secret_env = vec![("API_KEY".to_string(), "s3cret-api-key".to_string())];
    let env = sealing::seal_env(&pk, buyer(), &key_id, &secret_env).unwrap();
    let (up, seen) = upstream().await;

    // The node's ingress on 127.0.0.1, its services allowed to call
    // 127.0.0.1 (the test's upstream), and its daemon.
    let cache = tempfile::tempdir().unwrap();
    let node1 = Node::start(
        &w,
        1,
        NodeSetup {
            egress_local_addresses: vec![std::net::Ipv4Addr::LOCALHOST.into()],
            ..NodeSetup::new(cache.path())
        },
    )
    .await;
    let addr = node1.addr;

    let mut spec = service_lease(w.ids.ledger, sha, 1, 50, 4 * PRICE);
    spec.max_rematches = 0;
    let secret_service = spec.service.as_mut().unwrap();
    secret_service.sealed = Some(Sealed {
        key_id,
        input: false,
        env: Some(env.into()),
        output: false,
    });
    secret_service.allowed_hosts = vec!["127.0.0.1".into()];
    let rid = w.reserve(&spec);
    let service = || w.service(rid);
    let endpoint = format!("http://{addr}/{rid}/");
    until("the replica's endpoint is recorded", || {
        service().replicas[0].endpoint.as_deref() == Some(&endpoint)
    })
    .await;
    w.start_clock();

    let body = get_ok(addr, &format!("/{rid}/env/API_KEY")).await;
    assert!(body.contains("s3cret-api-key"), "{body}");
    let body = get_ok(addr, &format!("/{rid}/env/GREETING")).await;
    assert!(body.contains("from a lease"), "the plain env too: {body}");
    let url = format!("http%3A%2F%2F127.0.0.1%3A{}%2Fapi", up.port());
    let body = get_ok(addr, &format!("/{rid}/fetch?url={url}")).await;
    assert!(body.contains("upstream 200: 2 bytes"), "{body}");
    assert_eq!(
        seen.bearer().as_deref(),
        Some("s3cret-api-key"),
        "{}",
        seen.head()
    );

    assert_eq!(w.reservation(rid).slots[0].provider, Some(provider(1)));
    let summary = node1.shut_down().await;
    assert_eq!(summary.replicas_started, 1);
    assert_eq!(summary.replicas_failed, 0);
}

/// An audit re-runs a sealed job like any other: the auditor gets the
/// job's key for its own run, and since a sealed output is the same for
/// every holder of the key, the runs agree. A job whose env does not open
/// is reported undecryptable by both, and they agree on that too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_audit_of_a_sealed_job_agrees_with_an_honest_run() {
    let w = world();
    w.onboard(
        provider(2),
        node(2),
        &one_slot_offer(64, 2 * PRICE, w.ids.ledger),
    );
    let sha256sum = w.upload_workload("sha256sum").await;
    let pk = public_key(&w).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut daemons = vec![];
    for (n, dir) in [1u8, 2].into_iter().zip(&dirs) {
        let (daemon, _) = w.daemon(n, dir.path());
        daemons.push(spawn(daemon));
    }
    w.start_clock();

    let submit = |key_id: Vec<u8>, env: Vec<u8>| {
        let input = sealing::seal(&pk, buyer(), &key_id, b"audited input").unwrap();
        w.buyer.submit_job(JobSpec {
            input,
            sealed: Some(Sealed {
                key_id,
                input: true,
                env: Some(env.into()),
                output: true,
            }),
            audit_ppm: Some(AUDIT_ALWAYS_PPM),
            deadline_secs: Some(300),
            ..w.stored_job(sha256sum, INTERVAL, GFUEL / 10, 3 * PRICE)
        })
    };
    let key_id = sealing::new_key_id();
    let env = sealing::seal_env(&pk, buyer(), &key_id, &[("A".into(), "b".into())]).unwrap();
    let sealed = submit(key_id.clone(), env).await.unwrap();
    // An env sealed to another job's identity: it opens for no one.
    let other = sealing::new_key_id();
    let forged = sealing::seal_env(&pk, buyer(), &other, &[("A".into(), "b".into())]).unwrap();
    let undecryptable = submit(sealing::new_key_id(), forged).await.unwrap();

    for id in [sealed, undecryptable] {
        let job = w
            .until(id, "an audit verdict", |j| {
                j.audit.as_ref().is_some_and(|a| a.verdict.is_some())
            })
            .await;
        let audit = job.audit.clone().unwrap();
        assert_eq!(audit.verdict, Some(AuditVerdict::Agreed), "{job:?}");
        let run = w.job(audit.runs[0]).await;
        assert_ne!(run.provider, job.provider, "audited by the other provider");
        assert_eq!(run.result, job.result, "the runs agree");
    }
    let job = w.job(sealed).await;
    let result = job.result.unwrap();
    assert_eq!(result.outcome, RunOutcome::Exited { code: 0 });
    let transport = TransportKey::new();
    let key = w
        .buyer
        .job_key(JobKeyRequest {
            job_id: sealed,
            attempt: 0,
            transport_public_key: transport.public_key(),
        })
        .await
        .unwrap();
    let output = transport.open(&key).unwrap().open(&result.output).unwrap();
    let expected = format!(
        "{}\n",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"audited input"))
    );
    assert_eq!(String::from_utf8(output).unwrap(), expected);
    let job = w.job(undecryptable).await;
    assert_eq!(
        job.result.unwrap().outcome,
        RunOutcome::Undecryptable { part: "env".into() }
    );

    for (stop, task) in daemons {
        let _ = stop.send(());
        task.await.unwrap();
    }
    assert_eq!(w.audit().slashes, 0);
}
