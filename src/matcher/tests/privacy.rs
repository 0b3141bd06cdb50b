//! Private jobs on the devnet with the matcher's real .wasm and the
//! devnet's vetKD: the matcher reads its public key after install, a buyer
//! seals a job's input and env to it with the client's sealing, the
//! provider holding the job gets the job's key and opens them, seals its
//! output, and the owner opens that. Another provider and a stranger get
//! no key and read no contents through any query; forged transport keys
//! are refused without changing anything.
//!
//! Needs `scripts/build-canisters.sh` first.

mod common;

use candid::{CandidType, Principal};
use common::{Net, buyer, node, provider};
use devnet::vetkd::VetKdKeys;
use market_api::matcher::{
    GFUEL, HeartbeatAck, Job, JobChunk, JobChunkRequest, JobPart, JobSpec, JobView, MatcherError,
    MatcherEvent, SubmitResultArgs,
};
use market_api::privacy::{JOB_KEY_CONTEXT, JobKey, JobKeyRequest, PrivacyKey, Sealed};
use market_api::{EventPage, JobId, PageRequest, Tokens};
use market_client::sealing::{TransportKey, new_key_id, seal, seal_env};
use market_fixture::{ICP, Settings, exited, heartbeat_item, principal};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

const PRICE: Tokens = 1_000_000;

fn stranger() -> Principal {
    principal(50)
}

fn secret_env() -> Vec<(String, String)> {
    vec![("API_TOKEN".into(), "hunter2".into())]
}

impl Net {
    /// A market with privacy, its key read, the buyer funded and two
    /// providers offering (provider 1 cheaper).
    fn new() -> Net {
        let net = Net::with_buyer(Settings {
            privacy: true,
            ..Settings::default()
        });
        for (n, price) in [(1, PRICE), (2, 2 * PRICE)] {
            net.onboard_provider(provider(n), node(n), 100 * ICP)
                .unwrap();
            let id: Result<u64, MatcherError> =
                net.call(provider(n), "post_offer", &net.offer_spec(1, price));
            id.unwrap();
        }
        net
    }

    fn query_as<A: CandidType, R: CandidType + DeserializeOwned>(
        &self,
        caller: Principal,
        method: &str,
        arg: &A,
    ) -> R {
        self.devnet()
            .query(self.ids.matcher, caller, method, arg)
            .unwrap_or_else(|e| panic!("{method}: {e:?}"))
    }

    fn privacy_key(&self) -> Option<PrivacyKey> {
        self.query_as(stranger(), "privacy_key", &())
    }

    fn job_key(
        &self,
        caller: Principal,
        job_id: JobId,
        attempt: u32,
        tk: &[u8],
    ) -> Result<JobKey, MatcherError> {
        let req = JobKeyRequest {
            job_id,
            attempt,
            transport_public_key: tk.to_vec(),
        };
        self.call(caller, "job_key", &req)
    }

    fn job_as(&self, caller: Principal, id: JobId) -> Job {
        let job: Option<Job> = self.query_as(caller, "get_job", &id);
        job.unwrap()
    }

    fn chunk_as(
        &self,
        caller: Principal,
        id: JobId,
        part: JobPart,
    ) -> Result<JobChunk, MatcherError> {
        let req = JobChunkRequest {
            job_id: id,
            part,
            offset: 0,
        };
        self.query_as(caller, "job_chunk", &req)
    }

    fn event_count(&self) -> u64 {
        let page: EventPage<MatcherEvent> =
            self.query_as(buyer(), "get_events", &PageRequest::default());
        page.total
    }
}

/// The buyer's job with its input and env sealed to `key` (and its output
/// to be sealed), matched to provider 1.
fn sealed_job(net: &Net, key: &PrivacyKey) -> (JobId, Vec<u8>, Vec<u8>) {
    let key_id = new_key_id();
    let input = seal(&key.public_key, buyer(), &key_id, b"the secret input").unwrap();
    let env = seal_env(&key.public_key, buyer(), &key_id, &secret_env()).unwrap();
    let spec = JobSpec {
        sealed: Some(Sealed {
            key_id,
            input: true,
            env: Some(env.clone().into()),
            output: true,
        }),
        input: input.clone(),
        args: vec!["--plain-arg".into()],
        env: vec![("PLAIN".into(), "visible-to-readers".into())],
        ..net.url_job(60, 10, 2 * PRICE)
    };
    let id: Result<JobId, MatcherError> = net.call(buyer(), "submit_job", &spec);
    let id = id.unwrap();
    net.settle_outbox();
    assert_eq!(net.job_as(buyer(), id).provider, Some(provider(1)));
    (id, input, env)
}

/// Waits until the matcher has read its public key (its timer's first
/// read comes a second after install).
fn read_key(net: &Net) -> PrivacyKey {
    for _ in 0..10 {
        if let Some(k) = net.privacy_key() {
            return k;
        }
        net.wait_secs(5);
    }
    panic!("the matcher never read its privacy key");
}

#[test]
fn the_matchers_key_is_the_devnets_derived_key_for_it() {
    let net = Net::new();
    let key = read_key(&net);
    let expected = VetKdKeys::devnet()
        .master("dfx_test_key")
        .unwrap()
        .public_key(net.ids.matcher.as_slice(), JOB_KEY_CONTEXT);
    assert_eq!(key.public_key.len(), 96);
    assert_eq!(key.public_key, expected.to_vec());
    assert_eq!(key.key_name, "dfx_test_key");
    assert_eq!(key.context, JOB_KEY_CONTEXT);
    // Kept across an upgrade (and read again after it).
    net.upgrade_matcher(None);
    assert_eq!(net.privacy_key(), Some(key.clone()));
    net.wait_secs(5);
    assert_eq!(net.privacy_key(), Some(key));
}

#[test]
fn the_assigned_provider_opens_a_sealed_job_and_no_one_else_gets_in() {
    let net = Net::new();
    let key = read_key(&net);
    let (id, input, env) = sealed_job(&net, &key);

    // The provider's node gets the key and opens the input and env.
    let tk = TransportKey::from_seed([1; 32]);
    let got = net.job_key(node(1), id, 1, &tk.public_key()).unwrap();
    let secret = tk.open(&got).expect("a key that verifies");
    let read = net.chunk_as(node(1), id, JobPart::Input).unwrap();
    assert_eq!(read.bytes, input);
    assert_eq!(secret.open(&read.bytes).unwrap(), b"the secret input");
    let seen = net.job_as(node(1), id);
    let sealed_env = seen.spec.sealed.unwrap().env.unwrap();
    assert_eq!(sealed_env.as_slice(), env.as_slice());
    assert_eq!(secret.open_env(&sealed_env).unwrap(), secret_env());

    // Another registered provider and a stranger get no key.
    for other in [provider(2), node(2), stranger()] {
        let tk = TransportKey::from_seed([2; 32]);
        assert!(
            matches!(
                net.job_key(other, id, 1, &tk.public_key()),
                Err(MatcherError::Unauthorized { .. })
            ),
            "{other}"
        );
    }
    // Nor does the anonymous principal.
    let anonymous: Result<Result<JobKey, MatcherError>, _> = net.update(
        net.ids.matcher,
        Principal::anonymous(),
        "job_key",
        &JobKeyRequest {
            job_id: id,
            attempt: 1,
            transport_public_key: tk.public_key(),
        },
    );
    assert!(!matches!(anonymous, Ok(Ok(_))));

    // The provider runs it and seals its output to the job.
    let beat = |fuel_used| {
        let items = vec![heartbeat_item(id, 1, fuel_used)];
        let acks: Result<Vec<HeartbeatAck>, MatcherError> = net.call(node(1), "heartbeat", &items);
        assert!(matches!(acks.unwrap()[0], HeartbeatAck::Accepted { .. }));
    };
    beat(0);
    let output = secret.seal_output(b"the secret answer");
    let args = SubmitResultArgs {
        job_id: id,
        attempt: 1,
        result: exited(&output, GFUEL),
    };
    let r: Result<(), MatcherError> = net.call(node(1), "submit_result", &args);
    r.unwrap();
    net.settle_outbox();

    // The owner opens the result with its own key.
    let owner_tk = TransportKey::from_seed([3; 32]);
    let owner_key = net.job_key(buyer(), id, 0, &owner_tk.public_key()).unwrap();
    let owner_secret = owner_tk.open(&owner_key).unwrap();
    let result = net.job_as(buyer(), id).result.unwrap();
    assert_eq!(result.output, output);
    assert_eq!(
        owner_secret.open(&result.output).unwrap(),
        b"the secret answer"
    );

    // A stranger (and the other provider) read nothing of it, by any query.
    for other in [stranger(), provider(2), node(2)] {
        let job = net.job_as(other, id);
        assert!(job.spec.input.is_empty(), "{other}: input");
        assert!(
            job.spec.args.is_empty() && job.spec.env.is_empty(),
            "{other}"
        );
        assert_eq!(job.spec.sealed.as_ref().unwrap().env, None, "{other}");
        let r = job.result.clone().unwrap();
        assert!(r.output.is_empty(), "{other}: output");
        assert_eq!(r.output_sha256, <[u8; 32]>::from(Sha256::digest(&output)));
        let listed: Vec<Job> = net
            .devnet()
            .query_args::<_, (Vec<Job>,)>(
                net.ids.matcher,
                other,
                "list_jobs",
                (buyer(), PageRequest::default()),
            )
            .unwrap()
            .0;
        assert_eq!(listed, vec![job], "{other}: list_jobs");
        let view: Option<JobView> = net.query_as(other, "job_view", &id);
        let view = view.unwrap();
        assert!(view.contents_hidden);
        assert!(view.job.spec.args.is_empty());
        assert_eq!(view.input_bytes, input.len() as u64);
        assert!(view.args_env_bytes > env.len() as u64);
        for part in [JobPart::Input, JobPart::Output] {
            assert!(
                matches!(
                    net.chunk_as(other, id, part),
                    Err(MatcherError::Unauthorized { .. })
                ),
                "{other}: job_chunk {part:?}"
            );
        }
        let (out,): (Result<market_api::matcher::OutputChunk, MatcherError>,) = net
            .devnet()
            .query_args(net.ids.matcher, other, "job_output", (id, 0u64))
            .unwrap();
        assert!(
            matches!(out, Err(MatcherError::Unauthorized { .. })),
            "{other}: job_output"
        );
    }
}

#[test]
fn forged_transport_keys_are_refused_and_change_nothing() {
    let net = Net::new();
    let key = read_key(&net);
    let (id, ..) = sealed_job(&net, &key);
    let job = net.job_as(buyer(), id);
    let events = net.event_count();
    // 48 bytes that are no G1 point, more times than the limit allows.
    for _ in 0..6 {
        let forged = net.job_key(node(1), id, 1, &[0xFF; 48]);
        assert!(
            matches!(&forged, Err(MatcherError::Downstream { canister, .. }) if canister == "management"),
            "{forged:?}"
        );
    }
    // The wrong length.
    for len in [0, 47, 49, 96] {
        assert!(matches!(
            net.job_key(node(1), id, 1, &vec![1; len]),
            Err(MatcherError::InvalidArgument { .. })
        ));
    }
    assert_eq!(net.job_as(buyer(), id), job);
    assert_eq!(net.event_count(), events);
    // The holder's derivations were not used up.
    let tk = TransportKey::from_seed([4; 32]);
    for _ in 0..market_api::privacy::MAX_KEYS_PER_HOLDER {
        let got = net.job_key(node(1), id, 1, &tk.public_key()).unwrap();
        tk.open(&got).unwrap();
    }
    assert!(matches!(
        net.job_key(node(1), id, 1, &tk.public_key()),
        Err(MatcherError::LimitReached { .. })
    ));
}
