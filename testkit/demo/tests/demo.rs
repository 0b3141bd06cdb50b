//! The demo's story, run quietly: each of its claims is checked.
//! Needs `scripts/build-canisters.sh` and `scripts/build-workloads.sh`.

use market_api::matcher::{JobStatus, MatcherEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_tells_the_truth() {
    let report = market_demo::run(market_demo::Options {
        verbose: false,
        ..Default::default()
    })
    .await
    .expect("the demo runs");
    assert_eq!(report.long_job.status, JobStatus::Succeeded);
    assert_eq!(report.long_job.retries_used, 1, "reassigned once");
    assert_eq!(report.callback_output, b"hello from a canister");
    // The cheat's forged result lost its audit: the buyer got the
    // majority's, and the cheat's stake was slashed.
    let cheated = &report.cheated_job;
    assert_eq!(cheated.status, JobStatus::Succeeded);
    assert_eq!(
        cheated.audit.as_ref().and_then(|a| a.verdict),
        Some(market_api::matcher::AuditVerdict::Overturned)
    );
    assert_eq!(report.audit.rejected, 1);
    let cheat = report
        .parties
        .iter()
        .find(|p| p.name == "provider-3 (cheat)")
        .unwrap();
    assert!(
        cheat.ledger + cheat.escrow + cheat.stake < cheat.funded,
        "the cheat lost its slash"
    );
    assert!(report.audit.slashes >= 1, "provider-1 went dark mid-job");
    // The DAO's reserved slot ended on the live provider, ran the delegate's
    // job, and was cancelled by proposal.
    let r = &report.dao.reservation;
    assert_eq!(r.status, market_api::matcher::ReservationStatus::Cancelled);
    assert!(r.paid > 0 && r.paid < r.locked);
    assert_eq!(
        report.dao.callback_output,
        b"hello from the DAO's app canister"
    );
    assert!(
        report
            .events
            .iter()
            .any(|e| matches!(e, MatcherEvent::DeadlineMissed { .. }))
    );
    // Every party's tokens are where the table says, and the sum of what
    // they hold plus the fees burned is what was minted.
    let held: u128 = report
        .parties
        .iter()
        .map(|p| p.ledger + p.escrow + p.stake)
        .sum();
    let funded: u128 = report.parties.iter().map(|p| p.funded).sum();
    assert_eq!(held + report.fees, funded);
    let market = report
        .parties
        .iter()
        .find(|p| p.name == "market (fees)")
        .unwrap();
    assert!(market.escrow > 0, "the jobs paid their storage fees");
    let p1 = report
        .parties
        .iter()
        .find(|p| p.name == "provider-1")
        .unwrap();
    let p2 = report
        .parties
        .iter()
        .find(|p| p.name == "provider-2")
        .unwrap();
    assert!(
        p1.ledger + p1.stake < p1.funded,
        "the silent provider lost its slash"
    );
    assert!(
        p2.ledger + p2.stake > p2.funded,
        "the other provider earned"
    );
}
