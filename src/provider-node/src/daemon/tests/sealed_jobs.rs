//! Sealed jobs: the node gets the job's key from the matcher (real vetKeys,
//! derived by the fake from a devnet master key), runs the job on its
//! opened input and env, seals its output to the job, and reports a part
//! that does not open as undecryptable without running anything.

use market_api::privacy::{IBE_OVERHEAD, Sealed, job_identity};
use market_client::sealing::{self as sealing, JobSecret, TransportKey};

use super::*;

/// The plain env the tests' jobs carry: `ECHO_EXIT=0`, which a secret of
/// the same name replaces.
fn plain_env() -> Vec<(String, String)> {
    vec![("ECHO_EXIT".into(), "0".into())]
}

/// The env sealed into the tests' jobs: `echo` exits with its code.
fn secret_env() -> Vec<(String, String)> {
    vec![("ECHO_EXIT".into(), "3".into())]
}

/// Encrypts `plaintext` to the job sealed with `key_id` (its owner is the
/// fake's, anonymous).
fn seal(key_id: &[u8], plaintext: &[u8]) -> Vec<u8> {
    sealing::seal(
        &vetkeys::public_key(),
        Principal::anonymous(),
        key_id,
        plaintext,
    )
    .unwrap()
}

fn seal_env(key_id: &[u8], env: &[(String, String)]) -> serde_bytes::ByteBuf {
    sealing::seal_env(&vetkeys::public_key(), Principal::anonymous(), key_id, env)
        .unwrap()
        .into()
}

/// The job's key as its owner opens it (with a transport key of its own).
fn owners_secret(key_id: &[u8]) -> JobSecret {
    let transport = TransportKey::new();
    let identity = job_identity(Principal::anonymous(), key_id);
    transport
        .open(&vetkeys::job_key(&identity, &transport.public_key()).unwrap())
        .unwrap()
}

/// A job running the `echo` workload stored under `sha256` on `input`
/// (the ciphertext of `private input`) with `plain_env()` and the sealed
/// env `env`, its output sealed.
fn sealed_spec(
    sha256: [u8; 32],
    key_id: &[u8],
    input: Vec<u8>,
    env: serde_bytes::ByteBuf,
) -> JobSpec {
    JobSpec {
        input,
        env: plain_env(),
        sealed: Some(Sealed {
            key_id: key_id.to_vec(),
            input: true,
            env: Some(env),
            output: true,
        }),
        ..spec(sha256, 10)
    }
}

/// [`sealed_spec`] with `private input` sealed to `key_id` and the
/// secret env sealed to `env_key_id`.
fn sealed_echo(sha256: [u8; 32], key_id: &[u8], env_key_id: &[u8]) -> JobSpec {
    sealed_spec(
        sha256,
        key_id,
        seal(key_id, b"private input"),
        seal_env(env_key_id, &secret_env()),
    )
}

fn echo() -> Vec<u8> {
    market_artifacts::workload("echo")
}

/// The result submitted for `job`.
fn submitted(h: &Harness, job: JobId) -> Vec<JobResult> {
    let st = h.market.state.lock().unwrap();
    st.submissions
        .iter()
        .filter(|s| s.job_id == job)
        .map(|s| s.result.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_job_runs_on_its_opened_input_and_env_and_reports_its_output_sealed() {
    let h = Harness::new();
    let sha = h.market.store(&echo());
    let key_id = sealing::new_key_id();
    h.market.add_job(1, sealed_echo(sha, &key_id, &key_id));
    h.run_until_job_1_has_a_result().await;

    let results = submitted(&h, 1);
    assert_eq!(results.len(), 1);
    let r = &results[0];
    // The secret ECHO_EXIT replaced the plain one; the input was opened.
    assert_eq!(r.outcome, RunOutcome::Exited { code: 3 });
    assert!(r.fuel_used > 0);
    assert_ne!(r.output, b"private input", "the output is sealed");
    assert_eq!(r.output.len(), b"private input".len() + IBE_OVERHEAD);
    assert_eq!(
        r.output_sha256,
        <[u8; 32]>::from(sha2::Sha256::digest(&r.output)),
        "the hash is of what is reported"
    );
    assert_eq!(
        owners_secret(&key_id).open(&r.output).unwrap(),
        b"private input",
        "the owner opens the output with the job's key"
    );
    // A key of another job opens nothing.
    assert!(
        owners_secret(&sealing::new_key_id())
            .open(&r.output)
            .is_err()
    );
    let st = h.market.state.lock().unwrap();
    assert_eq!(st.key_requests.len(), 1, "{:?}", st.key_requests);
    assert_eq!(
        (st.key_requests[0].job_id, st.key_requests[0].attempt),
        (1, 1)
    );
    assert!(!st.jobs[&1].handed_back);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_input_or_env_is_reported_undecryptable_without_running() {
    let h = Harness::new();
    // The module is not in the store: a node that tried to run the job
    // would report it invalid, not undecryptable.
    let missing = [0xEE; 32];
    let key_id = sealing::new_key_id();
    let env = seal_env(&key_id, &secret_env());

    // Job 1: its input's last byte flipped.
    let mut forged = seal(&key_id, b"private input");
    *forged.last_mut().unwrap() ^= 1;
    h.market
        .add_job(1, sealed_spec(missing, &key_id, forged, env.clone()));
    // Job 2: its env sealed to another job's identity.
    let other = sealing::new_key_id();
    h.market.add_job(2, sealed_echo(missing, &key_id, &other));
    // Job 3: an env that opens, but to more than the env's bounds.
    let huge = vec![("K".to_string(), "v".repeat(2_000))];
    let huge = seal(&key_id, &Encode!(&huge).unwrap());
    h.market.add_job(
        3,
        sealed_spec(
            missing,
            &key_id,
            seal(&key_id, b"private input"),
            huge.into(),
        ),
    );
    h.run_while(
        Duration::from_secs(5),
        h.until(0, "three results", |st| {
            st.jobs.values().all(|j| j.result.is_some())
        }),
    )
    .await;

    for (job, part) in [(1, "input"), (2, "env"), (3, "env")] {
        let results = submitted(&h, job);
        assert_eq!(results.len(), 1, "job {job}");
        let r = &results[0];
        assert_eq!(
            r.outcome,
            RunOutcome::Undecryptable { part: part.into() },
            "job {job}"
        );
        assert_eq!(r.fuel_used, 0, "job {job}");
        assert!(r.output.is_empty(), "job {job}");
        assert_eq!(
            r.output_sha256,
            <[u8; 32]>::from(sha2::Sha256::digest([])),
            "job {job}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_hands_the_job_back_and_a_busy_matcher_is_asked_again() {
    let h = Harness::new();
    let sha = h.market.store(&echo());
    let key_id = sealing::new_key_id();
    let sealed = |key_id: &[u8]| sealed_echo(sha, key_id, key_id);
    h.market.add_job(1, sealed(&key_id));
    h.market.state.lock().unwrap().key_errors = vec![MatcherError::Unauthorized {
        reason: "not the provider of this attempt".into(),
    }];
    h.run_while(
        Duration::from_secs(5),
        h.until(0, "a hand-back", |st| st.jobs[&1].handed_back),
    )
    .await;
    {
        let st = h.market.state.lock().unwrap();
        assert!(st.submissions.is_empty(), "nothing run, nothing reported");
        assert_eq!(st.key_requests.len(), 1);
        assert_eq!(st.hand_backs.len(), 1);
    }

    // Busy, then a failed call: the key is asked for again and the job runs.
    let h = Harness::new();
    let sha = h.market.store(&echo());
    h.market.add_job(1, sealed_echo(sha, &key_id, &key_id));
    h.market.state.lock().unwrap().key_errors = vec![
        MatcherError::Busy,
        MatcherError::Downstream {
            canister: "management".into(),
            message: "vetkd_derive_key: try later".into(),
        },
    ];
    h.run_until_job_1_has_a_result().await;
    let results = submitted(&h, 1);
    assert_eq!(results[0].outcome, RunOutcome::Exited { code: 3 });
    let st = h.market.state.lock().unwrap();
    assert_eq!(st.key_requests.len(), 3);
    assert!(!st.jobs[&1].handed_back);
}

#[test]
fn a_sealed_output_written_up_to_the_stdout_cap_still_fits_a_result() {
    let key_id = sealing::new_key_id();
    let s = sealed_spec([0; 32], &key_id, vec![], serde_bytes::ByteBuf::from(vec![]));
    let cap = max_stdout_bytes(&s);
    assert_eq!(
        sandbox_limits(&s, Duration::from_secs(1)).max_stdout_bytes,
        cap
    );
    assert_eq!(max_stdout_bytes(&spec([0; 32], 10)), MAX_OUTPUT_BYTES);
    let secret = owners_secret(&key_id);
    let result = sealed::seal_result(
        &secret,
        JobResult {
            outcome: RunOutcome::OutputTooLarge,
            output: vec![7; cap],
            output_sha256: [0; 32],
            fuel_used: 1,
            engine: ENGINE_VERSION.into(),
        },
    );
    assert_eq!(result.output.len(), MAX_OUTPUT_BYTES);
    assert_eq!(secret.open(&result.output).unwrap(), vec![7; cap]);
}
