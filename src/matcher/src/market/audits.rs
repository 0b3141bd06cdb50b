//! Audits of one-off jobs' results: the draw, the buyer's dispute, the
//! audit runs and the verdict.
//!
//! An audit run is a job record of kind [`JobKind::Audit`]: the audited
//! job's spec and seed, matched through the book like any job (never to a
//! provider that ran or audited the job, or one on the same node, nor to
//! an offer that opted out of audits), bonded, heartbeated and held to
//! its deadlines like any job. Its result waits, hidden, until the audit
//! has its verdict:
//!
//! - the re-run agrees with the result: the result stands and the
//!   auditor is paid;
//! - it disagrees: a third run breaks the tie. The side in the minority is
//!   slashed its whole bond and paid nothing (the audited provider also
//!   forfeits its pending pay), the majority's runs are paid, and the
//!   buyer gets the majority's result;
//! - no auditor answers, or no two runs agree: the result stands and no
//!   one is slashed by the audit (an auditor that missed its deadline was
//!   slashed for that, as any provider is).
//!
//! Auditors are paid from the audited job's lock at the verdict: the lock
//! holds a second budget for the re-run, and a tie-break's run is paid
//! from what the losing side forfeits.

use super::{JobRecord, Market, refusal_error};
use crate::lifecycle::{AuditNote, Effect, JobState, Params};
use candid::Principal;
use ic_stable_structures::Memory;
use market_api::matcher::{
    AuditVerdict, Commitment, JobKind, JobStatus, MatcherError, ModuleSource,
};
use market_api::{JobId, Tokens};

/// Where a run stands at its audit's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// With the verdict: paid.
    Paid,
    /// Against a majority: slashed.
    Rejected,
    /// Neither (no majority, or it ended without a result): unpaid.
    Unpaid,
}

/// The verdict over a result and its runs' commitments, the sides of the
/// result and of each run (`None` while a tie-break is still needed), and
/// which run's result replaces an overturned one.
fn judge(
    result: &Commitment,
    runs: &[Option<Commitment>],
) -> Option<(AuditVerdict, Side, Vec<Side>, Option<usize>)> {
    use AuditVerdict::*;
    use Side::*;
    Some(match runs {
        [None] => (Inconclusive, Paid, vec![Unpaid], None),
        [Some(c)] if c == result => (Agreed, Paid, vec![Paid], None),
        [Some(_)] => return None,
        [_, None] => (Inconclusive, Paid, vec![Unpaid, Unpaid], None),
        [_, Some(c)] if c == result => (Agreed, Paid, vec![Rejected, Paid], None),
        [Some(a), Some(c)] if a == c => (Overturned, Rejected, vec![Paid, Paid], Some(1)),
        _ => (Inconclusive, Paid, vec![Unpaid; runs.len()], None),
    })
}

impl<M: Memory> Market<M> {
    /// The draw for the result of job `id`'s `attempt` came back with
    /// `randomness`: an audit run starts if the draw says so.
    pub fn audit_drawn(
        &mut self,
        p: &Params,
        now_ns: u64,
        id: JobId,
        attempt: u32,
        randomness: &[u8],
    ) {
        let Some(mut rec) = self.job(id) else { return };
        let old = Self::deadline_key(p, &rec.state);
        let Some(selected) = rec.state.audit_drawn(attempt, randomness) else {
            return;
        };
        self.track_deadline(p, &rec.state, old);
        self.put_job(rec);
        if selected {
            self.start_audit_run(p, now_ns, id);
        }
    }

    /// The owner disputes the result of job `id`: it is audited (see
    /// [`JobState::dispute`]).
    pub fn dispute(
        &mut self,
        p: &Params,
        now_ns: u64,
        caller: Principal,
        id: JobId,
    ) -> Result<(), MatcherError> {
        self.enforce_deadline(p, now_ns, id);
        self.transition(p, now_ns, id, |rec| {
            if rec.kind != JobKind::OneOff {
                return Err(MatcherError::InvalidState {
                    status: rec.state.status,
                });
            }
            let state = &mut rec.state;
            state
                .dispute(caller, now_ns)
                .map_err(|r| refusal_error(state, r))
        })
    }

    /// Providers that must not audit job `of`: whoever ran or audited it,
    /// or failed it, and the providers their nodes act for now.
    fn not_auditors(&self, of: &JobRecord, runs: &[JobId]) -> Vec<Principal> {
        let mut records = vec![of.state.clone()];
        records.extend(runs.iter().filter_map(|id| self.job(*id)).map(|r| r.state));
        let mut out: Vec<Principal> = vec![];
        for s in &records {
            out.extend(s.failed_providers.iter().copied());
            out.extend(s.assignment.as_ref().map(|a| a.provider));
            out.extend(s.last_assignment.map(|(provider, _)| provider));
        }
        self.with_node_mates(out)
    }

    /// Starts the next audit run of job `of` and puts it in the book.
    fn start_audit_run(&mut self, p: &Params, now_ns: u64, of: JobId) {
        let Some(mut orig) = self.job(of) else { return };
        let Some((runs, seed)) = orig.state.audit.as_ref().map(|a| (a.runs.clone(), a.seed)) else {
            return;
        };
        let excluded = self.not_auditors(&orig, &runs);
        let id = self.next_job_id();
        let mut spec = orig.spec.clone();
        spec.callback = None;
        if let ModuleSource::Stored { sha256 } = &spec.module {
            // The audited job holds the module, so this can't fail.
            let _ = self.modules.acquire(sha256);
        }
        let run = JobRecord {
            state: JobState::audit_run(id, &orig.state, excluded),
            spec,
            submitted_at_ns: now_ns,
            funded: true,
            kind: JobKind::Audit { of },
            // Each run of the audit picks its provider with other bits.
            audit_pick: Some(seed.rotate_left(32 * runs.len() as u32) ^ id),
            keys: Default::default(),
        };
        let audit = orig.state.audit.as_mut().expect("checked");
        audit.runs.push(id);
        let disputed = audit.disputed;
        self.put_job(orig);
        self.put_job(run);
        self.outbox.push(
            of,
            Effect::Announce {
                note: AuditNote::Started { run: id, disputed },
            },
        );
        self.try_match(p, now_ns, id);
    }

    /// Run `run` of job `of`'s audit changed: once every run has a result
    /// or ended without one, the audit reaches its verdict, or a tie-break
    /// starts. (A run still going, as after a heartbeat, changes nothing,
    /// and costs one read.)
    pub(super) fn audit_run_changed(&mut self, p: &Params, now_ns: u64, of: JobId, run: JobId) {
        let done =
            |r: &JobRecord| r.state.status == JobStatus::Reported || r.state.status.is_terminal();
        if !self.job(run).is_some_and(|r| done(&r)) {
            return;
        }
        let Some(mut orig) = self.job(of) else { return };
        let Some(audit) = orig.state.audit.clone() else {
            return;
        };
        if !audit.pending() || audit.drawing {
            return;
        }
        let mut runs: Vec<JobRecord> = audit.runs.iter().filter_map(|id| self.job(*id)).collect();
        let all_in = runs.iter().all(done);
        if runs.len() != audit.runs.len() || !all_in {
            return;
        }
        let Some(result) = orig.state.commitment() else {
            return;
        };
        let commitments: Vec<Option<Commitment>> =
            runs.iter().map(|r| r.state.commitment()).collect();
        let Some((verdict, side, sides, majority)) = judge(&result, &commitments) else {
            return self.start_audit_run(p, now_ns, of);
        };
        // The runs end first; the job then pays those owed pay, after its
        // own forfeit if it lost, so the lock never pays out more than it
        // holds.
        let mut run_effects = vec![];
        let mut owed: Vec<(Principal, Tokens, u64)> = vec![];
        for (run, side) in runs.iter_mut().zip(&sides) {
            let effects = match side {
                Side::Rejected => run.state.reject(p),
                _ if run.state.status != JobStatus::Reported => vec![],
                paid => {
                    let (effects, pay) = run.state.end_audit_run(*paid == Side::Paid);
                    owed.extend(pay);
                    effects
                }
            };
            run_effects.push((run.state.id, effects));
        }
        let old = Self::deadline_key(p, &orig.state);
        let mut effects = vec![];
        if side == Side::Rejected {
            effects.extend(orig.state.reject(p));
        }
        for (provider, amount, fuel) in owed {
            effects.extend(orig.state.pay_auditor(provider, amount, fuel));
        }
        let replacement = majority.and_then(|i| runs[i].state.result.clone());
        effects.extend(
            orig.state
                .audit_settled(verdict, audit.runs.clone(), replacement),
        );
        self.track_deadline(p, &orig.state, old);
        self.put_job(orig);
        self.apply(p, now_ns, of, JobKind::OneOff, effects);
        for (run, (id, effects)) in runs.into_iter().zip(run_effects) {
            self.put_job(run);
            self.apply(p, now_ns, id, JobKind::Audit { of }, effects);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use market_api::matcher::RunOutcome;

    fn c(n: u8) -> Commitment {
        Commitment {
            outcome: RunOutcome::Exited { code: 0 },
            output_sha256: [n; 32],
            fuel_used: 5,
        }
    }

    #[test]
    fn the_majority_decides_and_a_missing_or_split_vote_leaves_the_result_standing() {
        use AuditVerdict::*;
        use Side::*;
        let r = c(1);
        assert_eq!(
            judge(&r, &[Some(c(1))]),
            Some((Agreed, Paid, vec![Paid], None))
        );
        assert_eq!(judge(&r, &[Some(c(2))]), None, "a tie-break is needed");
        assert_eq!(
            judge(&r, &[None]),
            Some((Inconclusive, Paid, vec![Unpaid], None))
        );
        assert_eq!(
            judge(&r, &[Some(c(2)), Some(c(1))]),
            Some((Agreed, Paid, vec![Rejected, Paid], None))
        );
        assert_eq!(
            judge(&r, &[Some(c(2)), Some(c(2))]),
            Some((Overturned, Rejected, vec![Paid, Paid], Some(1)))
        );
        assert_eq!(
            judge(&r, &[Some(c(2)), Some(c(3))]),
            Some((Inconclusive, Paid, vec![Unpaid, Unpaid], None))
        );
        assert_eq!(
            judge(&r, &[Some(c(2)), None]),
            Some((Inconclusive, Paid, vec![Unpaid, Unpaid], None))
        );
        let more_fuel = Commitment {
            fuel_used: 6,
            ..c(1)
        };
        assert_eq!(judge(&r, &[Some(more_fuel)]), None, "fuel is committed to");
    }
}
