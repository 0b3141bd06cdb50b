//! Private jobs on the devnet with the real canisters and the devnet's
//! vetKD key: who may read a job's contents, and who may get the key its
//! sealed parts open with. Providers are played by hand here, through the
//! matcher's interface and the client library's sealing, so each test can
//! ask for what an honest node never would; the provider node's own tests
//! run sealed jobs and services end to end.

use candid::{Encode, Principal};
use market_api::matcher::{
    AUDIT_ALWAYS_PPM, HeartbeatAck, Job, JobChunkRequest, JobPart, JobSpec, JobStatus, JobView,
    MatcherError, SubmitResultArgs,
};
use market_api::privacy::{JobKey, JobKeyRequest, PrivacyKey, Sealed};
use market_api::{HttpRequest, JobId, PageRequest, Tokens};
use market_client::sealing::{self, JobSecret, TransportKey};
use market_fixture::{
    ICP, MarketFixture, Settings, exited, heartbeat_item, node, principal, provider,
};

const PRICE: Tokens = 1_000_000;

const INPUT: &[u8] = b"INPUT-SECRET-the buyer's private data";
const SECRET_ENV: (&str, &str) = ("API_KEY", "ENV-SECRET-sk_live_51H");
const PLAIN_ARG: &str = "ARG-SECRET-plain argument";
const PLAIN_ENV: (&str, &str) = ("MODE", "PLAINENV-SECRET-plain env");
const OUTPUT: &[u8] = b"OUTPUT-SECRET-the job's answer";

/// The buyer of the tests' jobs.
fn buyer() -> Principal {
    principal(1)
}

/// Someone with no part in anyone's job.
fn stranger() -> Principal {
    principal(77)
}

/// A market that takes sealed jobs, with three providers offering one slot
/// each at 1, 2 and 3 times [`PRICE`] (provider 1 gets the first job) and
/// a funded buyer.
fn market() -> MarketFixture {
    let net = MarketFixture::deploy(Settings {
        privacy: true,
        ..Settings::default()
    })
    .expect("deploy");
    for n in 1..=3u8 {
        net.onboard_provider(provider(n), node(n), 50 * ICP)
            .unwrap();
        net.post_offer(provider(n), &net.offer_spec(1, u128::from(n) * PRICE))
            .unwrap();
    }
    net.mint(buyer(), 100 * ICP).unwrap();
    net.deposit(buyer(), 50 * ICP).unwrap();
    net.settle_outbox();
    net
}

/// The matcher's public key for sealing, once it has read it.
fn privacy_key(net: &MarketFixture) -> PrivacyKey {
    for _ in 0..20 {
        let k: Option<PrivacyKey> = net.query(net.ids.matcher, "privacy_key", &()).unwrap();
        if let Some(k) = k {
            return k;
        }
        net.wait_secs(1);
        net.settle_outbox();
    }
    panic!("the matcher never read its vetKD public key")
}

/// A job of the buyer's whose input and secret env are sealed (and whose
/// output is, if `seal_output`), with a plain arg and env besides.
fn sealed_job(net: &MarketFixture, seal_output: bool, audit: bool) -> JobSpec {
    let pk = privacy_key(net).public_key;
    let key_id = sealing::new_key_id();
    let env = vec![(SECRET_ENV.0.to_string(), SECRET_ENV.1.to_string())];
    JobSpec {
        input: sealing::seal(&pk, buyer(), &key_id, INPUT).unwrap(),
        args: vec![PLAIN_ARG.into()],
        env: vec![(PLAIN_ENV.0.into(), PLAIN_ENV.1.into())],
        audit_ppm: audit.then_some(AUDIT_ALWAYS_PPM),
        sealed: Some(Sealed {
            env: Some(
                sealing::seal_env(&pk, buyer(), &key_id, &env)
                    .unwrap()
                    .into(),
            ),
            key_id,
            input: true,
            output: seal_output,
        }),
        ..net.url_job(60, 4, 3 * PRICE)
    }
}

fn submit(net: &MarketFixture, spec: &JobSpec) -> JobId {
    let r: Result<JobId, MatcherError> = net
        .update(net.ids.matcher, buyer(), "submit_job", spec)
        .unwrap();
    net.settle_outbox();
    r.expect("the job is taken")
}

fn get_job(net: &MarketFixture, who: Principal, id: JobId) -> Job {
    let j: Option<Job> = query_as(net, who, "get_job", &id);
    j.expect("the job exists")
}

/// `job_key` for `who` with a fresh transport key: the key opened, or the
/// matcher's refusal.
fn job_key(
    net: &MarketFixture,
    who: Principal,
    job_id: JobId,
    attempt: u32,
) -> Result<JobSecret, MatcherError> {
    let transport = TransportKey::new();
    let req = JobKeyRequest {
        job_id,
        attempt,
        transport_public_key: transport.public_key(),
    };
    let r: Result<JobKey, MatcherError> =
        net.update(net.ids.matcher, who, "job_key", &req).unwrap();
    Ok(transport
        .open(&r?)
        .expect("the matcher's key opens and verifies"))
}

/// The attempt of `job_id` that provider `n` holds, if any.
fn attempt_of(net: &MarketFixture, n: u8, job_id: JobId) -> Option<u32> {
    net.assignments(provider(n))
        .unwrap()
        .into_iter()
        .find(|a| a.job_id == job_id)
        .map(|a| a.attempt)
}

/// Provider `n`'s node acknowledges its attempt of `job_id`.
fn acknowledge(net: &MarketFixture, n: u8, job_id: JobId, attempt: u32) {
    let items = vec![heartbeat_item(job_id, attempt, 0)];
    let acks: Result<Vec<HeartbeatAck>, MatcherError> = net
        .update(net.ids.matcher, node(n), "heartbeat", &items)
        .unwrap();
    assert!(matches!(acks.unwrap()[..], [HeartbeatAck::Accepted { .. }]));
}

/// Provider `n`'s node reports `output` for its attempt of `job_id`.
fn report(net: &MarketFixture, n: u8, job_id: JobId, attempt: u32, output: Vec<u8>) {
    net.wait_secs(40);
    let r: Result<(), MatcherError> = net
        .update(
            net.ids.matcher,
            node(n),
            "submit_result",
            &SubmitResultArgs {
                job_id,
                attempt,
                result: exited(&output, 1_000_000),
            },
        )
        .unwrap();
    r.expect("the result is taken");
    net.settle_outbox();
}

/// Provider `n`'s node does what an honest node does with a sealed job:
/// gets its key, opens the input and the secret env, and reports the
/// output (sealed when the job asks).
fn run_sealed(net: &MarketFixture, n: u8, job_id: JobId) -> JobSecret {
    let attempt = attempt_of(net, n, job_id).expect("provider holds the job");
    acknowledge(net, n, job_id, attempt);
    let secret = job_key(net, node(n), job_id, attempt).expect("the node gets the key");
    let spec = read_job(net, node(n), job_id);
    let sealed = spec.sealed.expect("the job is sealed");
    assert_eq!(secret.open(&spec.input).unwrap(), INPUT);
    let env = secret.open_env(&sealed.env.unwrap()).unwrap();
    assert_eq!(env, vec![(SECRET_ENV.0.into(), SECRET_ENV.1.into())]);
    assert_eq!(spec.args, vec![PLAIN_ARG.to_string()]);
    let output = if sealed.output {
        secret.seal_output(OUTPUT)
    } else {
        OUTPUT.to_vec()
    };
    report(net, n, job_id, attempt, output);
    secret
}

/// A job's spec with its input, as `who` reads it the way a node does:
/// `job_view`, then the input's chunks.
fn read_job(net: &MarketFixture, who: Principal, job_id: JobId) -> JobSpec {
    let view: Option<JobView> = query_as(net, who, "job_view", &job_id);
    let view = view.expect("the job exists");
    assert!(!view.contents_hidden, "{who} may read job {job_id}");
    let mut input = Vec::new();
    while (input.len() as u64) < view.input_bytes {
        let req = JobChunkRequest {
            job_id,
            part: JobPart::Input,
            offset: input.len() as u64,
        };
        let chunk: Result<market_api::matcher::JobChunk, MatcherError> =
            query_as(net, who, "job_chunk", &req);
        input.extend(chunk.expect("the input is readable").bytes);
    }
    assert_eq!(sha(&input), view.input_sha256);
    let mut spec = view.job.spec;
    spec.input = input;
    spec
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Every reply a caller gets from every query of the matcher that could
/// tell of `job_id` (its reservation's and module's queries too), as raw
/// Candid bytes, named by the call.
fn every_query(net: &MarketFixture, who: Principal, job_id: JobId) -> Vec<(String, Vec<u8>)> {
    let owner = buyer();
    let page = PageRequest::default();
    let chunk = |part| JobChunkRequest {
        job_id,
        part,
        offset: 0,
    };
    let metrics = HttpRequest {
        method: "GET".into(),
        url: "/metrics".into(),
        headers: vec![],
        body: vec![],
    };
    let calls: Vec<(&str, Vec<u8>)> = vec![
        ("get_job", Encode!(&job_id).unwrap()),
        ("job_view", Encode!(&job_id).unwrap()),
        ("list_jobs", Encode!(&owner, &page).unwrap()),
        ("job_chunk input", Encode!(&chunk(JobPart::Input)).unwrap()),
        (
            "job_chunk output",
            Encode!(&chunk(JobPart::Output)).unwrap(),
        ),
        ("job_output", Encode!(&job_id, &0u64).unwrap()),
        ("get_reservation", Encode!(&job_id).unwrap()),
        ("list_reservations", Encode!(&owner, &page).unwrap()),
        ("get_service", Encode!(&job_id).unwrap()),
        ("get_events", Encode!(&page).unwrap()),
        ("assignments", Encode!(&provider(1), &page).unwrap()),
        ("recent_prices", Encode!(&net.ids.ledger).unwrap()),
        ("http_request", Encode!(&metrics).unwrap()),
    ];
    calls
        .into_iter()
        .map(|(name, arg)| {
            let method = name.split(' ').next().unwrap();
            let reply = net
                .devnet()
                .query_call(net.ids.matcher, who, method, arg)
                .unwrap_or_else(|e| panic!("{name} trapped: {e}"));
            (name.to_string(), reply)
        })
        .collect()
}

/// The secrets among `secrets` that any of `replies` holds.
fn leaks(replies: &[(String, Vec<u8>)], secrets: &[&[u8]]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, reply) in replies {
        for secret in secrets {
            if reply.windows(secret.len()).any(|w| w == *secret) {
                found.push(format!(
                    "{name} shows {}",
                    String::from_utf8_lossy(&secret[..secret.len().min(24)])
                ));
            }
        }
    }
    found
}

/// What a stranger must never read: the plain contents, and the sealed
/// ones' ciphertexts (a 32-byte window of each).
fn secrets_of(spec: &JobSpec) -> Vec<Vec<u8>> {
    let mut out = vec![
        PLAIN_ARG.as_bytes().to_vec(),
        PLAIN_ENV.1.as_bytes().to_vec(),
        INPUT.to_vec(),
        SECRET_ENV.1.as_bytes().to_vec(),
        OUTPUT.to_vec(),
    ];
    if let Some(s) = &spec.sealed {
        let window = |b: &[u8]| b[b.len() - 32..].to_vec();
        if s.input {
            out.push(window(&spec.input));
        }
        if let Some(env) = &s.env {
            out.push(window(env));
        }
    }
    out
}

#[test]
fn a_stranger_reads_no_content_of_anothers_job_through_any_query() {
    let net = market();
    // One sealed job, and one whose contents are all plain: a stranger
    // reads neither's, while it runs and after it ends.
    let sealed = sealed_job(&net, true, false);
    let plain = JobSpec {
        input: INPUT.to_vec(),
        env: vec![
            (PLAIN_ENV.0.into(), PLAIN_ENV.1.into()),
            (SECRET_ENV.0.into(), SECRET_ENV.1.into()),
        ],
        args: vec![PLAIN_ARG.into()],
        ..net.url_job(60, 4, 3 * PRICE)
    };
    for spec in [sealed, plain] {
        let id = submit(&net, &spec);
        let n = (1..=3)
            .find(|n| attempt_of(&net, *n, id).is_some())
            .expect("a provider holds the job");
        let secrets = secrets_of(&spec);
        let secrets: Vec<&[u8]> = secrets.iter().map(Vec::as_slice).collect();

        // The scan can fail: the owner's replies hold the contents.
        let owners = every_query(&net, buyer(), id);
        let seen = leaks(&owners, &secrets);
        assert!(
            seen.iter()
                .any(|l| l.starts_with("get_job shows ARG-SECRET")),
            "the owner reads the job: {seen:?}"
        );
        // So does the provider that holds it, through its node.
        let nodes = every_query(&net, node(n), id);
        assert!(
            leaks(&nodes, &secrets)
                .iter()
                .any(|l| l.starts_with("job_view shows ARG-SECRET")),
            "the node holding the job reads it"
        );
        for who in [stranger(), provider(if n == 1 { 2 } else { 1 })] {
            let seen = leaks(&every_query(&net, who, id), &secrets);
            assert!(seen.is_empty(), "{who} reads a running job: {seen:?}");
        }
        let view: Option<JobView> = query_as(&net, stranger(), "job_view", &id);
        let view = view.unwrap();
        assert!(view.contents_hidden);
        assert_eq!(view.input_bytes, spec.input.len() as u64);
        assert_eq!(view.input_sha256, sha(&spec.input));
        assert!(view.args_env_bytes > 0);

        // The job runs and its result stands.
        if spec.sealed.is_some() {
            run_sealed(&net, n, id);
        } else {
            let attempt = attempt_of(&net, n, id).unwrap();
            acknowledge(&net, n, id, attempt);
            report(&net, n, id, attempt, OUTPUT.to_vec());
        }
        net.wait_secs(net.settings.challenge_window_secs + 10);
        net.settle_outbox();
        assert_eq!(get_job(&net, buyer(), id).status, JobStatus::Succeeded);
        for who in [stranger(), provider(n), node(n)] {
            let seen = leaks(&every_query(&net, who, id), &secrets);
            assert!(seen.is_empty(), "{who} reads a finished job: {seen:?}");
            let job = get_job(&net, who, id);
            let result = job.result.expect("the result's terms are public");
            assert!(result.output.is_empty());
            assert_ne!(result.output_sha256, [0; 32], "its hash is shown");
        }
        let owner_sees = get_job(&net, buyer(), id).result.unwrap().output;
        assert!(!owner_sees.is_empty(), "the owner reads the output");
    }
    net.audit().unwrap();
}

#[test]
fn only_the_assigned_provider_and_an_auditor_get_the_jobs_key() {
    let net = market();
    let id = submit(&net, &sealed_job(&net, false, true));
    let attempt = attempt_of(&net, 1, id).expect("provider 1 holds the job");

    // Nobody but the holder (and the owner) gets the key: not another
    // provider, not the holder for another attempt, not a stranger.
    for (who, attempt) in [
        (provider(2), attempt),
        (node(2), attempt),
        (provider(1), attempt + 1),
        (stranger(), attempt),
    ] {
        assert!(
            matches!(
                job_key(&net, who, id, attempt),
                Err(MatcherError::Unauthorized { .. })
            ),
            "{who} got the key of job {id}"
        );
    }
    run_sealed(&net, 1, id);

    // Audited always: another provider re-runs the job and gets the key,
    // which opens the same contents.
    let (auditor, other) = if attempt_of_any(&net, 2).is_some() {
        (2, 3)
    } else {
        (3, 2)
    };
    let (run, run_attempt) = attempt_of_any(&net, auditor).expect("an auditor holds a run");
    assert_ne!(run, id);
    acknowledge(&net, auditor, run, run_attempt);
    let secret = job_key(&net, node(auditor), run, run_attempt).expect("the auditor gets the key");
    let spec = read_job(&net, node(auditor), run);
    assert_eq!(secret.open(&spec.input).unwrap(), INPUT);
    // The audited provider and the one that does not audit get nothing of
    // the run.
    for who in [node(1), provider(1), node(other)] {
        assert!(
            matches!(
                job_key(&net, who, run, run_attempt),
                Err(MatcherError::Unauthorized { .. })
            ),
            "{who} got the key of the audit run"
        );
    }
    report(&net, auditor, run, run_attempt, OUTPUT.to_vec());
    net.wait_secs(net.settings.challenge_window_secs + 10);
    net.settle_outbox();
    let job = get_job(&net, buyer(), id);
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(
        job.audit.and_then(|a| a.verdict),
        Some(market_api::matcher::AuditVerdict::Agreed)
    );
    // Once the job is over, its former provider gets no key.
    assert!(matches!(
        job_key(&net, node(1), id, attempt),
        Err(MatcherError::Unauthorized { .. })
    ));
    net.audit().unwrap();
}

/// The one job provider `n` holds, and its attempt.
fn attempt_of_any(net: &MarketFixture, n: u8) -> Option<(JobId, u32)> {
    net.assignments(provider(n))
        .unwrap()
        .first()
        .map(|a| (a.job_id, a.attempt))
}

#[test]
fn a_sealed_result_is_readable_by_its_owner_only() {
    let net = market();
    let id = submit(&net, &sealed_job(&net, true, false));
    let secret = run_sealed(&net, 1, id);
    net.wait_secs(net.settings.challenge_window_secs + 10);
    net.settle_outbox();

    let job = get_job(&net, buyer(), id);
    assert_eq!(job.status, JobStatus::Succeeded);
    let sealed_output = job.result.unwrap().output;
    assert_ne!(sealed_output, OUTPUT, "the matcher holds the output sealed");
    assert_eq!(sealed_output, secret.seal_output(OUTPUT));

    // The owner gets the key with its own transport key and reads it.
    let owners = job_key(&net, buyer(), id, 0).expect("the owner gets the key");
    assert_eq!(owners.open(&sealed_output).unwrap(), OUTPUT);
    // No one else gets the key or the sealed bytes.
    for who in [stranger(), provider(2), node(1)] {
        assert!(
            matches!(
                job_key(&net, who, id, 1),
                Err(MatcherError::Unauthorized { .. })
            ),
            "{who} got the key of a finished job"
        );
        let r: Result<market_api::matcher::OutputChunk, MatcherError> =
            query_as_args(&net, who, "job_output", (id, 0u64));
        assert!(r.is_err(), "{who} read the sealed output");
    }
    net.audit().unwrap();
}

/// A query of the matcher as `who`, with one argument and one result.
fn query_as<A: candid::CandidType, R: candid::CandidType + serde::de::DeserializeOwned>(
    net: &MarketFixture,
    who: Principal,
    method: &str,
    arg: &A,
) -> R {
    query_as_args(net, who, method, (arg,))
}

/// A query of the matcher as `who`, with a tuple of arguments and one
/// result; panics if it traps.
fn query_as_args<
    A: candid::utils::ArgumentEncoder,
    R: candid::CandidType + serde::de::DeserializeOwned,
>(
    net: &MarketFixture,
    who: Principal,
    method: &str,
    args: A,
) -> R {
    let bytes = candid::encode_args(args).unwrap();
    let reply = net
        .devnet()
        .query_call(net.ids.matcher, who, method, bytes)
        .unwrap_or_else(|e| panic!("{method} trapped: {e}"));
    candid::decode_one(&reply).unwrap_or_else(|e| panic!("{method}: {e}"))
}
