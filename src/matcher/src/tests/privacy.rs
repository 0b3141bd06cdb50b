//! Private jobs natively: who reads a job's contents, a lease's env and a
//! stored module through the queries; which sealed specs are taken; who
//! gets a job's key, how often, and what a refused derivation leaves.

use super::market::{
    P, buyer, funded_job, funded_lease, icp, lease, market, node, offer, offers, provider, service,
    sha256, spec, store_module,
};
use super::perform::{FAKE_VETKD_PUBLIC_KEY, Fake};
use crate::endpoints;
use crate::market::Market;
use crate::market::keys::KeyHolder;
use crate::state::{mutate_state, read_state};
use candid::Principal;
use futures::executor::block_on;
use ic_stable_structures::VectorMemory;
use market_api::JobId;
use market_api::client::CallError;
use market_api::matcher::{
    JobChunkRequest, JobKind, JobPart, JobResult, JobSpec, MatcherError, ModuleSource,
    ReservationSpec, ReservedJobArgs, ServiceSpec, SubmitResultArgs,
};
use market_api::privacy::{
    IBE_HEADER, IBE_OVERHEAD, JobKeyRequest, MAX_KEYS_PER_HOLDER, PrivacyConfig, Sealed,
    TRANSPORT_KEY_BYTES, job_identity,
};
use market_fixture::{exited, heartbeat_item};

const S: u64 = 1_000_000_000;
const G: u64 = market_api::matcher::GFUEL;

fn stranger() -> Principal {
    Principal::from_slice(&[0x77])
}

fn delegate() -> Principal {
    Principal::from_slice(&[0x21])
}

/// Something with the shape of an IBE ciphertext of `n` bytes of plaintext.
fn ciphertext(n: usize) -> Vec<u8> {
    let mut ct = IBE_HEADER.to_vec();
    ct.resize(IBE_OVERHEAD + n, 0xC7);
    ct
}

fn sealing() -> Sealed {
    Sealed {
        key_id: vec![9; 32],
        input: false,
        env: Some(ciphertext(40).into()),
        output: false,
    }
}

/// A job with contents of every kind: input, args, env and a sealed env.
fn secret_spec() -> JobSpec {
    let mut s = spec(80, 1);
    s.input = b"the input".to_vec();
    s.args = vec!["--token=abc".into()];
    s.env = vec![("KEY".into(), "value".into())];
    s.sealed = Some(sealing());
    s
}

fn sealed_market() -> Market<VectorMemory> {
    let mut m = market();
    m.sealing = true;
    m
}

/// A market taking sealed jobs where provider 1 (node 1) holds a funded
/// job of the buyer's with [`secret_spec`], its bond held.
fn market_with_a_secret_job() -> (Market<VectorMemory>, JobId) {
    let mut m = sealed_market();
    offers(&mut m, &P, &[(1, 50), (2, 60)]);
    let id = m
        .create_job(&P, 0, buyer(), secret_spec())
        .unwrap()
        .state
        .id;
    assert_eq!(m.job_funded(&P, 0, id), Some(provider(1)));
    m.bond_held(&P, 0, id, 1);
    (m, id)
}

fn chunk(
    m: &Market<VectorMemory>,
    caller: Principal,
    id: JobId,
    part: JobPart,
) -> Result<Vec<u8>, MatcherError> {
    m.job_chunk(
        caller,
        &JobChunkRequest {
            job_id: id,
            part,
            offset: 0,
        },
    )
    .map(|c| c.bytes)
}

fn assert_hidden(m: &Market<VectorMemory>, caller: Principal, id: JobId) {
    let job = m.job_for(caller, id).unwrap();
    assert!(job.spec.input.is_empty(), "{caller}: input");
    assert!(job.spec.args.is_empty(), "{caller}: args");
    assert!(job.spec.env.is_empty(), "{caller}: env");
    assert_eq!(
        job.spec.sealed.as_ref().unwrap().env,
        None,
        "{caller}: sealed env"
    );
    assert_eq!(
        job.spec.sealed.as_ref().unwrap().key_id,
        vec![9; 32],
        "the terms stay"
    );
    if let Some(r) = &job.result {
        assert!(r.output.is_empty(), "{caller}: output");
    }
    let owner = m.job(id).unwrap().state.owner;
    let listed = m.jobs_of(caller, owner, 0, 10);
    let listed = listed.iter().find(|j| j.id == id).unwrap();
    assert_eq!(*listed, job, "{caller}: list_jobs shows what get_job shows");
    let view = m.job_view(caller, id).unwrap();
    assert!(view.contents_hidden);
    assert!(view.job.spec.args.is_empty() && view.job.spec.env.is_empty());
    assert_eq!(view.job.spec.sealed.unwrap().env, None);
    assert_eq!(view.input_bytes, 9, "sizes are public");
    assert_eq!(view.args_env_bytes, 11 + 8 + (IBE_OVERHEAD + 40) as u64);
    for part in [JobPart::Input, JobPart::Output] {
        assert!(
            matches!(
                chunk(m, caller, id, part),
                Err(MatcherError::Unauthorized { .. })
            ),
            "{caller}: job_chunk {part:?}"
        );
    }
}

fn assert_shown(m: &Market<VectorMemory>, caller: Principal, id: JobId) {
    let job = m.job_for(caller, id).unwrap();
    assert_eq!(job.spec.input, b"the input", "{caller}: input");
    assert_eq!(job.spec.args, vec!["--token=abc".to_string()]);
    assert_eq!(job.spec.env.len(), 1);
    assert!(job.spec.sealed.as_ref().unwrap().env.is_some());
    let view = m.job_view(caller, id).unwrap();
    assert!(!view.contents_hidden);
    assert_eq!(view.job.spec.args.len(), 1);
    assert_eq!(view.args_env_bytes, 11 + 8 + (IBE_OVERHEAD + 40) as u64);
    assert_eq!(chunk(m, caller, id, JobPart::Input).unwrap(), b"the input");
}

#[test]
fn a_strangers_queries_show_no_contents_and_each_reader_sees_them() {
    let (mut m, id) = market_with_a_secret_job();
    for reader in [buyer(), provider(1), node(1)] {
        assert_shown(&m, reader, id);
    }
    // Another provider, another provider's node, anyone.
    for other in [stranger(), provider(2), node(2), Principal::anonymous()] {
        assert_hidden(&m, other, id);
    }

    // The result: the output for the readers, its hash for everyone.
    m.heartbeat(&P, S, node(1), &[heartbeat_item(id, 1, 0)])
        .unwrap();
    let result = JobResult {
        output_sha256: [5; 32],
        ..exited(b"the answer", G)
    };
    m.submit_result(
        &P,
        2 * S,
        node(1),
        SubmitResultArgs {
            job_id: id,
            attempt: 1,
            result,
        },
    )
    .unwrap();
    let seen = m.job_for(buyer(), id).unwrap().result.unwrap();
    assert_eq!(seen.output, b"the answer");
    assert_eq!(
        chunk(&m, buyer(), id, JobPart::Output).unwrap(),
        b"the answer"
    );
    let hidden = m.job_for(stranger(), id).unwrap().result.unwrap();
    assert!(hidden.output.is_empty());
    assert_eq!(hidden.output_sha256, [5; 32]);
    let view = m.job_view(stranger(), id).unwrap();
    assert_eq!(view.output_bytes, 10, "its size is public");
    assert_hidden(&m, stranger(), id);
}

#[test]
fn a_reservations_owner_and_delegates_read_its_jobs_and_no_one_else() {
    let mut m = sealed_market();
    offers(&mut m, &P, &[(1, 50)]);
    let rspec = ReservationSpec {
        delegates: vec![delegate()],
        ..lease(1, 10)
    };
    let (rid, _) = funded_lease(&mut m, &P, rspec);
    let mut s = secret_spec();
    s.limits.memory_mib = 64;
    let id = m
        .submit_reserved_job(
            &P,
            0,
            delegate(),
            ReservedJobArgs {
                reservation: rid,
                spec: s,
            },
        )
        .unwrap();
    let rec = m.job(id).unwrap();
    assert_eq!(rec.kind, JobKind::InReservation { reservation: rid });
    assert_eq!(rec.state.owner, delegate());
    assert_shown(&m, delegate(), id);
    assert_shown(&m, buyer(), id);
    assert_hidden(&m, stranger(), id);
}

/// A ten-minute lease of one replica of a service whose env is sealed.
fn service_lease() -> ReservationSpec {
    ReservationSpec {
        service: Some(ServiceSpec {
            sealed: Some(sealing()),
            allowed_hosts: vec![],
            callback: None,
            ..service()
        }),
        ..lease(1, 10)
    }
}

#[test]
fn a_leases_env_is_read_by_its_owner_and_its_replicas_providers_only() {
    let mut m = sealed_market();
    offers(&mut m, &P, &[(1, 50), (2, 50)]);
    let (rid, slots) = funded_lease(&mut m, &P, service_lease());
    let slot = slots[0];
    let holder = m.job(slot).unwrap().state.assignment.unwrap().provider;
    let (holder_node, other, other_node) = if holder == provider(1) {
        (node(1), provider(2), node(2))
    } else {
        (node(2), provider(1), node(1))
    };
    for reader in [buyer(), holder, holder_node] {
        let service = m
            .reservation_for(reader, rid)
            .unwrap()
            .spec
            .service
            .unwrap();
        assert_eq!(service.env.len(), 1, "{reader}");
        assert!(service.sealed.unwrap().env.is_some(), "{reader}");
    }
    for other in [stranger(), other, other_node] {
        let service = m.reservation_for(other, rid).unwrap().spec.service.unwrap();
        assert!(service.env.is_empty(), "{other}");
        assert_eq!(service.sealed.unwrap().env, None, "{other}");
        let listed = m.reservations_of(other, buyer(), 0, 10);
        assert!(listed[0].spec.service.as_ref().unwrap().env.is_empty());
    }
    let listed = m.reservations_of(buyer(), buyer(), 0, 10);
    assert_eq!(listed[0].spec.service.as_ref().unwrap().env.len(), 1);
}

#[test]
fn a_stored_module_is_read_by_its_uploader_its_jobs_owners_and_their_providers() {
    let uploader = Principal::from_slice(&[0x55]);
    let mut m = sealed_market();
    let bytes = b"\0asm\x01\0\0\0".to_vec();
    let sha = sha256(&bytes);
    store_module(&mut m, uploader, &bytes);
    offers(&mut m, &P, &[(1, 50), (2, 60)]);
    assert!(m.reads_module(uploader, &sha));
    assert!(
        !m.reads_module(buyer(), &sha),
        "no job of the buyer's runs it yet"
    );
    let mut s = spec(80, 1);
    s.module = ModuleSource::Stored { sha256: sha };
    let id = funded_job(&mut m, s);
    for reader in [uploader, buyer(), provider(1), node(1)] {
        assert!(m.reads_module(reader, &sha), "{reader}");
    }
    for other in [stranger(), provider(2), node(2)] {
        assert!(!m.reads_module(other, &sha), "{other}");
    }
    // Once the job has ended, its owner reads it no more.
    m.cancel(&P, S, buyer(), id).unwrap();
    assert!(!m.reads_module(buyer(), &sha));
    assert!(!m.reads_module(node(1), &sha));
    assert!(m.reads_module(uploader, &sha));
}

fn field(e: MatcherError) -> String {
    match e {
        MatcherError::InvalidArgument { field, .. } => field,
        other => panic!("not an invalid argument: {other:?}"),
    }
}

#[test]
fn sealed_specs_need_a_market_with_privacy_and_the_right_shape() {
    // Without privacy configured: refused.
    let mut m = market();
    assert_eq!(
        field(m.create_job(&P, 0, buyer(), secret_spec()).unwrap_err()),
        "sealed"
    );
    assert_eq!(
        field(
            m.create_reservation(&P, 0, buyer(), service_lease())
                .unwrap_err()
        ),
        "sealed"
    );

    let mut m = sealed_market();
    let with = |f: &dyn Fn(&mut JobSpec)| {
        let mut s = secret_spec();
        f(&mut s);
        s
    };
    let bad_key = with(&|s| s.sealed.as_mut().unwrap().key_id = vec![1; 31]);
    assert_eq!(
        field(m.create_job(&P, 0, buyer(), bad_key).unwrap_err()),
        "sealed.key_id"
    );
    let plain_input = with(&|s| s.sealed.as_mut().unwrap().input = true);
    assert_eq!(
        field(m.create_job(&P, 0, buyer(), plain_input).unwrap_err()),
        "input"
    );
    let forged_env = with(&|s| s.sealed.as_mut().unwrap().env = Some(b"forged".to_vec().into()));
    assert_eq!(
        field(m.create_job(&P, 0, buyer(), forged_env).unwrap_err()),
        "sealed.env"
    );
    let sealed_input = with(&|s| {
        s.input = ciphertext(10);
        s.sealed.as_mut().unwrap().input = true;
    });
    let rec = m.create_job(&P, 0, buyer(), sealed_input).unwrap();
    // The sealing is paid for as stored bytes.
    assert_eq!(
        rec.spec.stored_bytes(),
        (IBE_OVERHEAD + 10 + 11 + 8 + 32 + IBE_OVERHEAD + 40) as u64
    );

    let mut lease = service_lease();
    lease
        .service
        .as_mut()
        .unwrap()
        .sealed
        .as_mut()
        .unwrap()
        .output = true;
    assert_eq!(
        field(m.create_reservation(&P, 0, buyer(), lease).unwrap_err()),
        "sealed"
    );
    assert!(
        m.create_reservation(&P, 0, buyer(), service_lease())
            .is_ok()
    );
}

#[test]
fn a_finished_job_drops_its_sealed_env_with_its_contents() {
    let (mut m, id) = market_with_a_secret_job();
    m.cancel(&P, S, buyer(), id).unwrap();
    let rec = m.job(id).unwrap();
    assert!(rec.spec.input.is_empty() && rec.spec.env.is_empty());
    let sealed = rec.spec.sealed.unwrap();
    assert_eq!(sealed.env, None);
    assert_eq!(
        sealed.key_id,
        vec![9; 32],
        "the owner still gets the key to open its result"
    );
}

fn key_req(job_id: JobId, attempt: u32) -> JobKeyRequest {
    JobKeyRequest {
        job_id,
        attempt,
        transport_public_key: vec![0xA1; TRANSPORT_KEY_BYTES],
    }
}

#[test]
fn only_the_holder_of_the_attempt_and_the_owner_get_a_jobs_key() {
    let (mut m, id) = market_with_a_secret_job();
    let identity = job_identity(buyer(), &[9; 32]);
    for caller in [provider(1), node(1)] {
        let grant = m.check_job_key(caller, &key_req(id, 1)).unwrap();
        assert_eq!(grant.holder, KeyHolder::Provider { attempt: 1 });
        assert_eq!(grant.identity, identity);
    }
    let owner = m.check_job_key(buyer(), &key_req(id, 0)).unwrap();
    assert_eq!(owner.holder, KeyHolder::Owner);
    assert_eq!(owner.identity, identity);
    let refused = |m: &Market<VectorMemory>, caller, attempt| {
        matches!(
            m.check_job_key(caller, &key_req(id, attempt)),
            Err(MatcherError::Unauthorized { .. })
        )
    };
    // Another provider, its node, a stranger; the holder for another attempt.
    assert!(refused(&m, provider(2), 1));
    assert!(refused(&m, node(2), 1));
    assert!(refused(&m, stranger(), 1));
    assert!(refused(&m, provider(1), 2));
    assert!(matches!(
        m.check_job_key(buyer(), &key_req(999, 0)),
        Err(MatcherError::UnknownJob { .. })
    ));

    // Limits: per attempt for the provider, per job for the owner.
    let grant = m.check_job_key(node(1), &key_req(id, 1)).unwrap();
    for _ in 0..MAX_KEYS_PER_HOLDER {
        m.count_job_key(&grant).unwrap();
    }
    assert!(matches!(
        m.count_job_key(&grant),
        Err(MatcherError::LimitReached { .. })
    ));
    m.count_job_key(&owner).unwrap();

    // The job goes to provider 2: provider 1's attempt no longer counts.
    m.hand_back(&P, S, node(1), id, 1).unwrap();
    let second = m.job(id).unwrap().state.assignment.unwrap();
    assert_eq!((second.provider, second.attempt), (provider(2), 2));
    m.bond_held(&P, S, id, 2);
    assert!(refused(&m, provider(1), 1), "an earlier attempt's provider");
    assert!(refused(&m, provider(1), 2));
    let grant = m.check_job_key(node(2), &key_req(id, 2)).unwrap();
    for _ in 0..MAX_KEYS_PER_HOLDER {
        m.count_job_key(&grant).unwrap();
    }
    assert!(m.count_job_key(&grant).is_err());

    // Once it has ended, only its owner gets the key (to open a result).
    m.cancel(&P, 2 * S, buyer(), id).unwrap();
    assert!(refused(&m, provider(2), 2));
    let owner = m.check_job_key(buyer(), &key_req(id, 0)).unwrap();
    for _ in 1..MAX_KEYS_PER_HOLDER {
        m.count_job_key(&owner).unwrap();
    }
    assert!(m.count_job_key(&owner).is_err());
}

#[test]
fn a_job_without_sealing_has_no_key_and_a_bond_not_yet_held_gets_none() {
    let mut m = sealed_market();
    offers(&mut m, &P, &[(1, 50)]);
    let plain = funded_job(&mut m, spec(80, 1));
    m.bond_held(&P, 0, plain, 1);
    assert_eq!(
        field(m.check_job_key(buyer(), &key_req(plain, 0)).unwrap_err()),
        "job_id"
    );
    assert_eq!(
        field(m.check_job_key(node(1), &key_req(plain, 1)).unwrap_err()),
        "job_id"
    );
    // A stranger learns nothing of the job either way.
    assert!(matches!(
        m.check_job_key(stranger(), &key_req(plain, 1)),
        Err(MatcherError::Unauthorized { .. })
    ));

    let mut o = offer(50);
    o.slots = 2;
    m.put_offer(&P, 0, provider(3), node(3), 0, None, o)
        .unwrap();
    let id = funded_job(&mut m, secret_spec());
    let a = m.job(id).unwrap().state.assignment.unwrap();
    assert!(a.bond_pending);
    assert!(
        m.check_job_key(a.provider, &key_req(id, a.attempt))
            .is_err()
    );
    m.bond_held(&P, 0, id, a.attempt);
    assert!(m.check_job_key(a.provider, &key_req(id, a.attempt)).is_ok());
}

#[test]
fn a_replicas_provider_gets_the_key_of_its_leases_sealing() {
    let mut m = sealed_market();
    offers(&mut m, &P, &[(1, 50)]);
    let (_, slots) = funded_lease(&mut m, &P, service_lease());
    let slot = slots[0];
    m.bond_held(&P, 0, slot, 1);
    let grant = m.check_job_key(node(1), &key_req(slot, 1)).unwrap();
    assert_eq!(grant.identity, job_identity(buyer(), &[9; 32]));
    assert_eq!(
        m.check_job_key(buyer(), &key_req(slot, 0)).unwrap().holder,
        KeyHolder::Owner
    );
    assert!(m.check_job_key(stranger(), &key_req(slot, 1)).is_err());
}

/// The fake's state with privacy configured and a job of the buyer's
/// held by provider 1 (its bond held).
fn fake_with_a_secret_job() -> JobId {
    mutate_state(|s| {
        let mut config = s.config();
        config.privacy = Some(PrivacyConfig {
            key_name: "test_key_1".into(),
            derive_key_cycles: Some(123),
        });
        s.set_config(config);
        let t = 0;
        s.market
            .put_offer(&P, t, provider(1), node(1), 0, None, offer(50))
            .unwrap();
        let id = s
            .market
            .create_job(&P, t, buyer(), secret_spec())
            .unwrap()
            .state
            .id;
        s.market.job_funded(&P, t, id);
        s.market.bond_held(&P, t, id, 1);
        id
    })
}

fn keys_of(id: JobId) -> crate::market::keys::KeyCounts {
    read_state(|s| s.market.job(id).unwrap().keys)
}

#[test]
fn job_key_derives_for_the_holder_after_the_public_key_is_read() {
    let fake = Fake::new();
    let id = fake_with_a_secret_job();
    assert_eq!(read_state(|s| s.privacy_key()), None);
    // Before the public key is read: a downstream error, nothing derived.
    assert!(matches!(
        block_on(endpoints::job_key(&fake, node(1), key_req(id, 1))),
        Err(MatcherError::Downstream { .. })
    ));
    // A failed read keeps none; the next one keeps it.
    fake.vetkd_errors
        .borrow_mut()
        .push_back(CallError::OutcomeUnknown);
    assert!(block_on(endpoints::read_privacy_key(&fake)).is_err());
    assert_eq!(read_state(|s| s.privacy_key()), None);
    block_on(endpoints::read_privacy_key(&fake)).unwrap();
    let key = read_state(|s| s.privacy_key()).unwrap();
    assert_eq!(key.public_key, FAKE_VETKD_PUBLIC_KEY.to_vec());
    assert_eq!(key.key_name, "test_key_1");
    assert_eq!(
        fake.calls_of("vetkd_public_key")[0].key,
        "test_key_1 icp-compute-market/job-key/v1"
    );

    let got = block_on(endpoints::job_key(&fake, node(1), key_req(id, 1))).unwrap();
    let identity = job_identity(buyer(), &[9; 32]);
    assert_eq!(got.identity, identity);
    assert_eq!(got.public_key, FAKE_VETKD_PUBLIC_KEY.to_vec());
    assert_eq!(
        fake.derivations.borrow().as_slice(),
        &[(identity.clone(), vec![0xA1; TRANSPORT_KEY_BYTES], 123)],
        "derived for the job's identity, to the caller's transport key, with the configured cycles"
    );
    // Strangers and other providers: refused before any call.
    for other in [stranger(), provider(2)] {
        assert!(matches!(
            block_on(endpoints::job_key(&fake, other, key_req(id, 1))),
            Err(MatcherError::Unauthorized { .. })
        ));
    }
    assert_eq!(fake.derivations.borrow().len(), 1);
}

#[test]
fn a_refused_transport_key_changes_nothing() {
    let fake = Fake::new();
    let id = fake_with_a_secret_job();
    block_on(endpoints::read_privacy_key(&fake)).unwrap();
    let before = keys_of(id);
    // The wrong length: refused before any call.
    let mut short = key_req(id, 1);
    short.transport_public_key.pop();
    assert_eq!(
        field(block_on(endpoints::job_key(&fake, node(1), short)).unwrap_err()),
        "transport_public_key"
    );
    assert!(fake.calls_of("vetkd_derive_key").is_empty());
    // Not a point (the management canister rejects it): a downstream error,
    // and the derivation is not counted.
    for _ in 0..(MAX_KEYS_PER_HOLDER + 2) {
        fake.vetkd_errors
            .borrow_mut()
            .push_back(CallError::Rejected {
                code: 5,
                message: "invalid transport public key".into(),
            });
        assert!(matches!(
            block_on(endpoints::job_key(&fake, node(1), key_req(id, 1))),
            Err(MatcherError::Downstream { canister, .. }) if canister == "management"
        ));
    }
    assert_eq!(keys_of(id), before);
    // An unknown outcome counts (the key may have been derived).
    fake.vetkd_errors
        .borrow_mut()
        .push_back(CallError::OutcomeUnknown);
    assert!(block_on(endpoints::job_key(&fake, node(1), key_req(id, 1))).is_err());
    assert_eq!(keys_of(id).provider, 1);
    for _ in 1..MAX_KEYS_PER_HOLDER {
        block_on(endpoints::job_key(&fake, node(1), key_req(id, 1))).unwrap();
    }
    assert!(matches!(
        block_on(endpoints::job_key(&fake, node(1), key_req(id, 1))),
        Err(MatcherError::LimitReached { .. })
    ));
    // The owner's count is its own.
    block_on(endpoints::job_key(&fake, buyer(), key_req(id, 0))).unwrap();
    assert_eq!(keys_of(id).owner, 1);
    // The metrics count what was derived and what failed.
    let counts = read_state(|s| s.key_counts.get().0);
    assert_eq!(
        (counts.derived, counts.failed),
        (4, MAX_KEYS_PER_HOLDER as u64 + 3)
    );
}

#[test]
fn sns_validators_check_the_sealing_as_the_methods_do() {
    let _fake = Fake::new();
    let ctx = crate::governance::tests::dao(buyer(), icp(), 100_000_000_000);
    let validate = |action: &market_api::sns::SnsAction| {
        read_state(|s| crate::governance::validate(&s.market, &s.params(), &ctx, action))
    };
    let job = market_api::sns::SnsAction::SubmitJob(secret_spec());
    let lease = market_api::sns::SnsAction::Reserve(service_lease());
    for action in [&job, &lease] {
        let refused = validate(action).unwrap_err();
        assert!(refused.contains("sealed"), "{refused}");
    }
    mutate_state(|s| {
        let mut config = s.config();
        config.privacy = Some(PrivacyConfig {
            key_name: "test_key_1".into(),
            derive_key_cycles: None,
        });
        s.set_config(config);
    });
    for action in [&job, &lease] {
        let r = validate(action);
        assert!(r.is_ok(), "{r:?}");
    }
    let mut bad = secret_spec();
    bad.sealed.as_mut().unwrap().key_id = vec![0; 8];
    let refused = validate(&market_api::sns::SnsAction::SubmitJob(bad)).unwrap_err();
    assert!(refused.contains("sealed.key_id"), "{refused}");
}

#[test]
fn two_key_calls_for_one_job_do_not_interleave() {
    let fake = Fake::new();
    let id = fake_with_a_secret_job();
    block_on(endpoints::read_privacy_key(&fake)).unwrap();
    fake.derivations_wait.set(true);
    let (first, second) = block_on(futures::future::join(
        endpoints::job_key(&fake, node(1), key_req(id, 1)),
        endpoints::job_key(&fake, buyer(), key_req(id, 0)),
    ));
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(second, Err(MatcherError::Busy));
    assert_eq!(fake.derivations.borrow().len(), 1);
    assert_eq!(keys_of(id).owner, 0, "the busy call counted nothing");
    // Once the first is answered, the job is free again.
    block_on(endpoints::job_key(&fake, buyer(), key_req(id, 0))).unwrap();
}
