//! Providers' track records: what the matcher reports of their work
//! (`record`), counted once per idempotency key. Slashes count themselves
//! where they are made ([`crate::staking`]).

use crate::providers::{check_key, require_matcher};
use crate::state::{RecordKey, State};
use market_api::Principal;
use market_api::registry::{RecordArgs, RecordEvent, RegistryError, RegistryEvent, TrackRecord};

/// Adds `event`, which happened at `now_ns`, to `record`.
pub fn count(record: &mut TrackRecord, event: &RecordEvent, now_ns: u64) {
    match event {
        RecordEvent::JobCompleted { heartbeats_on_time } => {
            record.jobs_completed = record.jobs_completed.saturating_add(1);
            record.heartbeats_on_time = record
                .heartbeats_on_time
                .saturating_add(u64::from(*heartbeats_on_time));
        }
        RecordEvent::AuditPassed => {
            record.audits_passed = record.audits_passed.saturating_add(1);
        }
        RecordEvent::AuditFailed => {
            record.audits_failed = record.audits_failed.saturating_add(1);
            record.last_failed_audit_ns = Some(now_ns);
        }
        RecordEvent::DeadlineMissed => {
            record.deadlines_missed = record.deadlines_missed.saturating_add(1);
            record.last_missed_deadline_ns = Some(now_ns);
        }
    }
}

/// `record` (matcher only): counts one thing a provider did. A repeat of
/// a remembered key with the same provider and event counts nothing; with
/// other terms it is refused. The provider must have a record (registered,
/// or deregistered with stake left).
pub fn record(
    s: &mut State,
    caller: Principal,
    now: u64,
    args: RecordArgs,
) -> Result<(), RegistryError> {
    require_matcher(s, &caller)?;
    check_key(&args.key)?;
    if let Some(seen) = s.record_key(&args.key) {
        if seen.provider == args.provider && seen.event == args.event {
            return Ok(());
        }
        return Err(RegistryError::KeyConflict { key: args.key });
    }
    let mut p = s
        .provider(&args.provider)
        .ok_or(RegistryError::NotRegistered)?;
    count(&mut p.record, &args.event, now);
    let record = p.record.clone();
    s.put_provider(p);
    s.count_record_event(&args.event);
    s.put_record_key(
        &args.key,
        RecordKey {
            provider: args.provider,
            event: args.event.clone(),
            at_ns: now,
        },
    );
    s.record(
        now,
        RegistryEvent::RecordChanged {
            provider: args.provider,
            key: args.key,
            event: args.event,
            record,
        },
    );
    Ok(())
}

/// A provider's track record, if it has a record.
pub fn track_record(s: &State, provider: &Principal) -> Option<TrackRecord> {
    s.provider(provider).map(|p| p.record)
}
