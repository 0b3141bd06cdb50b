//! The `/metrics` page (Prometheus text format) served by `http_request`.

use crate::state::State;
use canister_common::cycles::CyclesReport;
use canister_common::metrics::MetricsPage;
use market_api::{HttpRequest, HttpResponse};

/// Answers `GET /metrics` read at `now_ns` with the canister's `cycles`;
/// anything else is a 404.
pub fn http_request(
    state: &State,
    req: &HttpRequest,
    now_ns: u64,
    cycles: &CyclesReport,
) -> HttpResponse {
    let path = req.url.split('?').next().unwrap_or_default();
    if req.method != "GET" || path != "/metrics" {
        return HttpResponse::text(404, "text/plain", "not found");
    }
    HttpResponse::text(
        200,
        canister_common::metrics::CONTENT_TYPE,
        encode(state, now_ns, cycles),
    )
}

/// The metrics read at `now_ns` with the canister's `cycles`, one gauge or
/// counter per sample.
pub fn encode(state: &State, now_ns: u64, cycles: &CyclesReport) -> String {
    let mut page = MetricsPage::new(now_ns);
    page.counter(
        "escrow_events_total",
        "Events recorded in the public log.",
        state.events.len().into(),
    );
    page.gauge(
        "escrow_locks",
        "Job locks kept: open ones, and settled ones until their retention ends.",
        state.lock_count().into(),
    );
    page.gauge(
        "escrow_settled_locks",
        "Settled locks waiting for their retention to end before they are deleted.",
        state.settled_lock_count().into(),
    );
    page.gauge(
        "escrow_pending_operations",
        "Ledger calls whose outcome is not booked yet.",
        state.pending_count().into(),
    );
    state.audit.encode_metrics("escrow", &mut page);
    cycles.encode_metrics("escrow", &mut page);
    let ledgers = state.ledger_infos();
    let labels: Vec<(String, String)> = ledgers.iter().map(label).collect();
    let labels_of = |i: usize| vec![("ledger", &*labels[i].0), ("symbol", &*labels[i].1)];
    page.gauge_vec(
        "escrow_liabilities",
        "Sum of free, claimable, locked and pending balances per ledger, in the ledger's smallest unit.",
        ledgers
            .iter()
            .enumerate()
            .map(|(i, l)| (labels_of(i), state.liabilities(&l.ledger))),
    );
    page.gauge_vec(
        "escrow_pending_pay",
        "Pay held in locks for providers until their jobs settle, per ledger, in the ledger's smallest unit.",
        ledgers
            .iter()
            .enumerate()
            .map(|(i, l)| (labels_of(i), state.pending_pay(&l.ledger))),
    );
    page.gauge_vec(
        "escrow_ledger_fee",
        "Transfer fee per ledger as last read.",
        ledgers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| Some((labels_of(i), l.fee?))),
    );
    page.finish()
}

/// The ledger's id and its symbol, with the characters a label value would
/// have to escape replaced by `_`.
fn label(l: &market_api::escrow::LedgerInfo) -> (String, String) {
    (
        l.ledger.to_string(),
        l.symbol
            .as_deref()
            .unwrap_or("")
            .replace(['"', '\\', '\n'], "_"),
    )
}
