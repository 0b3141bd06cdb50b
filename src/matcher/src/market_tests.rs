//! Scenario tests of the market's rules, natively.

use crate::lifecycle::{Effect, Params};
use crate::market::{Market, Memories};
use candid::Principal;
use ic_stable_structures::VectorMemory;
use market_api::matcher::{
    HeartbeatAck, HeartbeatItem, JobLimits, JobResult, JobSpec, JobStatus, MatcherError,
    ModuleSource, OfferSpec, RunOutcome, SubmitResultArgs,
};

const S: u64 = 1_000_000_000;
const P: Params = Params {
    grace_secs: 30,
    bond_multiple: 2,
    slash_multiple: 3,
};

fn mem() -> VectorMemory {
    VectorMemory::default()
}

fn market() -> Market<VectorMemory> {
    Market::init(Memories {
        jobs: mem(),
        jobs_by_owner: mem(),
        deadlines: mem(),
        nodes: mem(),
        book: [mem(), mem(), mem(), mem()],
        modules: [mem(), mem()],
        outbox: [mem(), mem()],
    })
}

fn icp() -> Principal {
    Principal::from_slice(&[0x10])
}

fn buyer() -> Principal {
    Principal::from_slice(&[0x20])
}

fn provider(n: u8) -> Principal {
    Principal::from_slice(&[0x30, n])
}

fn node(n: u8) -> Principal {
    Principal::from_slice(&[0x40, n])
}

fn spec(max_price: u128, retries: u32) -> JobSpec {
    JobSpec {
        module: ModuleSource::Url {
            url: "https://example.org/job.wasm".into(),
            sha256: [1; 32],
        },
        input: b"hello".to_vec(),
        args: vec![],
        env: vec![],
        limits: JobLimits {
            memory_mib: 64,
            fuel_per_interval: 1_000_000,
        },
        interval_secs: 60,
        max_intervals: 10,
        max_price_per_interval: max_price,
        ledger: icp(),
        min_provider_stake: 0,
        max_retries: retries,
        callback: None,
    }
}

fn offer(price: u128) -> OfferSpec {
    OfferSpec {
        slots: 1,
        memory_per_slot_mib: 256,
        max_fuel_per_interval: 10_000_000,
        price_per_interval: price,
        ledger: icp(),
        min_interval_secs: 10,
        max_interval_secs: 3_600,
        tags: vec![],
    }
}

fn steps(m: &mut Market<VectorMemory>) -> Vec<Effect> {
    let ready = m.outbox.take_ready(u64::MAX, 1_000);
    for (seq, _) in &ready {
        m.outbox.complete(*seq);
    }
    let mut more = ready.into_iter().map(|(_, s)| s.effect).collect::<Vec<_>>();
    if !m.outbox.is_empty() {
        more.extend(steps(m));
    }
    more
}

#[test]
fn job_runs_misses_a_deadline_and_finishes_on_a_second_provider() {
    let mut m = market();
    m.put_offer(&P, 0, provider(1), node(1), 1_000, None, offer(50))
        .unwrap();
    let job = m.create_job(0, buyer(), spec(80, 1)).unwrap();
    let id = job.state.id;
    assert!(m.job(id).unwrap().to_job().status == JobStatus::Open);
    assert_eq!(
        m.job_funded(&P, 0, id),
        Some(provider(1)),
        "matched at once"
    );
    assert_eq!(
        steps(&mut m),
        vec![Effect::Bond {
            key: "job/1/bond/1".into(),
            provider: provider(1),
            amount: 100
        }]
    );

    // The node acknowledges, then heartbeats one interval later and is paid.
    let hb = |attempt| {
        vec![HeartbeatItem {
            job_id: id,
            attempt,
            fuel_used: 0,
        }]
    };
    assert!(matches!(
        m.heartbeat(&P, S, node(1), &hb(1)).unwrap()[0],
        HeartbeatAck::Accepted { .. }
    ));
    assert!(matches!(
        m.heartbeat(&P, 61 * S, node(1), &hb(1)).unwrap()[0],
        HeartbeatAck::Accepted { .. }
    ));
    assert_eq!(
        steps(&mut m),
        vec![Effect::Release {
            seq: 0,
            provider: provider(1),
            amount: 50
        }]
    );
    // Another node can't heartbeat it.
    assert!(matches!(
        m.heartbeat(&P, 62 * S, node(2), &hb(1)).unwrap()[0],
        HeartbeatAck::Refused { .. }
    ));

    // Provider 1 goes silent; a second provider is offering at a higher price.
    m.put_offer(&P, 70 * S, provider(2), node(2), 1_000, None, offer(70))
        .unwrap();
    assert_eq!(m.process_deadlines(&P, 150 * S, 100), 0, "not yet due");
    assert_eq!(m.process_deadlines(&P, 152 * S, 100), 1);
    assert_eq!(m.process_deadlines(&P, 200 * S, 100), 0, "handled once");
    let fx = steps(&mut m);
    assert!(fx.contains(&Effect::Slash {
        key: "job/1/slash/1".into(),
        provider: provider(1),
        amount: 150,
        owner: buyer()
    }));
    assert!(fx.contains(&Effect::Bond {
        key: "job/1/bond/2".into(),
        provider: provider(2),
        amount: 140
    }));
    let j = m.job(id).unwrap().to_job();
    assert_eq!(
        (j.status, j.provider),
        (JobStatus::Assigned, Some(provider(2)))
    );

    // Provider 2 finishes it.
    m.heartbeat(&P, 160 * S, node(2), &hb(2)).unwrap();
    let result = JobResult {
        outcome: RunOutcome::Exited { code: 0 },
        output: b"done".to_vec(),
        output_sha256: [0; 32],
        fuel_used: 10,
        engine: "wasmtime-48.0.8".into(),
    };
    m.submit_result(
        &P,
        170 * S,
        node(2),
        SubmitResultArgs {
            job_id: id,
            attempt: 2,
            result,
        },
    )
    .unwrap();
    let fx = steps(&mut m);
    assert_eq!(
        fx.first(),
        Some(&Effect::Release {
            seq: 1,
            provider: provider(2),
            amount: 70
        })
    );
    assert_eq!(fx.last(), Some(&Effect::Settle));
    assert_eq!(m.job(id).unwrap().to_job().status, JobStatus::Succeeded);
    assert_eq!(m.next_deadline_ns(), None);
    // Both slots are free again.
    assert!(m.offers_of(provider(2))[0].slots_used == 0);
}

#[test]
fn resting_bid_is_matched_when_capacity_appears() {
    let mut m = market();
    let id = m.create_job(0, buyer(), spec(80, 0)).unwrap().state.id;
    assert_eq!(m.job_funded(&P, 0, id), None);
    assert_eq!(m.book.bid_count(), 1);
    m.put_offer(&P, 5, provider(1), node(1), 0, None, offer(90))
        .unwrap();
    assert_eq!(m.book.bid_count(), 1, "too expensive for the bid");
    m.put_offer(&P, 6, provider(2), node(2), 0, None, offer(60))
        .unwrap();
    assert_eq!(m.book.bid_count(), 0);
    assert_eq!(m.job(id).unwrap().to_job().provider, Some(provider(2)));
    assert_eq!(m.assignments_of(provider(2)).len(), 1);
}

#[test]
fn refused_bond_moves_the_job_on_and_cancel_settles() {
    let mut m = market();
    m.put_offer(&P, 0, provider(1), node(1), 0, None, offer(50))
        .unwrap();
    let id = m.create_job(0, buyer(), spec(80, 0)).unwrap().state.id;
    m.job_funded(&P, 0, id);
    m.bond_refused(&P, 1, id, 1);
    let j = m.job(id).unwrap();
    assert_eq!(j.state.status, JobStatus::Open);
    assert_eq!(
        m.book.bid_count(),
        1,
        "back in the book, provider 1 excluded"
    );
    assert_eq!(
        m.cancel(&P, 2, provider(1), id),
        Err(MatcherError::Unauthorized {
            reason: "only the job's owner may do this".into()
        })
    );
    m.cancel(&P, 2, buyer(), id).unwrap();
    assert_eq!(m.book.bid_count(), 0);
    assert!(steps(&mut m).contains(&Effect::Settle));
}

#[test]
fn bad_specs_and_limits_are_refused() {
    let mut m = market();
    let mut s = spec(80, 0);
    s.interval_secs = 0;
    assert!(matches!(
        m.create_job(0, buyer(), s),
        Err(MatcherError::InvalidArgument { .. })
    ));
    let mut s = spec(u128::MAX, 0);
    s.max_intervals = 2;
    assert!(matches!(
        m.create_job(0, buyer(), s),
        Err(MatcherError::InvalidArgument { .. })
    ));
    let s = JobSpec {
        module: ModuleSource::Stored { sha256: [9; 32] },
        ..spec(1, 0)
    };
    assert_eq!(
        m.create_job(0, buyer(), s),
        Err(MatcherError::UnknownModule { sha256: [9; 32] })
    );
    for i in 0..crate::market::MAX_OFFERS_PER_PROVIDER {
        m.put_offer(&P, i as u64, provider(1), node(1), 0, None, offer(50))
            .unwrap();
    }
    assert!(matches!(
        m.put_offer(&P, 99, provider(1), node(1), 0, None, offer(50)),
        Err(MatcherError::LimitReached { .. })
    ));
}
