//! Service leases, natively: replicas on distinct providers, endpoints
//! reported on acknowledgement, probes and their failures, validation,
//! and the state surviving an upgrade.

use super::market::{
    self, P, attempt, buyer, drain_at, funded_lease, icp, node, offer, offers, provider, service,
    sha256, store_module,
};
use crate::lifecycle::{Effect, Params, slash_key};
use crate::market::reservations::ReservationRecord;
use crate::market::{Market, Memories};
use candid::Principal;
use canister_common::audit::Books;
use ic_stable_structures::VectorMemory;
use market_api::JobId;
use market_api::matcher::{
    HeartbeatAck, HeartbeatItem, JobLimits, JobSpec, JobStatus, MatcherError, ModuleSource,
    ReservationSpec, ReservationStatus, ReservedJobArgs, ServiceNotice, ServiceSpec, TcpSpec,
};
use market_fixture::heartbeat_item;

const S: u64 = 1_000_000_000;

/// The memories of a market, kept so the market can be opened again from
/// them (as an upgrade does).
#[derive(Clone, Default)]
struct Mem {
    all: [VectorMemory; 24],
}

impl Mem {
    fn open(&self) -> Market<VectorMemory> {
        let m = |i: usize| self.all[i].clone();
        Market::init(Memories {
            jobs: m(0),
            jobs_by_owner: m(1),
            active_by_owner: m(2),
            assigned_by_provider: m(3),
            deadlines: m(4),
            finished: m(5),
            nodes: [m(6), m(7)],
            book: [m(8), m(9), m(10), m(11)],
            modules: [m(12), m(13), m(14), m(15), m(16)],
            outbox: [m(17), m(18)],
            reservations: [m(19), m(20), m(21)],
            probes: m(22),
            outages: m(23),
        })
    }
}

/// A ten-minute lease of `slots` replicas of [`service`].
fn lease(slots: u32) -> ReservationSpec {
    ReservationSpec {
        service: Some(service()),
        ..market::lease(slots, 10)
    }
}

/// A market of `offered` (see [`offers`]) in `mem` and a funded lease of
/// `spec`, its first steps performed; returns the market, the lease's id
/// and its slots.
fn leased(
    mem: &Mem,
    p: &Params,
    offered: &[(u8, u128)],
    spec: ReservationSpec,
) -> (Market<VectorMemory>, JobId, Vec<JobId>) {
    let mut m = mem.open();
    offers(&mut m, p, offered);
    let (rid, slots) = funded_lease(&mut m, p, spec);
    drain_at(&mut m, 0);
    (m, rid, slots)
}

fn holder(m: &Market<VectorMemory>, slot: JobId) -> Option<Principal> {
    m.job(slot)
        .and_then(|r| r.state.assignment)
        .map(|a| a.provider)
}

fn hb(
    m: &mut Market<VectorMemory>,
    t: u64,
    caller: Principal,
    slot: JobId,
    endpoint: Option<String>,
) -> HeartbeatAck {
    hb_tcp(m, t, caller, slot, endpoint, None)
}

fn accepted(ack: &HeartbeatAck) -> bool {
    matches!(ack, HeartbeatAck::Accepted { .. })
}

/// The steps that record `provider`'s endpoint in slot 0 of lease `rid`
/// and tell the owner by its `on_endpoint` callback: `replica` is the
/// endpoint and TCP address reported, `None` when the replica is gone.
fn endpoint_told(
    rid: JobId,
    provider: Principal,
    replica: Option<(String, Option<&str>)>,
) -> [(JobId, Effect); 2] {
    let (endpoint, tcp_address) = match replica {
        Some((endpoint, tcp)) => (Some(endpoint), tcp.map(str::to_string)),
        None => (None, None),
    };
    let recorded = Effect::Endpoint {
        slot: 0,
        provider,
        endpoint: endpoint.clone(),
        tcp_address: tcp_address.clone(),
    };
    let told = Effect::ServiceNotice {
        method: "on_endpoint".into(),
        notice: ServiceNotice {
            service: rid,
            slot: 0,
            provider: endpoint.is_some().then_some(provider),
            endpoint,
            tcp_address,
        },
    };
    [(rid, recorded), (rid, told)]
}

fn url(n: u8, rid: JobId) -> String {
    format!("https://p{n}.example/{rid}/")
}

#[test]
fn replicas_go_to_distinct_providers_and_never_to_a_node_mate() {
    let mut m = Mem::default().open();
    let mut two = offer(50);
    two.slots = 2;
    m.put_offer(&P, 0, provider(1), node(1), 0, None, two)
        .unwrap();
    // Provider 3 acts through provider 1's node: it is the same machine.
    m.put_offer(&P, 0, provider(3), node(1), 0, None, offer(55))
        .unwrap();
    m.put_offer(&P, 0, provider(2), node(2), 0, None, offer(60))
        .unwrap();
    let (_, slots) = funded_lease(&mut m, &P, lease(3));
    assert_eq!(holder(&m, slots[0]), Some(provider(1)), "the cheapest");
    assert_eq!(
        holder(&m, slots[1]),
        Some(provider(2)),
        "not provider 1 again though it has a free slot, nor its node mate"
    );
    assert_eq!(holder(&m, slots[2]), None, "no other provider: it rests");
    m.put_offer(&P, 0, provider(4), node(4), 0, None, offer(90))
        .unwrap();
    assert_eq!(holder(&m, slots[2]), Some(provider(4)));

    // Bids that rested before any replica was placed: an offer with room
    // for both takes only one.
    let mut m = Mem::default().open();
    let (_, slots) = funded_lease(&mut m, &P, lease(2));
    let mut two = offer(50);
    two.slots = 2;
    m.put_offer(&P, 0, provider(1), node(1), 0, None, two)
        .unwrap();
    let held: Vec<_> = slots.iter().map(|s| holder(&m, *s)).collect();
    assert_eq!(
        held.iter().filter(|h| **h == Some(provider(1))).count(),
        1,
        "{held:?}"
    );
    assert_eq!(m.book.bid_count(), 1, "the other still rests");
    m.put_offer(&P, 0, provider(2), node(2), 0, None, offer(60))
        .unwrap();
    let mut held: Vec<_> = slots.iter().map(|s| holder(&m, *s).unwrap()).collect();
    held.sort();
    assert_eq!(held, vec![provider(1), provider(2)]);
    m.check_invariants().unwrap();
}

#[test]
fn the_acknowledgement_must_carry_the_endpoint_which_is_recorded_and_told() {
    let (mut m, rid, slots) = leased(&Mem::default(), &P, &[(1, 50)], lease(1));
    let slot = slots[0];
    let refused = hb(&mut m, S, node(1), slot, None);
    assert!(
        matches!(&refused, HeartbeatAck::Refused { reason } if reason.contains("endpoint")),
        "{refused:?}"
    );
    let wrong = hb(&mut m, S, node(1), slot, Some(url(1, rid + 1)));
    assert!(!accepted(&wrong), "{wrong:?}");
    let not_http = hb(&mut m, S, node(1), slot, Some(format!("ftp://p1/{rid}/")));
    assert!(!accepted(&not_http), "{not_http:?}");
    assert_eq!(m.job(slot).unwrap().state.status, JobStatus::Assigned);
    assert!(m.outbox.is_empty(), "nothing recorded");
    assert_eq!(m.service(rid).unwrap().replicas[0].endpoint, None);

    assert!(accepted(&hb(&mut m, S, node(1), slot, Some(url(1, rid)))));
    assert_eq!(m.job(slot).unwrap().state.status, JobStatus::Running);
    let view = m.service(rid).unwrap();
    assert_eq!(view.replicas[0].endpoint, Some(url(1, rid)));
    assert_eq!(view.replicas[0].provider, Some(provider(1)));
    assert_eq!(view.component_sha256, [2; 32]);
    assert_eq!(view.allowed_hosts, vec!["api.example.org".to_string()]);
    assert_eq!(
        drain_at(&mut m, S),
        endpoint_told(rid, provider(1), Some((url(1, rid), None)))
    );

    // Later heartbeats may repeat it or leave it out, not change it.
    let moved = hb(&mut m, 61 * S, node(1), slot, Some(url(9, rid)));
    assert!(
        matches!(&moved, HeartbeatAck::Refused { reason } if reason.contains("hand the slot back")),
        "{moved:?}"
    );
    assert!(accepted(&hb(&mut m, 61 * S, node(1), slot, None)));
    assert!(accepted(&hb(
        &mut m,
        121 * S,
        node(1),
        slot,
        Some(url(1, rid))
    )));
    assert_eq!(
        m.service(rid).unwrap().replicas[0].endpoint,
        Some(url(1, rid))
    );

    // Nothing else runs in a service's slots.
    let job = JobSpec {
        sealed: None,
        currency: None,
        module: ModuleSource::Url {
            url: "https://example.org/job.wasm".into(),
            sha256: [1; 32],
        },
        input: vec![],
        args: vec![],
        env: vec![],
        limits: JobLimits {
            memory_mib: 64,
            fuel: 1_000,
        },
        max_price_per_gfuel: 1,
        deadline_secs: None,
        interval_secs: 60,
        ledger: icp(),
        min_provider_stake: 0,
        min_record: None,
        max_retries: 0,
        callback: None,
        audit_ppm: None,
    };
    let args = ReservedJobArgs {
        reservation: rid,
        spec: job,
    };
    assert!(matches!(
        m.submit_reserved_job(&P, 121 * S, buyer(), args),
        Err(MatcherError::InvalidArgument { field, .. }) if field == "reservation"
    ));
    m.check_invariants().unwrap();
}

fn hb_tcp(
    m: &mut Market<VectorMemory>,
    t: u64,
    caller: Principal,
    slot: JobId,
    endpoint: Option<String>,
    tcp_address: Option<&str>,
) -> HeartbeatAck {
    let item = HeartbeatItem {
        endpoint,
        tcp_address: tcp_address.map(str::to_string),
        ..heartbeat_item(slot, attempt(m, slot), 0)
    };
    m.heartbeat(&P, t, caller, &[item]).unwrap().remove(0)
}

/// Node `n`'s heartbeat at `t` of `slot` of lease `rid`, reporting its
/// endpoint (see [`url`]) and the TCP address `tcp_address`.
fn tcp_beat(
    m: &mut Market<VectorMemory>,
    t: u64,
    n: u8,
    (rid, slot): (JobId, JobId),
    tcp_address: &str,
) -> HeartbeatAck {
    hb_tcp(m, t, node(n), slot, Some(url(n, rid)), Some(tcp_address))
}

fn refused_for(ack: &HeartbeatAck, why: &str) -> bool {
    matches!(ack, HeartbeatAck::Refused { reason } if reason.contains(why))
}

#[test]
fn a_tcp_replica_is_acknowledged_with_its_address_recorded_told_probed_and_cleared() {
    let mut spec = lease(1);
    let tcp = TcpSpec {
        max_connections: 8,
        ..TcpSpec::default()
    };
    spec.service.as_mut().unwrap().tcp = Some(tcp);
    let (mut m, rid, slots) = leased(&Mem::default(), &P, &[(1, 41), (2, 42)], spec);
    let slot = slots[0];
    let t0 = 10 * S;

    // The endpoint alone, or a malformed address, is no acknowledgement.
    let alone = hb_tcp(&mut m, t0, node(1), slot, Some(url(1, rid)), None);
    assert!(refused_for(&alone, "tcp_address"), "{alone:?}");
    let bad = tcp_beat(&mut m, t0, 1, (rid, slot), "p1.example");
    assert!(refused_for(&bad, "tcp_address"), "{bad:?}");
    let no_endpoint = hb_tcp(&mut m, t0, node(1), slot, None, Some("p1.example:4000"));
    assert!(refused_for(&no_endpoint, "endpoint"), "{no_endpoint:?}");
    assert_eq!(m.job(slot).unwrap().state.status, JobStatus::Assigned);
    assert!(m.outbox.is_empty(), "nothing recorded");

    let ack = tcp_beat(&mut m, t0, 1, (rid, slot), "p1.example:4000");
    assert!(accepted(&ack), "{ack:?}");
    let view = m.service(rid).unwrap();
    assert_eq!(view.tcp, Some(tcp));
    assert_eq!(view.replicas[0].endpoint, Some(url(1, rid)));
    assert_eq!(
        view.replicas[0].tcp_address.as_deref(),
        Some("p1.example:4000")
    );
    assert_eq!(
        drain_at(&mut m, t0),
        endpoint_told(
            rid,
            provider(1),
            Some((url(1, rid), Some("p1.example:4000")))
        )
    );

    // Later heartbeats may repeat the address or leave it out, not move it.
    let every = P.probe_interval_secs * S;
    let t = t0 + every;
    let moved = tcp_beat(&mut m, t, 1, (rid, slot), "p1.example:4001");
    assert!(refused_for(&moved, "hand the slot back"), "{moved:?}");
    assert!(accepted(&tcp_beat(
        &mut m,
        t,
        1,
        (rid, slot),
        "p1.example:4000"
    )));

    // Probed at the endpoint's health path like any service; failures
    // take the slot away and clear the address with the endpoint.
    let mut t = t;
    for n in 1..=P.probe_failures {
        if n > 1 {
            t += every;
            assert!(accepted(&hb_tcp(&mut m, t, node(1), slot, None, None)));
        }
        assert_eq!(m.process_probes(t, 10), 1);
        assert_eq!(
            probes(&drain_at(&mut m, t)),
            vec![(slot, 1, format!("https://p1.example/{rid}/healthz"))]
        );
        m.probe_answered(&P, t, slot, 1, Some(false)).unwrap();
    }
    let fx = drain_at(&mut m, t);
    let [cleared, _] = endpoint_told(rid, provider(1), None);
    assert!(fx.contains(&cleared), "{fx:?}");
    assert_eq!(holder(&m, slot), Some(provider(2)), "matched anew");
    let view = m.service(rid).unwrap();
    assert_eq!(view.replicas[0].endpoint, None);
    assert_eq!(view.replicas[0].tcp_address, None);

    // The new provider reports its own address.
    let ack = tcp_beat(&mut m, t + S, 2, (rid, slot), "[2001:db8::2]:9000");
    assert!(accepted(&ack), "{ack:?}");
    assert_eq!(
        m.service(rid).unwrap().replicas[0].tcp_address.as_deref(),
        Some("[2001:db8::2]:9000")
    );
    m.check_invariants().unwrap();
}

#[test]
fn an_http_replica_reports_no_tcp_address() {
    let (mut m, rid, slots) = leased(&Mem::default(), &P, &[(1, 50)], lease(1));
    let slot = slots[0];
    let ack = tcp_beat(&mut m, S, 1, (rid, slot), "p1.example:4000");
    assert!(refused_for(&ack, "not TCP"), "{ack:?}");
    assert!(accepted(&hb(&mut m, S, node(1), slot, Some(url(1, rid)))));
    let later = hb_tcp(&mut m, 61 * S, node(1), slot, None, Some("p1.example:4000"));
    assert!(refused_for(&later, "not TCP"), "{later:?}");
    let view = m.service(rid).unwrap();
    assert_eq!(view.tcp, None);
    assert_eq!(view.replicas[0].tcp_address, None);
}

/// The probe steps now in the outbox: (slot, attempt, url).
fn probes(fx: &[(JobId, Effect)]) -> Vec<(JobId, u32, String)> {
    fx.iter()
        .filter_map(|(id, e)| match e {
            Effect::Probe { attempt, url } => Some((*id, *attempt, url.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn probes_run_each_interval_count_failures_and_the_last_one_slashes_and_rematches() {
    let (mut m, rid, slots) = leased(&Mem::default(), &P, &[(1, 41), (2, 42)], lease(1));
    let slot = slots[0];
    let t0 = 10 * S;
    assert!(accepted(&hb(&mut m, t0, node(1), slot, Some(url(1, rid)))));
    drain_at(&mut m, t0);
    let every = P.probe_interval_secs * S;
    assert_eq!(m.next_probe_ns(), Some(t0 + every));
    assert_eq!(m.process_probes(t0 + every - 1, 10), 0, "not due yet");

    // One probe per interval, of the endpoint's health path.
    let mut t = t0 + every;
    let probe_at = |m: &mut Market<VectorMemory>, t: u64| {
        assert!(accepted(&hb(m, t, node(1), slot, None)));
        assert_eq!(m.process_probes(t, 10), 1);
        let fx = drain_at(m, t);
        assert_eq!(
            probes(&fx),
            vec![(slot, 1, format!("https://p1.example/{rid}/healthz"))]
        );
        assert_eq!(
            m.next_probe_ns(),
            None,
            "the next is due once it is answered"
        );
    };
    probe_at(&mut m, t);
    let ok = m.probe_answered(&P, t, slot, 1, Some(true)).unwrap();
    assert!(!ok.failed);
    assert_eq!(m.next_probe_ns(), Some(t + every));
    let health = |m: &Market<VectorMemory>| m.service(rid).unwrap().replicas[0].health.clone();
    assert_eq!(health(&m).probes, 1);
    assert_eq!(health(&m).last_ok, Some(true));
    assert_eq!(health(&m).last_probe_ns, Some(t));

    // Two failures, then a success resets the count.
    for n in 1..=2 {
        t += every;
        probe_at(&mut m, t);
        let a = m.probe_answered(&P, t, slot, 1, Some(false)).unwrap();
        assert!(a.failed);
        assert_eq!(a.consecutive, n);
        assert_eq!(a.provider, provider(1));
    }
    assert_eq!(health(&m).consecutive_failures, 2);
    t += every;
    probe_at(&mut m, t);
    // An unknown outcome counts neither way.
    let unknown = m.probe_answered(&P, t, slot, 1, None).unwrap();
    assert!(!unknown.failed);
    assert_eq!(health(&m).consecutive_failures, 2);
    t += every;
    probe_at(&mut m, t);
    m.probe_answered(&P, t, slot, 1, Some(true)).unwrap();
    assert_eq!(health(&m).consecutive_failures, 0);

    // Three in a row: a missed deadline.
    for n in 1..=3 {
        t += every;
        probe_at(&mut m, t);
        let a = m.probe_answered(&P, t, slot, 1, Some(false)).unwrap();
        assert_eq!(a.consecutive, n);
    }
    assert_eq!(m.job(slot).unwrap().state.retries_used, 1);
    let fx = drain_at(&mut m, t);
    assert!(
        fx.iter().any(|(id, e)| *id == slot
            && matches!(e, Effect::Slash { key, provider: p, .. }
                if *key == slash_key(slot, 1) && *p == provider(1))),
        "{fx:?}"
    );
    for told in endpoint_told(rid, provider(1), None) {
        assert!(fx.contains(&told), "{fx:?}");
    }
    assert_eq!(holder(&m, slot), Some(provider(2)), "matched anew");
    assert_eq!(attempt(&m, slot), 2);
    let view = m.service(rid).unwrap();
    assert_eq!(
        view.replicas[0].endpoint, None,
        "until the new provider acks"
    );
    assert_eq!(view.replicas[0].rematches, 1);
    assert_eq!(
        m.next_probe_ns(),
        None,
        "no probes of a replica without endpoint"
    );

    // A late answer for the first attempt changes nothing but the count.
    let probes_before = m.reservation_record(rid).unwrap().probes;
    assert_eq!(m.probe_answered(&P, t, slot, 1, Some(false)), None);
    assert_eq!(m.reservation_record(rid).unwrap().probes, probes_before + 1);
    assert_eq!(m.job(slot).unwrap().state.retries_used, 1);

    // The new provider acknowledges with its own endpoint; a stale answer
    // still changes nothing of its health.
    assert!(accepted(&hb(
        &mut m,
        t + S,
        node(2),
        slot,
        Some(url(2, rid))
    )));
    assert_eq!(m.probe_answered(&P, t + S, slot, 1, Some(false)), None);
    assert_eq!(health(&m), Default::default());
    assert_eq!(
        m.service(rid).unwrap().replicas[0].endpoint,
        Some(url(2, rid))
    );
    m.check_invariants().unwrap();
}

#[test]
fn a_lease_locks_its_probe_fee_and_pays_the_probes_made_before_its_refund() {
    let p = Params { probe_fee: 7, ..P };
    let mut m = Mem::default().open();
    offers(&mut m, &p, &[(1, 50)]);
    let spec = ReservationSpec {
        intervals: 3,
        ..lease(1)
    };
    let rid = m.create_reservation(&p, 0, buyer(), spec).unwrap().state.id;
    let r = m.reservation_record(rid).unwrap();
    // 1 slot x 3 intervals x 100, and 1 x 3 x 1 probe x 7.
    assert_eq!(r.locked, 300 + 21);
    assert_eq!(r.probe_locked, 21);
    let seq = m.lock_in_flight(0, rid).unwrap();
    assert!(matches!(
        m.outbox.get(seq).unwrap().effect,
        Effect::Lock { amount: 321, .. }
    ));
    m.outbox.complete(seq);
    m.job_funded(&p, 0, rid);
    let slot = m.reservation_record(rid).unwrap().slots[0];
    drain_at(&mut m, 0);
    assert!(accepted(&hb(&mut m, S, node(1), slot, Some(url(1, rid)))));
    for k in 1..=2 {
        let t = S + k * 60 * S;
        assert!(accepted(&hb(&mut m, t, node(1), slot, None)));
        m.process_probes(t, 10);
        m.probe_answered(&p, t, slot, 1, Some(true));
    }
    assert_eq!(m.reservation_record(rid).unwrap().probes, 2);
    drain_at(&mut m, 0);
    m.cancel_reservation(&p, 200 * S, buyer(), rid).unwrap();
    let fx: Vec<Effect> = drain_at(&mut m, 200 * S)
        .into_iter()
        .filter(|(id, _)| *id == rid)
        .map(|(_, e)| e)
        .collect();
    let fee = fx
        .iter()
        .position(|e| *e == Effect::ProbeFee { amount: 14 })
        .expect("two probes at 7");
    let settle = fx.iter().position(|e| *e == Effect::Settle).unwrap();
    assert!(fee < settle, "the fee before the refund: {fx:?}");
    let view = m.service(rid).unwrap();
    assert_eq!(view.status, ReservationStatus::Cancelled);
    assert_eq!(view.paid, 2 * 50 + 14, "two intervals and two probes");
    assert_eq!(view.replicas[0].endpoint, None);
}

#[test]
fn probes_past_what_the_lease_locked_for_them_are_not_charged() {
    let p = Params { probe_fee: 7, ..P };
    let spec = ReservationSpec {
        intervals: 1,
        ..lease(1)
    };
    let (mut m, rid, slots) = leased(&Mem::default(), &p, &[(1, 50)], spec);
    assert!(accepted(&hb(
        &mut m,
        S,
        node(1),
        slots[0],
        Some(url(1, rid))
    )));
    for _ in 0..5 {
        m.probe_answered(&p, S, slots[0], 1, Some(true));
    }
    m.cancel_reservation(&p, 2 * S, buyer(), rid).unwrap();
    let fx = drain_at(&mut m, 2 * S);
    assert!(
        fx.contains(&(rid, Effect::ProbeFee { amount: 7 })),
        "{fx:?}"
    );
}

#[test]
fn a_stored_component_is_pinned_while_the_lease_uses_it() {
    let mut m = Mem::default().open();
    let bytes = b"component";
    let sha = sha256(bytes);
    let mut spec = lease(1);
    spec.service.as_mut().unwrap().component = ModuleSource::Stored { sha256: sha };
    assert_eq!(
        m.create_reservation(&P, 0, buyer(), spec.clone()),
        Err(MatcherError::UnknownModule { sha256: sha })
    );
    store_module(&mut m, buyer(), bytes);
    // Dropped unfunded: the pin goes with it.
    let dropped = m.create_reservation(&P, 0, buyer(), spec.clone()).unwrap();
    assert_eq!(m.modules.meta(&sha).unwrap().refs, 1);
    m.drop_unfunded(0, dropped.state.id);
    assert_eq!(m.modules.meta(&sha).unwrap().refs, 0);
    let (rid, _) = funded_lease(&mut m, &P, spec);
    assert_eq!(m.modules.meta(&sha).unwrap().refs, 1);
    assert_eq!(m.service(rid).unwrap().component_sha256, sha);
    m.cancel_reservation(&P, S, buyer(), rid).unwrap();
    assert_eq!(m.modules.meta(&sha).unwrap().refs, 0, "released at the end");
}

#[test]
fn bad_services_are_refused() {
    let mut m = Mem::default().open();
    let with = |f: &dyn Fn(&mut ServiceSpec)| {
        let mut spec = lease(1);
        f(spec.service.as_mut().unwrap());
        spec
    };
    let cases: Vec<(&str, ReservationSpec)> = vec![
        (
            "component",
            with(&|s| {
                s.component = ModuleSource::Url {
                    url: "http://example.org/x.wasm".into(),
                    sha256: [0; 32],
                }
            }),
        ),
        ("env", with(&|s| s.env = vec![("K".into(), "V".into()); 65])),
        (
            "env",
            with(&|s| s.env = vec![("K".into(), "v".repeat(1025))]),
        ),
        (
            "allowed_hosts",
            with(&|s| s.allowed_hosts = vec!["a.example".into(); 17]),
        ),
        (
            "allowed_hosts",
            with(&|s| s.allowed_hosts = vec!["https://a.example".into()]),
        ),
        (
            "allowed_hosts",
            with(&|s| s.allowed_hosts = vec!["*.example.org".into()]),
        ),
        (
            "allowed_hosts",
            with(&|s| s.allowed_hosts = vec!["a.example:8080".into()]),
        ),
        ("health_path", with(&|s| s.health_path = "healthz".into())),
        ("health_path", with(&|s| s.health_path = "/a b".into())),
        ("callback", with(&|s| s.callback = Some(String::new()))),
        ("limits.timeout_ms", with(&|s| s.limits.timeout_ms = 0)),
        (
            "limits.max_body_bytes",
            with(&|s| s.limits.max_body_bytes = u64::MAX),
        ),
        (
            "tcp.max_connections",
            with(&|s| {
                s.tcp = Some(TcpSpec {
                    max_connections: 0,
                    ..TcpSpec::default()
                })
            }),
        ),
        (
            "tcp.fuel_per_second",
            with(&|s| {
                s.tcp = Some(TcpSpec {
                    fuel_per_second: u64::MAX,
                    ..TcpSpec::default()
                })
            }),
        ),
        (
            "delegates",
            ReservationSpec {
                delegates: vec![provider(9)],
                ..lease(1)
            },
        ),
    ];
    for (field, spec) in cases {
        match m.create_reservation(&P, 0, buyer(), spec) {
            Err(MatcherError::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(m.job(1).is_none(), "nothing was recorded");
}

#[test]
fn a_lease_and_its_probes_survive_an_upgrade() {
    let mem = Mem::default();
    let (mut m, rid, slots) = leased(&mem, &P, &[(1, 50)], lease(1));
    assert!(accepted(&hb(
        &mut m,
        S,
        node(1),
        slots[0],
        Some(url(1, rid))
    )));
    m.probe_answered(&P, S, slots[0], 1, Some(false));
    let view = m.service(rid).unwrap();
    let next = m.next_probe_ns();
    assert!(next.is_some());
    drop(m);
    let mut m = mem.open();
    assert_eq!(m.service(rid).unwrap(), view);
    assert_eq!(m.next_probe_ns(), next);
    assert_eq!(m.process_probes(next.unwrap(), 10), 1);
    assert_eq!(probes(&drain_at(&mut m, 0)).len(), 1);

    // A record written before services existed reads with no replicas,
    // no probe fee and no probes.
    #[derive(serde::Serialize, serde::Deserialize, Clone)]
    struct OldRecord {
        spec: ReservationSpec,
        slots: Vec<JobId>,
        running: Vec<Option<JobId>>,
        extensions: Vec<u128>,
        locked: u128,
        status: ReservationStatus,
        settled: bool,
    }
    use ic_stable_structures::Storable;
    let old = canister_common::codec::Cbor(OldRecord {
        spec: ReservationSpec {
            service: None,
            ..lease(2)
        },
        slots: vec![5, 6],
        running: vec![None, None],
        extensions: vec![],
        locked: 2_000,
        status: ReservationStatus::Active,
        settled: false,
    });
    let read = canister_common::codec::Cbor::<ReservationRecord>::from_bytes(old.to_bytes()).0;
    assert_eq!(read.locked, 2_000);
    assert!(read.replicas.is_empty());
    assert_eq!((read.probe_fee, read.probe_locked, read.probes), (0, 0, 0));
    assert_eq!(read.pending_extension, None);
}
