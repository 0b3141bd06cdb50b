//! Scenario tests of audits: the draw, the runs, the verdict and the money.

use super::market::{buyer, market, node, offer, provider, spec};
use crate::lifecycle::{Effect, Params, StakeOp, bond_for, record_key};
use crate::market::Market;
use candid::Principal;
use ic_stable_structures::VectorMemory;
use market_api::matcher::{
    AuditVerdict, JobKind, JobResult, JobStatus, MatcherError, SubmitResultArgs, fuel_cost,
};
use market_api::registry::RecordEvent;
use market_api::{JobId, Tokens};
use market_fixture::exited;

const S: u64 = 1_000_000_000;
const G: u64 = market_api::matcher::GFUEL;
/// The market of the scenario tests, auditing every result.
const P: Params = Params {
    min_audit_ppm: 1_000_000,
    ..super::market::P
};
/// The draw's bytes: all zero draws 0, below any probability.
const AUDIT: [u8; 32] = [0; 32];
/// Draws 551 615 in a million: above a probability of one in a million.
const NO_AUDIT: [u8; 32] = [0xff; 32];

/// A market of providers at 50 per billion fuel, each on its own node, a
/// clock, and every step the outbox performed.
struct World {
    m: Market<VectorMemory>,
    p: Params,
    now: u64,
    draw: [u8; 32],
    done: Vec<(JobId, Effect)>,
}

impl World {
    fn new(p: Params, providers: &[u8]) -> World {
        let mut w = World {
            m: market(),
            p,
            now: 0,
            draw: AUDIT,
            done: vec![],
        };
        for n in providers {
            w.m.put_offer(&p, 0, provider(*n), node(*n), 100_000, None, offer(50))
                .unwrap();
        }
        w
    }

    /// A funded job of 10 billion fuel at up to 80 per billion.
    fn submit(&mut self) -> JobId {
        let id = self
            .m
            .create_job(&self.p, self.now, buyer(), spec(80, 0))
            .unwrap()
            .state
            .id;
        self.m.job_funded(&self.p, self.now, id);
        self.steps();
        id
    }

    /// Performs every ready step as if its callee took it at once: a bond
    /// holds, a draw comes back with `self.draw`.
    fn steps(&mut self) {
        loop {
            let ready = self.m.outbox.take_ready(u64::MAX, 1_000);
            if ready.is_empty() {
                return;
            }
            for (seq, step) in ready {
                self.m.outbox.complete(seq);
                match &step.effect {
                    Effect::Bond { key, .. } => {
                        self.m
                            .bond_held(&self.p, self.now, step.job_id, key.attempt)
                    }
                    Effect::DrawAudit { attempt } => {
                        let draw = self.draw;
                        self.m
                            .audit_drawn(&self.p, self.now, step.job_id, *attempt, &draw)
                    }
                    _ => {}
                }
                self.done.push((step.job_id, step.effect));
            }
        }
    }

    /// The provider holding job `id` and its attempt.
    fn holder(&self, id: JobId) -> (Principal, u32) {
        let a = self.m.job(id).unwrap().state.assignment.unwrap();
        (a.provider, a.attempt)
    }

    /// The holder of job `id` reports a result whose output hashes to
    /// `[output; 32]`, having used 4 billion fuel.
    fn report(&mut self, id: JobId, output: u8) -> Principal {
        let (who, attempt) = self.holder(id);
        self.m
            .submit_result(
                &self.p,
                self.now,
                who,
                SubmitResultArgs {
                    job_id: id,
                    attempt,
                    result: result(output),
                },
            )
            .unwrap();
        self.steps();
        who
    }

    /// The audit runs of job `id` so far.
    fn runs(&self, id: JobId) -> Vec<JobId> {
        self.m.job(id).unwrap().state.audit.unwrap().runs
    }

    /// Moves the clock on by `secs` and handles the deadlines due.
    fn pass(&mut self, secs: u64) {
        self.now += secs * S;
        self.m.process_deadlines(&self.p, self.now, 1_000);
        self.steps();
    }

    /// Paid out of job `id`'s lock, net of forfeits: what its releases
    /// moved, less the pending pay of every provider whose pay was
    /// forfeited.
    fn paid_from(&self, id: JobId) -> Vec<(Principal, Tokens)> {
        let mut paid: Vec<(Principal, Tokens)> = vec![];
        for (job, e) in &self.done {
            match e {
                Effect::Release {
                    provider, amount, ..
                } if *job == id => paid.push((*provider, *amount)),
                Effect::Forfeit { provider, .. } if *job == id => {
                    paid.retain(|(p, _)| p != provider)
                }
                _ => {}
            }
        }
        paid
    }

    fn slashes(&self) -> Vec<(String, Principal, Tokens)> {
        self.done
            .iter()
            .filter_map(|(_, e)| match e {
                Effect::Slash {
                    key,
                    provider,
                    amount,
                    ..
                } => Some((key.to_string(), *provider, *amount)),
                _ => None,
            })
            .collect()
    }

    fn records(&self, event: RecordEvent) -> Vec<Principal> {
        self.done
            .iter()
            .filter_map(|(_, e)| match e {
                Effect::Record {
                    provider, event: e, ..
                } if *e == event => Some(*provider),
                _ => None,
            })
            .collect()
    }
}

fn result(output: u8) -> JobResult {
    JobResult {
        output_sha256: [output; 32],
        ..exited(&[output; 4], 4 * G)
    }
}

/// What 4 billion fuel earns at 50 per billion.
const PAY: Tokens = 200;
/// The lock of a job of 10 billion fuel at up to 80: twice the budget.
const LOCK: Tokens = 2 * 800;

#[test]
fn an_audit_that_agrees_pays_the_auditor_and_the_result_stands() {
    let mut w = World::new(P, &[1, 2]);
    let id = w.submit();
    assert_eq!(w.m.job(id).unwrap().state.max_cost(), Some(LOCK));
    assert_eq!(w.report(id, 1), provider(1));

    // The draw says audit: a run of the same job goes to the other provider,
    // with the job's seed, looking like any job; the result is withheld.
    let [run] = w.runs(id)[..] else {
        panic!("one audit run")
    };
    assert!(
        w.m.cancel(&w.p, w.now, buyer(), run).is_err(),
        "the owner can't cancel an audit run: its auditor would work unpaid"
    );
    let run_rec = w.m.job(run).unwrap();
    assert_eq!(run_rec.kind, JobKind::Audit { of: id });
    assert_eq!(run_rec.public_kind(), JobKind::OneOff);
    assert_eq!(run_rec.spec.input, w.m.job(id).unwrap().spec.input);
    assert_eq!(w.holder(run).0, provider(2));
    let view = w.m.job(id).unwrap().to_job();
    assert_eq!(view.status, JobStatus::Reported);
    assert_eq!(view.result, None, "withheld while audited");
    assert!(
        view.audit.as_ref().unwrap().runs.is_empty(),
        "runs hidden too"
    );
    assert_eq!(
        w.m.job(id).unwrap().state.deadline_ns(&w.p),
        None,
        "the window waits"
    );

    assert_eq!(w.report(run, 1), provider(2));
    let job = w.m.job(id).unwrap();
    assert_eq!(
        job.state.audit.as_ref().unwrap().verdict,
        Some(AuditVerdict::Agreed)
    );
    assert_eq!(job.to_job().result, Some(result(1)));
    assert_eq!(job.to_job().audit.unwrap().runs, vec![run]);
    assert_eq!(w.m.job(run).unwrap().state.status, JobStatus::Succeeded);
    assert_eq!(
        w.m.job(run).unwrap().to_job().kind,
        JobKind::Audit { of: id }
    );
    assert_eq!(
        w.paid_from(id),
        vec![(provider(1), PAY), (provider(2), PAY)]
    );
    assert!(w.slashes().is_empty());
    assert_eq!(w.records(RecordEvent::AuditPassed), vec![provider(1)]);

    // The window runs from the result; the job settles when it closes.
    w.pass(100);
    assert_eq!(w.m.job(id).unwrap().state.status, JobStatus::Succeeded);
    assert!(w.done.iter().any(|(j, e)| *j == id && *e == Effect::Settle));
    assert!(
        !w.done
            .iter()
            .any(|(j, e)| *j == run && *e == Effect::Settle),
        "an audit run has no lock of its own"
    );
}

/// Providers 1, 2 and 3, and a job whose result provider 1 reported as
/// `output`; returns the world, the job and its audit run.
fn an_audited_result(output: u8) -> (World, JobId, JobId) {
    let mut w = World::new(P, &[1, 2, 3]);
    let id = w.submit();
    w.report(id, output);
    let run = w.runs(id)[0];
    (w, id, run)
}

#[test]
fn a_wrong_result_is_overturned_by_the_tie_break_and_its_provider_slashed() {
    let (mut w, id, run1) = an_audited_result(9);
    assert_eq!(w.report(run1, 1), provider(2));
    // They disagree: a third provider breaks the tie.
    let runs = w.runs(id);
    assert_eq!(runs.len(), 2);
    assert_eq!(w.holder(runs[1]).0, provider(3));
    assert_eq!(w.m.job(id).unwrap().to_job().result, None, "still withheld");
    assert_eq!(
        w.m.job(run1).unwrap().to_job().result,
        None,
        "so is the auditor's"
    );
    assert_eq!(w.report(runs[1], 1), provider(3));

    let job = w.m.job(id).unwrap();
    assert_eq!(
        job.state.audit.as_ref().unwrap().verdict,
        Some(AuditVerdict::Overturned)
    );
    assert_eq!(
        job.to_job().result,
        Some(result(1)),
        "the buyer gets the majority's"
    );
    let bond = bond_for(&P, fuel_cost(10 * G, 50).unwrap(), P.min_audit_ppm);
    assert_eq!(
        w.slashes(),
        vec![(
            record_key(id, StakeOp::Caught, 1).to_string(),
            provider(1),
            bond
        )]
    );
    assert_eq!(
        w.paid_from(id),
        vec![(provider(2), PAY), (provider(3), PAY)]
    );
    let paid: Tokens = w.paid_from(id).iter().map(|(_, a)| a).sum();
    assert!(paid <= LOCK);
    assert_eq!(w.records(RecordEvent::AuditFailed), vec![provider(1)]);
    w.pass(100);
    assert_eq!(w.m.job(id).unwrap().state.status, JobStatus::Succeeded);
    let completed = w.records(RecordEvent::JobCompleted {
        heartbeats_on_time: 0,
    });
    assert_eq!(completed, vec![provider(2), provider(3)], "not the cheat");
}

#[test]
fn a_lying_auditor_loses_the_tie_break() {
    let (mut w, id, run1) = an_audited_result(1);
    w.report(run1, 7);
    let tie = w.runs(id)[1];
    w.report(tie, 1);
    let job = w.m.job(id).unwrap();
    assert_eq!(job.state.audit.unwrap().verdict, Some(AuditVerdict::Agreed));
    assert_eq!(job.state.result, Some(result(1)));
    let auditor_bond = bond_for(&P, fuel_cost(10 * G, 50).unwrap(), 0);
    assert_eq!(
        w.slashes(),
        vec![(
            record_key(run1, StakeOp::Caught, 1).to_string(),
            provider(2),
            auditor_bond
        )]
    );
    assert_eq!(w.m.job(run1).unwrap().state.status, JobStatus::Failed);
    assert_eq!(
        w.paid_from(id),
        vec![(provider(1), PAY), (provider(3), PAY)]
    );
}

/// A market auditing one result in a million, providers 1 and 2, and a
/// job whose result provider 1 reported and the draw passed over.
fn a_result_not_drawn() -> (World, JobId) {
    let p = Params {
        min_audit_ppm: 1,
        ..P
    };
    let mut w = World::new(p, &[1, 2]);
    w.draw = NO_AUDIT;
    let id = w.submit();
    w.report(id, 1);
    assert_eq!(w.m.job(id).unwrap().state.audit, None, "not drawn");
    (w, id)
}

#[test]
fn a_dispute_of_an_honest_result_pays_the_auditor_and_changes_nothing_else() {
    let (mut w, id) = a_result_not_drawn();
    assert_eq!(w.m.job(id).unwrap().to_job().result, Some(result(1)));

    let stranger = provider(9);
    assert!(matches!(
        w.m.dispute(&w.p, w.now, stranger, id),
        Err(MatcherError::Unauthorized { .. })
    ));
    w.m.dispute(&w.p, w.now, buyer(), id).unwrap();
    w.steps();
    assert_eq!(
        w.m.dispute(&w.p, w.now, buyer(), id),
        Err(MatcherError::InvalidState {
            status: JobStatus::Reported
        }),
        "once"
    );
    let run = w.runs(id)[0];
    assert_eq!(w.m.job(id).unwrap().to_job().result, None);
    w.report(run, 1);
    let job = w.m.job(id).unwrap();
    let audit = job.state.audit.clone().unwrap();
    assert!(audit.disputed);
    assert_eq!(audit.verdict, Some(AuditVerdict::Agreed));
    assert_eq!(job.state.result, Some(result(1)));
    assert_eq!(
        w.paid_from(id),
        vec![(provider(1), PAY), (provider(2), PAY)]
    );
    assert!(w.slashes().is_empty());
    w.pass(100);
    assert_eq!(w.m.job(id).unwrap().state.status, JobStatus::Succeeded);
}

#[test]
fn a_result_can_be_disputed_only_while_its_window_is_open() {
    let (mut w, id) = a_result_not_drawn();
    w.pass(100);
    assert!(w.m.dispute(&w.p, w.now, buyer(), id).is_err());
    assert!(w.runs_none(id));
}

impl World {
    fn runs_none(&self, id: JobId) -> bool {
        self.m.job(id).unwrap().state.audit.is_none()
    }
}

#[test]
fn an_auditor_that_never_answers_is_slashed_and_the_result_stands() {
    let mut w = World::new(P, &[1, 2]);
    let id = w.submit();
    w.report(id, 1);
    let run = w.runs(id)[0];
    assert_eq!(w.holder(run).0, provider(2));
    // No heartbeat: the acknowledgement deadline passes.
    w.pass(60 + 30);
    assert_eq!(w.m.job(run).unwrap().state.status, JobStatus::Failed);
    assert_eq!(
        w.slashes().iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        vec![format!("job/{run}/slash/1")]
    );
    let job = w.m.job(id).unwrap();
    assert_eq!(
        job.state.audit.unwrap().verdict,
        Some(AuditVerdict::Inconclusive)
    );
    assert_eq!(w.paid_from(id), vec![(provider(1), PAY)]);
    w.pass(100);
    assert_eq!(w.m.job(id).unwrap().state.status, JobStatus::Succeeded);
}

#[test]
fn no_audit_goes_to_the_same_provider_or_node_or_an_offer_that_opted_out() {
    let mut w = World::new(P, &[1]);
    let mut no_audits = offer(50);
    no_audits.audits = Some(false);
    w.m.put_offer(&P, 0, provider(2), node(2), 100_000, None, no_audits)
        .unwrap();
    // Provider 3 runs on provider 1's node.
    w.m.put_offer(&P, 0, provider(3), node(1), 100_000, None, offer(50))
        .unwrap();
    let id = w.submit();
    assert_eq!(w.holder(id).0, provider(1));
    w.report(id, 1);
    let run = w.runs(id)[0];
    let rec = w.m.job(run).unwrap();
    assert_eq!(
        rec.state.status,
        JobStatus::Open,
        "rests: no offer may take it"
    );
    assert!(rec.state.failed_providers.contains(&provider(3)));
    // A provider that may audit comes along.
    w.m.put_offer(&P, 0, provider(4), node(4), 100_000, None, offer(50))
        .unwrap();
    w.steps();
    assert_eq!(w.holder(run).0, provider(4));
}

#[test]
fn the_auditor_is_picked_at_random_among_the_eligible_offers() {
    // Providers 2 and 3 offer at the same price as provider 1, which runs
    // the job: the draw's second eight bytes pick the auditor, so that no
    // provider can undercut its way into auditing a given provider.
    let auditor_of = |seed: u64| {
        let mut w = World::new(P, &[1, 2, 3]);
        w.draw[8..16].copy_from_slice(&seed.to_le_bytes());
        let id = w.submit();
        w.report(id, 1);
        w.holder(w.runs(id)[0]).0
    };
    let picked: std::collections::BTreeSet<Principal> = (0..4).map(auditor_of).collect();
    assert_eq!(
        picked,
        [provider(2), provider(3)].into_iter().collect(),
        "either may audit"
    );
    // The cheaper of the two, always, without an audit's pick.
    let mut w = World::new(P, &[1, 2, 3]);
    w.draw = NO_AUDIT;
    let first = w.submit();
    assert_eq!(w.holder(first).0, provider(1));
    let second = w.submit();
    assert_eq!(
        w.holder(second).0,
        provider(2),
        "the oldest offer at the price"
    );
}

#[test]
fn an_audit_runs_provider_gets_the_key_of_the_sealing_it_copies_and_no_other() {
    use market_api::privacy::{IBE_HEADER, IBE_OVERHEAD, JobKeyRequest, Sealed, job_identity};
    let mut w = World::new(P, &[1, 2]);
    w.m.sealing = true;
    let mut ct = IBE_HEADER.to_vec();
    ct.resize(IBE_OVERHEAD + 3, 1);
    let mut s = spec(80, 0);
    s.input = ct.clone();
    s.sealed = Some(Sealed {
        key_id: vec![4; 32],
        input: true,
        env: None,
        output: true,
    });
    let id = w.m.create_job(&w.p, w.now, buyer(), s).unwrap().state.id;
    w.m.job_funded(&w.p, w.now, id);
    w.steps();
    let req = |job_id, attempt| JobKeyRequest {
        job_id,
        attempt,
        transport_public_key: vec![7; 48],
    };
    assert!(w.m.check_job_key(node(1), &req(id, 1)).is_ok());
    assert_eq!(w.report(id, 1), provider(1));
    let [run] = w.runs(id)[..] else {
        panic!("one audit run")
    };
    assert_eq!(w.holder(run).0, provider(2));
    // The auditor reads the run's sealed input and gets its key: the
    // identity is the audited job's, so the key opens the copied contents.
    assert_eq!(w.m.job_for(node(2), run).unwrap().spec.input, ct);
    let grant = w.m.check_job_key(node(2), &req(run, 1)).unwrap();
    assert_eq!(grant.identity, job_identity(buyer(), &[4; 32]));
    // Not the audited job's key through the job itself, and the reporting
    // provider is done with both.
    for (caller, job) in [(node(2), id), (node(1), id), (node(1), run)] {
        assert!(
            matches!(
                w.m.check_job_key(caller, &req(job, 1)),
                Err(MatcherError::Unauthorized { .. })
            ),
            "{caller} for {job}"
        );
    }
    assert!(w.m.job_for(node(1), run).unwrap().spec.input.is_empty());
}
