//! The demo's story, run quietly: each of its claims is checked.
//! Needs `scripts/build-canisters.sh` and `scripts/build-workloads.sh`.

use market_api::matcher::{JobStatus, MatcherEvent, ReservationStatus};
use market_demo::GREETING;
use market_fixture::provider;
use sha2::Digest;

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
    // The job priced in XDR ran at provider-1's XDR price, converted to
    // PRICE e8s at 4 XDR per ICP, and paid its fuel at that price.
    let x = &report.xdr_job;
    assert_eq!(x.status, JobStatus::Succeeded);
    assert_eq!(x.price, Some(market_demo::PRICE));
    let conversion = x.pricing.as_ref().and_then(|p| p.conversion).unwrap();
    assert_eq!(conversion.price_cycles, market_demo::PRICE * 40_000);
    assert_eq!(
        x.paid,
        market_api::matcher::fuel_cost(x.fuel_reported, market_demo::PRICE).unwrap()
    );
    // The sealed job ran on the input only its provider could open, and
    // its owner opened the sealed output.
    assert!(
        report
            .private_output
            .contains(&hex::encode(sha2::Sha256::digest(
                b"alice's private records\n"
            ))),
        "{}",
        report.private_output
    );
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
    // The dapp's service: both replicas answered, each on its own provider.
    let s = &report.service;
    assert_eq!(s.first.len(), 2);
    assert_ne!(s.first[0].provider, s.first[1].provider);
    for c in s.first.iter().chain([&s.replacement]) {
        assert_eq!(c.json.0, 200, "{c:?}");
        assert!(c.json.1.contains(r#""service":"hello""#), "{c:?}");
        assert!(c.json.1.contains(r#""path":"/json""#), "{c:?}");
        assert_eq!(c.greeting, (200, GREETING.1.to_string()), "{c:?}");
    }
    // The replica on the provider that went dark stopped answering, failed
    // three probes in a row, was counted a missed deadline, and was matched
    // anew with provider-4, whose endpoint answered and was told to the
    // dapp's canister.
    let lost = s
        .first
        .iter()
        .find(|c| c.provider == provider(1))
        .expect("a replica on provider-1");
    let kept = s.first.iter().find(|c| c.slot != lost.slot).unwrap();
    assert!(!s.lost_answered, "the dead node's replica answered");
    assert_eq!(s.replacement.slot, lost.slot);
    assert_eq!(s.replacement.provider, provider(4));
    assert_ne!(s.replacement.endpoint, lost.endpoint);
    let slot_job = s.view.replicas[lost.slot as usize].job_id;
    assert_eq!(s.view.replicas[lost.slot as usize].rematches, 1);
    let at = |f: &dyn Fn(&MatcherEvent) -> bool| report.events.iter().position(f);
    let probe_failed = |n: u32| {
        at(&|e| {
            matches!(e, MatcherEvent::ProbeFailed { reservation, slot, provider: p, consecutive }
                if *reservation == s.id && *slot == lost.slot && *p == provider(1) && *consecutive == n)
        })
        .unwrap_or_else(|| panic!("no failed probe #{n} of provider-1's replica"))
    };
    let missed = at(&|e| {
        matches!(e, MatcherEvent::DeadlineMissed { job_id, provider: p, slashed, .. }
            if *job_id == slot_job && *p == provider(1) && *slashed > 0)
    })
    .expect("provider-1 slashed for its replica");
    let moved = at(&|e| {
        matches!(e, MatcherEvent::ServiceEndpoint { reservation, slot, provider: p, endpoint, .. }
            if *reservation == s.id && *slot == lost.slot && *p == provider(4)
                && endpoint.as_deref() == Some(s.replacement.endpoint.as_str()))
    })
    .expect("the new endpoint recorded");
    assert!(probe_failed(1) < probe_failed(2) && probe_failed(2) < probe_failed(3));
    assert!(probe_failed(3) < missed && missed < moved);
    let mut recorded = vec![None, None];
    recorded[lost.slot as usize] = Some(s.replacement.endpoint.clone());
    recorded[kept.slot as usize] = Some(kept.endpoint.clone());
    assert_eq!(s.recorded, recorded, "what the dapp's canister was told");
    // The canister cancelled the lease; its probes' fee went to the market.
    assert_eq!(s.reservation.status, ReservationStatus::Cancelled);
    assert!(s.probe_fee > 0);
    assert!(s.reservation.paid > s.probe_fee && s.reservation.paid < s.reservation.locked);
    let market_id = report
        .parties
        .iter()
        .find(|p| p.name == "market (fees)")
        .unwrap()
        .principal;
    assert!(report.events.iter().any(|e| matches!(e,
        MatcherEvent::IntervalPaid { job_id, provider: p, amount, .. }
            if *job_id == s.id && *p == market_id && *amount == s.probe_fee)));
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
    assert!(
        market.escrow > report.service.probe_fee,
        "the jobs paid their storage fees, the service its probes"
    );
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
