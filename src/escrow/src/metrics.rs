//! The `/metrics` page (Prometheus text format) served by `http_request`.

use crate::state::State;
use market_api::{HttpRequest, HttpResponse};
use std::fmt::Write;

/// Answers `GET /metrics`; anything else is a 404.
pub fn http_request(state: &State, req: &HttpRequest) -> HttpResponse {
    let path = req.url.split('?').next().unwrap_or_default();
    if req.method != "GET" || path != "/metrics" {
        return HttpResponse::text(404, "text/plain", "not found");
    }
    HttpResponse::text(200, "text/plain; version=0.0.4", encode(state))
}

/// The metrics, one gauge or counter per line.
pub fn encode(state: &State) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, u128)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "escrow_events_total",
        "counter",
        "Events recorded in the public log.",
        vec![(String::new(), state.events.len().into())],
    );
    metric(
        "escrow_locks",
        "gauge",
        "Job locks ever made, settled ones included.",
        vec![(String::new(), state.lock_count().into())],
    );
    metric(
        "escrow_pending_operations",
        "gauge",
        "Ledger calls whose outcome is not booked yet.",
        vec![(String::new(), state.pending_count().into())],
    );
    let ledgers = state.ledger_infos();
    metric(
        "escrow_liabilities",
        "gauge",
        "Sum of free, claimable and locked balances per ledger, in the ledger's smallest unit.",
        ledgers
            .iter()
            .map(|l| (label(l), state.liabilities(&l.ledger)))
            .collect(),
    );
    metric(
        "escrow_ledger_fee",
        "gauge",
        "Transfer fee per ledger as last read.",
        ledgers
            .iter()
            .filter_map(|l| Some((label(l), l.fee?)))
            .collect(),
    );
    out
}

fn label(l: &market_api::escrow::LedgerInfo) -> String {
    format!(
        "{{ledger=\"{}\",symbol=\"{}\"}}",
        l.ledger,
        l.symbol
            .as_deref()
            .unwrap_or("")
            .replace(['"', '\\', '\n'], "_")
    )
}
