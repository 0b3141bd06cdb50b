//! The matcher's `/metrics` page in the Prometheus text format.

use crate::state::State;
use canister_common::cycles::CyclesReport;
use canister_common::metrics::MetricsPage;

/// The metrics of the matcher's state, read at `now_ns`, and its `cycles`.
pub fn encode(s: &State, now_ns: u64, cycles: &CyclesReport) -> String {
    let (active, held) = s.market.reservation_gauges();
    let mut page = MetricsPage::new(now_ns);
    page.gauge(
        "matcher_offers",
        "Offers in the book.",
        s.market.book.offer_count() as u128,
    );
    page.gauge(
        "matcher_resting_bids",
        "Bids waiting for capacity.",
        s.market.book.bid_count() as u128,
    );
    page.gauge(
        "matcher_outbox_steps",
        "Cross-canister steps pending.",
        s.market.outbox.len() as u128,
    );
    page.counter("matcher_events", "Events recorded.", s.events.len() as u128);
    page.gauge(
        "matcher_reservations",
        "Active reservations.",
        active as u128,
    );
    page.gauge(
        "matcher_reserved_slots_held",
        "Slots of active reservations held by a provider.",
        held as u128,
    );
    let audits = s.audit_counts.get().0;
    let probes = s.probe_counts.get().0;
    let keys = s.key_counts.get().0;
    let outages = s.market.outages();
    for (name, help, value) in [
        (
            "matcher_audit_runs_total",
            "Audit runs started (re-runs of results and tie-breaks).",
            audits.runs,
        ),
        (
            "matcher_disputes_total",
            "Audits buyers asked for.",
            audits.disputes,
        ),
        (
            "matcher_audits_agreed_total",
            "Audits whose verdict upheld the result.",
            audits.agreed,
        ),
        (
            "matcher_audits_overturned_total",
            "Audits whose majority overturned the result.",
            audits.overturned,
        ),
        (
            "matcher_audits_inconclusive_total",
            "Audits without a majority or an answer.",
            audits.inconclusive,
        ),
        (
            "matcher_probes_total",
            "Probes of service replicas answered or rejected.",
            probes.probes,
        ),
        (
            "matcher_probe_failures_total",
            "Probes of service replicas that found no 2xx answer.",
            probes.failures,
        ),
        (
            "matcher_job_keys_total",
            "Job keys derived for providers and owners (vetkd_derive_key).",
            keys.derived,
        ),
        (
            "matcher_job_key_failures_total",
            "Job key derivations the management canister rejected or left unanswered.",
            keys.failed,
        ),
        (
            "matcher_outages_total",
            "Times the matcher did not run for longer than its timers allow (frozen, stopped, or its subnet stalled); deadlines that fell in one were moved past it.",
            outages.total,
        ),
        (
            "matcher_outage_seconds_total",
            "Seconds of those outages in all.",
            outages.total_secs,
        ),
    ] {
        page.counter(name, help, u128::from(value));
    }
    s.audit.encode_metrics("matcher", &mut page);
    cycles.encode_metrics("matcher", &mut page);
    page.finish()
}
