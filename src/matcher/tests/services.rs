//! A service lease on the devnet with the matcher's real .wasm: the
//! replica's endpoint is a small HTTP server of this test, which the
//! matcher probes by outcall (the devnet makes the GET, runs the matcher's
//! `transform_probe` and charges the IC's cycles). While the server
//! answers, the replica is healthy; once it is stopped the probes fail, the
//! provider is slashed as for a missed heartbeat and the slot moves to
//! another provider. The lease pays its probes to the matcher, and the
//! money-conservation audit holds.
//!
//! Needs `scripts/build-canisters.sh` first.

mod common;

use common::{Net, buyer, node, provider};
use market_api::matcher::{
    HeartbeatAck, HeartbeatItem, MatcherError, MatcherEvent, MatcherInit, OfferSpec,
    ReservationStatus, ServiceView,
};
use market_api::{EventPage, PageRequest, Tokens};
use market_fixture::{ICP, Settings};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

const INTERVAL: u64 = 60;
const PROBE_EVERY: u64 = 10;
const PROBE_FEE: Tokens = 1_000;
const PRICE: Tokens = 1_000_000;

/// A replica stand-in: answers every request `200 OK` until stopped, then
/// closes its socket (connections are refused).
struct Replica {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU32>,
}

impl Replica {
    fn start() -> Replica {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU32::new(0));
        let (stopped, seen) = (stop.clone(), requests.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        Replica {
            port,
            stop,
            requests,
        }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Let the accept loop see the flag and drop the socket.
        std::thread::sleep(Duration::from_millis(50));
    }

    fn endpoint(&self, service: u64) -> String {
        format!("http://127.0.0.1:{}/{service}/", self.port)
    }
}

impl Net {
    /// The marketplace with a buyer holding 100 ICP in the escrow, three
    /// staked providers offering a slot each, and the matcher probing
    /// every ten seconds at a fee of 1 000 e8s.
    fn new() -> Net {
        let net = Net::with_buyer(Settings::default());
        let mut config: MatcherInit = net.query(net.ids.matcher, "get_config", &()).unwrap();
        config.probe_interval_secs = Some(PROBE_EVERY);
        config.probe_fee = Some(PROBE_FEE);
        net.upgrade_matcher(Some(config));
        for n in 1..=3 {
            net.onboard_provider(provider(n), node(n), 100 * ICP)
                .unwrap();
            let offer = OfferSpec {
                currency: None,
                slots: 1,
                memory_per_slot_mib: 256,
                max_fuel_per_interval: 10_000_000,
                price_per_gfuel: PRICE,
                fuel_per_sec: 100_000_000,
                price_per_interval: PRICE + Tokens::from(n),
                ledger: net.ids.ledger,
                min_interval_secs: 10,
                max_interval_secs: 3_600,
                tags: vec![],
                audits: None,
            };
            let id: Result<u64, MatcherError> = net.call(provider(n), "post_offer", &offer);
            id.unwrap();
        }
        net
    }

    fn service(&self, id: u64) -> ServiceView {
        let v: Option<ServiceView> = self.query(self.ids.matcher, "get_service", &id).unwrap();
        v.expect("a service")
    }

    fn events(&self) -> Vec<MatcherEvent> {
        let page: EventPage<MatcherEvent> = self
            .query(self.ids.matcher, "get_events", &PageRequest::default())
            .unwrap();
        page.events.into_iter().map(|e| e.event).collect()
    }

    /// Provider `n`'s heartbeat of `slot`, with `endpoint`.
    fn heartbeat(&self, n: u8, slot: u64, attempt: u32, endpoint: Option<String>) -> HeartbeatAck {
        let items = vec![HeartbeatItem {
            job_id: slot,
            attempt,
            fuel_used: 0,
            endpoint,
            tcp_address: None,
        }];
        let acks: Result<Vec<HeartbeatAck>, MatcherError> = self.call(node(n), "heartbeat", &items);
        let ack = acks.unwrap().remove(0);
        self.settle_outbox();
        ack
    }

    /// Waits `secs` seconds of devnet time, provider `n` heartbeating
    /// `slot` whenever its heartbeat window is open.
    fn run(&self, secs: u64, n: u8, slot: u64, attempt: u32) {
        let mut last = self.time_ns();
        for _ in 0..secs / 5 {
            self.advance(Duration::from_secs(5));
            if self.time_ns() - last >= INTERVAL * 1_000_000_000 {
                let ack = self.heartbeat(n, slot, attempt, None);
                if matches!(ack, HeartbeatAck::Accepted { .. }) {
                    last = self.time_ns();
                }
            }
        }
        self.settle_outbox();
    }
}

fn accepted(ack: &HeartbeatAck) -> bool {
    matches!(ack, HeartbeatAck::Accepted { .. })
}

fn holder(view: &ServiceView) -> u8 {
    let p = view.replicas[0].provider.expect("held");
    (1..=3).find(|n| provider(*n) == p).expect("one of ours")
}

#[test]
fn a_replica_that_stops_answering_its_probes_is_slashed_and_moved() {
    let net = Net::new();
    let spec = net.hello_lease_spec(INTERVAL, 10, 2 * PRICE);
    let rid: Result<u64, MatcherError> = net.call(buyer(), "reserve", &spec);
    let rid = rid.unwrap();
    net.settle_outbox();
    let view = net.service(rid);
    assert_eq!(view.status, ReservationStatus::Active);
    // 10 intervals at up to 2 PRICE, and 6 probes an interval at the fee.
    assert_eq!(view.locked, 10 * 2 * PRICE + 10 * 6 * PROBE_FEE);
    let first = holder(&view);
    let slot = view.replicas[0].job_id;

    // The acknowledgement names the replica's endpoint.
    let replica = Replica::start();
    assert!(!accepted(&net.heartbeat(first, slot, 1, None)));
    assert!(accepted(&net.heartbeat(
        first,
        slot,
        1,
        Some(replica.endpoint(rid))
    )));
    assert!(net.events().contains(&MatcherEvent::ServiceEndpoint {
        reservation: rid,
        slot: 0,
        provider: provider(first),
        endpoint: Some(replica.endpoint(rid)),
        tcp_address: None,
    }));

    // Healthy while it answers.
    net.run(3 * PROBE_EVERY + 5, first, slot, 1);
    let health = net.service(rid).replicas[0].health.clone();
    assert!(health.probes >= 3, "{health:?}");
    assert_eq!(health.last_ok, Some(true));
    assert_eq!(health.consecutive_failures, 0);
    assert!(replica.requests.load(Ordering::SeqCst) >= 3);

    // Stopped: three failed probes in a row count as a missed deadline.
    replica.stop();
    net.run(4 * PROBE_EVERY + 5, first, slot, 1);
    let events = net.events();
    for n in 1..=3 {
        assert!(
            events.contains(&MatcherEvent::ProbeFailed {
                reservation: rid,
                slot: 0,
                provider: provider(first),
                consecutive: n,
            }),
            "probe failure {n}: {events:?}"
        );
    }
    assert!(events.iter().any(|e| matches!(e,
        MatcherEvent::DeadlineMissed { job_id, provider: p, attempt: 1, slashed }
            if *job_id == slot && *p == provider(first) && *slashed > 0)));
    assert!(events.contains(&MatcherEvent::ServiceEndpoint {
        reservation: rid,
        slot: 0,
        provider: provider(first),
        endpoint: None,
        tcp_address: None,
    }));
    let view = net.service(rid);
    let second = holder(&view);
    assert_ne!(second, first, "matched anew, never to the failed provider");
    assert_eq!(view.replicas[0].rematches, 1);
    assert_eq!(view.replicas[0].endpoint, None);

    // The new provider's replica answers.
    let replica2 = Replica::start();
    assert!(accepted(&net.heartbeat(
        second,
        slot,
        2,
        Some(replica2.endpoint(rid))
    )));
    net.run(2 * PROBE_EVERY + 5, second, slot, 2);
    let health = net.service(rid).replicas[0].health.clone();
    assert_eq!(health.last_ok, Some(true), "{health:?}");

    // The owner ends the lease: the probes' fee goes to the matcher, the
    // rest back to the owner, and nothing is created or lost.
    let cancelled: Result<(), MatcherError> = net.call(
        buyer(),
        "cancel_reservation",
        &market_api::matcher::CancelReservationArgs { reservation: rid },
    );
    cancelled.unwrap();
    net.settle_outbox();
    let view = net.service(rid);
    assert_eq!(view.status, ReservationStatus::Cancelled);
    let fee = net
        .events()
        .into_iter()
        .find_map(|e| match e {
            MatcherEvent::IntervalPaid {
                job_id,
                provider,
                amount,
                ..
            } if job_id == rid && provider == net.ids.matcher => Some(amount),
            _ => None,
        })
        .expect("the probes' fee was paid");
    assert!(fee >= 8 * PROBE_FEE, "{fee}");
    assert_eq!(fee % PROBE_FEE, 0);
    assert_eq!(
        net.escrow_balance(net.ids.matcher).unwrap().claimable,
        fee,
        "the matcher's own account holds the fee"
    );
    net.audit().unwrap_or_else(|e| panic!("{e}"));
}
