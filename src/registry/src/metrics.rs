//! `/metrics` in the Prometheus text format.

use crate::state::State;
use canister_common::cycles::CyclesReport;
use canister_common::metrics::{CONTENT_TYPE, MetricsPage};
use market_api::{HttpRequest, HttpResponse};

/// Totals over all providers, as reported on `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Provider records (registered, or deregistered with stake left).
    pub providers: u64,
    /// Providers eligible for work.
    pub active: u64,
    /// Jailed providers.
    pub jailed: u64,
    /// Free stake.
    pub free: u128,
    /// Bonded stake.
    pub bonded: u128,
    /// Unbonding stake.
    pub unbonding: u128,
}

impl Totals {
    /// Free plus bonded plus unbonding: what the registry's stake accounts hold.
    pub fn staked(&self) -> u128 {
        self.free
            .saturating_add(self.bonded)
            .saturating_add(self.unbonding)
    }
}

/// Sums the stakes of all providers.
pub fn totals(s: &State) -> Totals {
    let mut t = Totals::default();
    for p in s.providers_after(None) {
        t.providers += 1;
        if p.jailed {
            t.jailed += 1;
        }
        if crate::providers::ineligibility(s, Some(&p)).is_none() {
            t.active += 1;
        }
        t.free = t.free.saturating_add(p.stake.free);
        t.bonded = t.bonded.saturating_add(p.stake.bonded);
        t.unbonding = t.unbonding.saturating_add(p.unbonding_total());
    }
    t
}

/// The metrics page read at `now_ns`, with the canister's `cycles`.
pub fn encode(s: &State, now_ns: u64, cycles: &CyclesReport) -> String {
    let t = totals(s);
    let c = s.counters();
    let mut page = MetricsPage::new(now_ns);
    page.gauge(
        "registry_providers",
        "Provider records.",
        t.providers.into(),
    );
    page.gauge(
        "registry_providers_active",
        "Providers eligible for work.",
        t.active.into(),
    );
    page.gauge(
        "registry_providers_jailed",
        "Jailed providers.",
        t.jailed.into(),
    );
    page.gauge("registry_stake_free_e8s", "Free stake.", t.free);
    page.gauge(
        "registry_stake_bonded_e8s",
        "Stake bonded to work.",
        t.bonded,
    );
    page.gauge(
        "registry_stake_unbonding_e8s",
        "Stake unbonding.",
        t.unbonding,
    );
    page.gauge(
        "registry_staked_e8s",
        "Total stake held (free, bonded, unbonding).",
        t.staked(),
    );
    page.counter(
        "registry_slashed_e8s_total",
        "Stake slashed, ever.",
        c.slashed_total,
    );
    page.counter(
        "registry_slashes_total",
        "Slashes that took stake.",
        c.slash_count.into(),
    );
    page.counter(
        "registry_jobs_completed_total",
        "Jobs providers completed, as the matcher recorded them.",
        c.jobs_completed.into(),
    );
    page.counter(
        "registry_audits_passed_total",
        "Audits of providers' results that agreed.",
        c.audits_passed.into(),
    );
    page.counter(
        "registry_audits_failed_total",
        "Audits of providers' results that did not agree.",
        c.audits_failed.into(),
    );
    page.counter(
        "registry_deadlines_missed_total",
        "Deadlines providers missed.",
        c.deadlines_missed.into(),
    );
    page.gauge(
        "registry_record_keys",
        "Idempotency keys of record calls remembered (until their retention ends).",
        s.record_key_count().into(),
    );
    page.gauge(
        "registry_pending_transfers",
        "Ledger transfers with an unknown outcome.",
        s.pending_count() as u128,
    );
    page.gauge(
        "registry_events",
        "Entries in the public event log.",
        s.events.len().into(),
    );
    s.audit.encode_metrics("registry", &mut page);
    cycles.encode_metrics("registry", &mut page);
    page.finish()
}

/// Answers `http_request`: `/metrics` read at `now_ns` with the canister's
/// `cycles`, or 404.
pub fn http_request(
    s: &State,
    req: &HttpRequest,
    now_ns: u64,
    cycles: &CyclesReport,
) -> HttpResponse {
    let path = req.url.split('?').next().unwrap_or("");
    match (req.method.as_str(), path) {
        ("GET", "/metrics") => HttpResponse::text(200, CONTENT_TYPE, encode(s, now_ns, cycles)),
        ("GET", _) => HttpResponse::text(404, "text/plain", "not found"),
        _ => HttpResponse::text(405, "text/plain", "method not allowed"),
    }
}
