//! Track records: `record` counts each event once per key, refuses
//! strangers and conflicting repeats, forgets keys after their retention;
//! slashes count themselves; old stored records read back.

use super::*;
use crate::providers;
use crate::records;
use crate::state::{Counters, ProviderRecord};
use canister_common::codec::Cbor;
use ic_stable_structures::Storable;
use market_api::registry::{
    ListProvidersArgs, RECORD_KEY_RETENTION_SECS, RecordArgs, RecordEvent, RegistryError,
    RegistryEvent, Stake, TrackRecord,
};
use market_fixture::metrics::metric_value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

const S: u64 = 1_000_000_000;

/// A fresh registry with `user(1)` and `user(2)` registered.
fn two_providers() -> (FakeLedger, Principal, Principal) {
    let rt = setup(0);
    let (p, q) = (user(1), user(2));
    register(p);
    register(q);
    (rt, p, q)
}

fn args(p: Principal, key: &str, event: RecordEvent) -> RecordArgs {
    RecordArgs {
        provider: p,
        key: key.into(),
        event,
    }
}

fn record_by(caller: Principal, now: u64, a: RecordArgs) -> Result<(), RegistryError> {
    mutate_state(|s| records::record(s, caller, now, a))
}

fn record(now: u64, a: RecordArgs) -> Result<(), RegistryError> {
    record_by(MATCHER, now, a)
}

fn track(p: Principal) -> TrackRecord {
    read_state(|s| records::track_record(s, &p)).expect("provider has a record")
}

fn events() -> Vec<RegistryEvent> {
    read_state(|s| s.events.iter().map(|e| e.event).collect())
}

fn record_events() -> usize {
    events()
        .iter()
        .filter(|e| matches!(e, RegistryEvent::RecordChanged { .. }))
        .count()
}

#[test]
fn each_event_counts_once_in_the_record_the_view_and_the_totals() {
    let (rt, p, q) = two_providers();
    let t0 = rt.now.get();
    record(
        t0,
        args(
            p,
            "job/1/done",
            RecordEvent::JobCompleted {
                heartbeats_on_time: 7,
            },
        ),
    )
    .unwrap();
    record(t0 + S, args(p, "job/1/audit", RecordEvent::AuditPassed)).unwrap();
    record(t0 + 2 * S, args(p, "job/2/audit", RecordEvent::AuditFailed)).unwrap();
    record(
        t0 + 3 * S,
        args(p, "job/3/deadline/0", RecordEvent::DeadlineMissed),
    )
    .unwrap();
    record(
        t0 + 4 * S,
        args(
            q,
            "job/4/done",
            RecordEvent::JobCompleted {
                heartbeats_on_time: 2,
            },
        ),
    )
    .unwrap();
    let want = TrackRecord {
        jobs_completed: 1,
        audits_passed: 1,
        audits_failed: 1,
        deadlines_missed: 1,
        heartbeats_on_time: 7,
        last_failed_audit_ns: Some(t0 + 2 * S),
        last_missed_deadline_ns: Some(t0 + 3 * S),
        ..TrackRecord::default()
    };
    assert_eq!(track(p), want);
    assert_eq!(track(q).jobs_completed, 1);
    assert_eq!(track(q).heartbeats_on_time, 2);
    // The provider view carries it, in `get_provider` and `list_providers`.
    let view = read_state(|s| providers::get_provider(s, &p)).unwrap();
    assert_eq!(view.record, want);
    let page = read_state(|s| providers::list_providers(s, &ListProvidersArgs::default()));
    let listed = page.providers.iter().find(|v| v.id == p).unwrap();
    assert_eq!(listed.record, want);
    // One event per accepted call, carrying the record afterwards.
    assert_eq!(record_events(), 5);
    assert!(events().contains(&RegistryEvent::RecordChanged {
        provider: p,
        key: "job/3/deadline/0".into(),
        event: RecordEvent::DeadlineMissed,
        record: want.clone(),
    }));
    // Market-wide totals, not one series per provider.
    let text = metrics_page(t0 + 5 * S);
    for (name, value) in [
        ("registry_jobs_completed_total", 2.0),
        ("registry_audits_passed_total", 1.0),
        ("registry_audits_failed_total", 1.0),
        ("registry_deadlines_missed_total", 1.0),
        ("registry_record_keys", 5.0),
    ] {
        assert_eq!(metric_value(&text, name), Some(value), "{name}\n{text}");
    }
    assert!(
        !text.contains(&p.to_text()),
        "no per-provider series:\n{text}"
    );
}

#[test]
fn a_repeat_counts_nothing_and_a_conflicting_one_is_refused() {
    let (rt, p, q) = two_providers();
    let now = rt.now.get();
    let done = RecordEvent::JobCompleted {
        heartbeats_on_time: 3,
    };
    record(now, args(p, "job/1/done", done.clone())).unwrap();
    let once = track(p);
    let counters = read_state(|s| s.counters());
    // The same call again, later: answered Ok, nothing counted.
    record(now + S, args(p, "job/1/done", done.clone())).unwrap();
    assert_eq!(track(p), once);
    assert_eq!(read_state(|s| s.counters()), counters);
    assert_eq!(record_events(), 1);
    // The same key with other terms: refused, nothing counted.
    let conflict = RegistryError::KeyConflict {
        key: "job/1/done".into(),
    };
    let other_heartbeats = RecordEvent::JobCompleted {
        heartbeats_on_time: 4,
    };
    for a in [
        args(p, "job/1/done", other_heartbeats),
        args(p, "job/1/done", RecordEvent::AuditFailed),
        args(q, "job/1/done", done),
    ] {
        assert_eq!(record(now + 2 * S, a), Err(conflict.clone()));
    }
    assert_eq!(track(p), once);
    assert_eq!(track(q), TrackRecord::default());
    assert_eq!(read_state(|s| s.counters()), counters);
    assert_eq!(record_events(), 1);
}

#[test]
fn only_the_matcher_records_and_only_for_a_known_provider() {
    let (rt, p) = registered_provider(0);
    let now = rt.now.get();
    let a = || args(p, "job/1/done", RecordEvent::AuditPassed);
    // The caller is checked before anything else, even a bad key.
    let bad_key = args(p, "", RecordEvent::AuditPassed);
    for caller in [p, user(2), REGISTRY_SELF] {
        assert!(
            matches!(
                record_by(caller, now, a()),
                Err(RegistryError::Unauthorized { .. })
            ),
            "{caller}"
        );
        assert!(matches!(
            record_by(caller, now, bad_key.clone()),
            Err(RegistryError::Unauthorized { .. })
        ));
    }
    assert_eq!(
        record_by(Principal::anonymous(), now, a()),
        Err(RegistryError::AnonymousCaller)
    );
    assert_eq!(track(p), TrackRecord::default());
    assert_eq!(read_state(|s| s.record_key_count()), 0);
    // The matcher's bad key and unknown provider are refused too.
    assert!(matches!(
        record(now, bad_key),
        Err(RegistryError::InvalidArgument { field, .. }) if field == "key"
    ));
    assert_eq!(
        record(now, args(user(3), "job/9/done", RecordEvent::AuditPassed)),
        Err(RegistryError::NotRegistered)
    );
    assert_eq!(read_state(|s| s.record_key_count()), 0);
    assert_eq!(record_events(), 0);
    // Without a configured matcher nobody records.
    reset_state();
    mutate_state(|s| {
        s.init(
            now,
            market_api::registry::RegistryInit {
                ledger: super::fake::LEDGER,
                matcher: None,
                min_stake: 0,
                unbonding_period_secs: None,
                governance: None,
            },
        )
    })
    .unwrap();
    register(p);
    assert!(matches!(
        record(now, a()),
        Err(RegistryError::Unauthorized { .. })
    ));
}

/// A principal that is neither the matcher nor a provider.
const REGISTRY_SELF: Principal = super::fake::REGISTRY;

#[test]
fn a_slash_that_takes_stake_counts_itself_once() {
    let (rt, p) = staked_provider(0, 500_000);
    let o = slash(&rt, p, 120_000, "s1").unwrap();
    assert_eq!(o.slashed, 120_000);
    // The retry returns the first outcome and counts nothing more.
    slash(&rt, p, 120_000, "s1").unwrap();
    assert_eq!((track(p).slashes, track(p).slashed), (1, 120_000));
    slash(&rt, p, 30_000, "s2").unwrap();
    assert_eq!((track(p).slashes, track(p).slashed), (2, 150_000));
    // One that asks for more than is left takes the rest.
    slash(&rt, p, 1_000_000, "s3").unwrap();
    let all = 500_000;
    assert_eq!((track(p).slashes, track(p).slashed), (3, all));
    // With nothing left to move, a slash takes nothing and counts nothing.
    let o = slash(&rt, p, 100_000, "s4").unwrap();
    assert_eq!(o.slashed, 0);
    assert_eq!((track(p).slashes, track(p).slashed), (3, all));
    assert_eq!(
        metric_value(&metrics_page(rt.now.get()), "registry_slashes_total"),
        Some(3.0)
    );
    check_conservation(&rt);
}

#[test]
fn the_audit_finds_a_record_at_odds_with_itself_or_the_slashes() {
    use canister_common::audit::Books;
    let (rt, p) = registered_provider(0);
    record(rt.now.get(), args(p, "a", RecordEvent::AuditFailed)).unwrap();
    record(rt.now.get(), args(p, "d", RecordEvent::DeadlineMissed)).unwrap();
    read_state(|s| s.check_invariants()).unwrap();
    type Break = fn(&mut ProviderRecord);
    let breaks: [Break; 4] = [
        |r| r.record.last_failed_audit_ns = None,
        |r| r.record.last_missed_deadline_ns = None,
        |r| r.record.slashes = 1,
        |r| {
            r.record.slashes = 1;
            r.record.slashed = r.slashed_total + 1;
        },
    ];
    for (i, corrupt) in breaks.into_iter().enumerate() {
        let good = read_state(|s| s.provider(&p)).unwrap();
        let mut bad = good.clone();
        corrupt(&mut bad);
        mutate_state(|s| s.put_provider(bad));
        let e = read_state(|s| s.check_invariants()).unwrap_err();
        assert!(e.contains("track record"), "case {i}: {e}");
        mutate_state(|s| s.put_provider(good));
    }
    read_state(|s| s.check_invariants()).unwrap();
}

#[test]
fn keys_are_forgotten_after_their_retention_in_bounded_chunks() {
    let (rt, p) = registered_provider(0);
    let t0 = rt.now.get();
    let retention = RECORD_KEY_RETENTION_SECS * S;
    for i in 0..10u64 {
        record(
            t0 + i * S,
            args(p, &format!("k/{i}"), RecordEvent::AuditPassed),
        )
        .unwrap();
    }
    assert_eq!(read_state(|s| s.record_key_count()), 10);
    // Nothing is forgotten before its retention ends.
    assert_eq!(
        mutate_state(|s| s.prune_record_keys(t0 + retention - 1, 100)),
        0
    );
    // At most `budget` per call, oldest first.
    let at = t0 + retention + 4 * S;
    assert_eq!(mutate_state(|s| s.prune_record_keys(at, 3)), 3);
    assert_eq!(mutate_state(|s| s.prune_record_keys(at, 100)), 2);
    assert_eq!(read_state(|s| s.record_key_count()), 5);
    assert!(read_state(|s| s.record_key("k/4")).is_none());
    assert!(read_state(|s| s.record_key("k/5")).is_some());
    // A remembered key still answers a repeat without counting.
    record(at, args(p, "k/5", RecordEvent::AuditPassed)).unwrap();
    assert_eq!(track(p).audits_passed, 10);
    // Steady use keeps memory at what one retention period records.
    let later = t0 + 2 * retention;
    for i in 10..20u64 {
        record(
            later + i * S,
            args(p, &format!("k/{i}"), RecordEvent::AuditPassed),
        )
        .unwrap();
    }
    assert_eq!(
        mutate_state(|s| s.prune_record_keys(later + 20 * S, 100)),
        5
    );
    assert_eq!(read_state(|s| s.record_key_count()), 10);
    // A forgotten key counts again: why the retention outlasts the
    // matcher's retries.
    record(later + 21 * S, args(p, "k/0", RecordEvent::AuditPassed)).unwrap();
    assert_eq!(track(p).audits_passed, 21);
    // The counts and events stay.
    assert_eq!(record_events(), 21);
}

/// A stored provider as written before track records existed.
#[derive(Serialize, Deserialize, Clone)]
struct OldProviderRecord {
    id: Principal,
    profile: market_api::registry::ProviderProfile,
    registered_at_ns: u64,
    stake: Stake,
    slashed_total: u128,
    jailed: bool,
    deregistered: bool,
}

/// The counters as written before track records existed.
#[derive(Serialize, Deserialize, Clone)]
struct OldCounters {
    next_op_id: u64,
    slashed_total: u128,
    slash_count: u64,
}

fn reread<T, U>(old: T) -> U
where
    T: Serialize + DeserializeOwned + Clone,
    U: Serialize + DeserializeOwned + Clone,
{
    let bytes = Cbor(old).into_bytes();
    Cbor::<U>::from_bytes(Cow::Owned(bytes)).0
}

#[test]
fn records_saved_before_track_records_read_back() {
    let p = user(1);
    let old = OldProviderRecord {
        id: p,
        profile: profile(p),
        registered_at_ns: 5,
        stake: Stake {
            free: 300,
            bonded: 20,
            unbonding: vec![],
        },
        slashed_total: 42,
        jailed: true,
        deregistered: false,
    };
    let read: ProviderRecord = reread(old);
    assert_eq!(read.record, TrackRecord::default());
    assert_eq!(
        (read.id, read.stake.free, read.slashed_total, read.jailed),
        (p, 300, 42, true)
    );
    let read: Counters = reread(OldCounters {
        next_op_id: 9,
        slashed_total: 42,
        slash_count: 2,
    });
    assert_eq!(
        read,
        Counters {
            next_op_id: 9,
            slashed_total: 42,
            slash_count: 2,
            ..Counters::default()
        }
    );
}
