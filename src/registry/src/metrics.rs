//! `/metrics` in the Prometheus text format.

use crate::state::State;
use market_api::{HttpRequest, HttpResponse};
use std::fmt::Write;

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

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// The metrics page.
pub fn encode(s: &State) -> String {
    let t = totals(s);
    let c = s.counters();
    let mut out = String::new();
    metric(
        &mut out,
        "registry_providers",
        "gauge",
        "Provider records.",
        t.providers,
    );
    metric(
        &mut out,
        "registry_providers_active",
        "gauge",
        "Providers eligible for work.",
        t.active,
    );
    metric(
        &mut out,
        "registry_providers_jailed",
        "gauge",
        "Jailed providers.",
        t.jailed,
    );
    metric(
        &mut out,
        "registry_stake_free_e8s",
        "gauge",
        "Free stake.",
        t.free,
    );
    metric(
        &mut out,
        "registry_stake_bonded_e8s",
        "gauge",
        "Stake bonded to work.",
        t.bonded,
    );
    metric(
        &mut out,
        "registry_stake_unbonding_e8s",
        "gauge",
        "Stake unbonding.",
        t.unbonding,
    );
    metric(
        &mut out,
        "registry_staked_e8s",
        "gauge",
        "Total stake held (free, bonded, unbonding).",
        t.staked(),
    );
    metric(
        &mut out,
        "registry_slashed_e8s_total",
        "counter",
        "Stake slashed, ever.",
        c.slashed_total,
    );
    metric(
        &mut out,
        "registry_slashes_total",
        "counter",
        "Slashes that took stake.",
        c.slash_count,
    );
    metric(
        &mut out,
        "registry_pending_transfers",
        "gauge",
        "Ledger transfers with an unknown outcome.",
        s.pending_count(),
    );
    metric(
        &mut out,
        "registry_events",
        "gauge",
        "Entries in the public event log.",
        s.events.len(),
    );
    out
}

/// Answers `http_request`: `/metrics`, or 404.
pub fn http_request(s: &State, req: &HttpRequest) -> HttpResponse {
    let path = req.url.split('?').next().unwrap_or("");
    match (req.method.as_str(), path) {
        ("GET", "/metrics") => HttpResponse::text(200, "text/plain; version=0.0.4", encode(s)),
        ("GET", _) => HttpResponse::text(404, "text/plain", "not found"),
        _ => HttpResponse::text(405, "text/plain", "method not allowed"),
    }
}
