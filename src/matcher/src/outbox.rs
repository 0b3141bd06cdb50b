//! The outbox: cross-canister steps recorded before any call is made, and
//! retried until the other canister confirms them.
//!
//! Steps of one job run strictly in the order they were recorded (a job's
//! releases must reach the escrow before its settle), one at a time; steps of
//! different jobs are independent. Each step carries its idempotency key, so
//! a retry after a reject, a trap or an unknown outcome cannot act twice.

use crate::lifecycle::Effect;
use canister_common::codec::Cbor;
use ic_stable_structures::{Memory, StableBTreeMap};
use market_api::JobId;
use serde::{Deserialize, Serialize};

/// First retry delay; doubles per failed attempt up to [`MAX_BACKOFF_NS`].
pub const BASE_BACKOFF_NS: u64 = 1_000_000_000;
/// Longest retry delay.
pub const MAX_BACKOFF_NS: u64 = 300 * 1_000_000_000;
/// A step handed out longer ago than this without an answer (its call's
/// callback trapped, say) is handed out again. Longer than any bounded-wait
/// call can take, so a call still in flight is not duplicated.
pub const STALE_IN_FLIGHT_NS: u64 = 600 * 1_000_000_000;

/// A recorded step.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The job the step belongs to.
    pub job_id: JobId,
    /// What to do.
    pub effect: Effect,
    /// Failed attempts so far.
    pub failures: u32,
    /// Not to be tried before this time.
    pub not_before_ns: u64,
    /// Whether a call for it is in flight (so no second call is started).
    pub in_flight: bool,
    /// The last failure, for operators.
    pub last_error: Option<String>,
}

/// The outbox over two stable maps: steps by sequence number, and each job's
/// pending step numbers in order.
pub struct Outbox<M: Memory> {
    steps: StableBTreeMap<u64, Cbor<Step>, M>,
    by_job: StableBTreeMap<(JobId, u64), (), M>,
}

impl<M: Memory> Outbox<M> {
    /// Opens the outbox kept in these memories.
    pub fn init(steps: M, by_job: M) -> Self {
        Self {
            steps: StableBTreeMap::init(steps),
            by_job: StableBTreeMap::init(by_job),
        }
    }

    /// Records a step; returns its sequence number.
    pub fn push(&mut self, job_id: JobId, effect: Effect) -> u64 {
        let seq = self.steps.last_key_value().map_or(0, |(k, _)| k + 1);
        let step = Step {
            job_id,
            effect,
            failures: 0,
            not_before_ns: 0,
            in_flight: false,
            last_error: None,
        };
        self.steps.insert(seq, Cbor(step));
        self.by_job.insert((job_id, seq), ());
        seq
    }

    /// Records a step that the caller is about to perform itself, marked in
    /// flight: if the caller never learns the answer (its callback trapped),
    /// the step goes stale and is handed out again like any other.
    pub fn push_in_flight(&mut self, job_id: JobId, effect: Effect, now_ns: u64) -> u64 {
        let seq = self.push(job_id, effect);
        if let Some(mut step) = self.get(seq) {
            step.in_flight = true;
            step.not_before_ns = now_ns.saturating_add(STALE_IN_FLIGHT_NS);
            self.steps.insert(seq, Cbor(step));
        }
        seq
    }

    /// Number of pending steps.
    pub fn len(&self) -> u64 {
        self.steps.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// A step by sequence number.
    pub fn get(&self, seq: u64) -> Option<Step> {
        self.steps.get(&seq).map(|c| c.0)
    }

    /// Whether a job has steps still pending.
    pub fn has_pending(&self, job_id: JobId) -> bool {
        self.by_job
            .keys_range((job_id, 0)..=(job_id, u64::MAX))
            .next()
            .is_some()
    }

    fn head_of(&self, job_id: JobId) -> Option<u64> {
        self.by_job
            .keys_range((job_id, 0)..=(job_id, u64::MAX))
            .next()
            .map(|(_, s)| s)
    }

    /// Up to `limit` steps ready to run now: the first pending step of each
    /// job, unless it is backing off or was handed out less than
    /// [`STALE_IN_FLIGHT_NS`] ago. Marks them in flight.
    pub fn take_ready(&mut self, now_ns: u64, limit: usize) -> Vec<(u64, Step)> {
        let mut ready = Vec::new();
        let mut seen_job = None;
        let heads: Vec<u64> = self
            .by_job
            .keys()
            .filter(|(job, _)| {
                let first = seen_job != Some(*job);
                seen_job = Some(*job);
                first
            })
            .map(|(_, seq)| seq)
            .collect();
        for seq in heads {
            if ready.len() == limit {
                break;
            }
            let Some(mut step) = self.get(seq) else {
                continue;
            };
            if step.not_before_ns > now_ns {
                continue;
            }
            if step.in_flight && step.effect.at_most_once() {
                // Handed out before and never answered: it may have been
                // delivered, and it must not be delivered twice.
                self.complete(seq);
                continue;
            }
            step.in_flight = true;
            step.not_before_ns = now_ns.saturating_add(STALE_IN_FLIGHT_NS);
            self.steps.insert(seq, Cbor(step.clone()));
            ready.push((seq, step));
        }
        ready
    }

    /// The other canister confirmed the step: it is done.
    pub fn complete(&mut self, seq: u64) {
        if let Some(step) = self.steps.remove(&seq) {
            self.by_job.remove(&(step.0.job_id, seq));
        }
    }

    /// The step failed for now (reject, unknown outcome): retry with backoff.
    pub fn retry_later(&mut self, now_ns: u64, seq: u64, error: String) {
        if let Some(mut step) = self.get(seq) {
            step.failures = step.failures.saturating_add(1);
            let backoff = BASE_BACKOFF_NS
                .saturating_mul(1u64 << step.failures.min(20))
                .min(MAX_BACKOFF_NS);
            step.not_before_ns = now_ns.saturating_add(backoff);
            step.in_flight = false;
            step.last_error = Some(error);
            self.steps.insert(seq, Cbor(step));
        }
    }

    /// After an upgrade no call is in flight any more: make every step
    /// eligible again (their keys make a repeated call harmless), except a
    /// step done at most once (a buyer's callback), which is dropped.
    pub fn reset_in_flight(&mut self) {
        let flying: Vec<u64> = self
            .steps
            .iter()
            .filter(|e| e.value().0.in_flight)
            .map(|e| *e.key())
            .collect();
        for seq in flying {
            if let Some(mut step) = self.get(seq) {
                if step.effect.at_most_once() {
                    self.complete(seq);
                    continue;
                }
                step.in_flight = false;
                step.not_before_ns = 0;
                self.steps.insert(seq, Cbor(step));
            }
        }
    }

    /// When the next step becomes ready (or a step in flight goes stale);
    /// `None` if nothing is pending.
    pub fn next_wake_ns(&self) -> Option<u64> {
        let mut seen_job = None;
        self.by_job
            .keys()
            .filter(|(job, _)| {
                let first = seen_job != Some(*job);
                seen_job = Some(*job);
                first
            })
            .filter_map(|(_, seq)| self.get(seq))
            .map(|s| s.not_before_ns)
            .min()
    }

    /// Whether the step `seq` is the next one of its job.
    pub fn is_head(&self, seq: u64) -> bool {
        self.get(seq)
            .is_some_and(|s| self.head_of(s.job_id) == Some(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;

    fn outbox() -> Outbox<VectorMemory> {
        Outbox::init(VectorMemory::default(), VectorMemory::default())
    }

    #[test]
    fn steps_of_a_job_run_in_order_one_at_a_time() {
        let mut o = outbox();
        let a1 = o.push(
            1,
            Effect::Release {
                seq: 0,
                provider: candid::Principal::anonymous(),
                amount: 5,
                fuel: None,
                fee: 0,
            },
        );
        let b1 = o.push(2, Effect::Settle);
        let a2 = o.push(1, Effect::Settle);
        let ready: Vec<u64> = o.take_ready(0, 10).into_iter().map(|(s, _)| s).collect();
        assert_eq!(ready, vec![a1, b1], "one step per job, the oldest first");
        assert!(
            o.take_ready(0, 10).is_empty(),
            "steps in flight are not handed out twice"
        );
        o.complete(a1);
        assert!(o.is_head(a2));
        assert_eq!(
            o.take_ready(0, 10)
                .into_iter()
                .map(|(s, _)| s)
                .collect::<Vec<_>>(),
            vec![a2]
        );
        o.complete(a2);
        o.complete(b1);
        assert!(o.is_empty());
        assert!(!o.has_pending(1));
    }

    #[test]
    fn failures_back_off_and_upgrade_resets_in_flight() {
        let mut o = outbox();
        let s = o.push(1, Effect::Settle);
        assert_eq!(o.take_ready(0, 10).len(), 1);
        o.retry_later(0, s, "escrow rejected".into());
        assert!(o.take_ready(BASE_BACKOFF_NS, 10).is_empty(), "backing off");
        assert_eq!(o.take_ready(2 * BASE_BACKOFF_NS, 10).len(), 1);
        assert!(
            o.take_ready(2 * BASE_BACKOFF_NS + 1, 10).is_empty(),
            "in flight"
        );
        assert_eq!(
            o.take_ready(2 * BASE_BACKOFF_NS + STALE_IN_FLIGHT_NS, 10)
                .len(),
            1,
            "stale: handed out again"
        );
        o.reset_in_flight();
        assert_eq!(o.next_wake_ns(), Some(0));
        let again = o.take_ready(0, 10);
        assert_eq!(again[0].1.failures, 1);
        assert_eq!(again[0].1.last_error.as_deref(), Some("escrow rejected"));
    }

    #[test]
    fn a_callback_handed_out_and_never_answered_is_not_made_again() {
        let callback = || Effect::Callback {
            method: "on_result".into(),
        };
        // Lost across an upgrade: dropped, while a keyed step is retried.
        let mut o = outbox();
        o.push(1, callback());
        let settle = o.push(2, Effect::Settle);
        assert_eq!(o.take_ready(0, 10).len(), 2);
        o.reset_in_flight();
        let again: Vec<u64> = o.take_ready(0, 10).into_iter().map(|(s, _)| s).collect();
        assert_eq!(again, vec![settle]);
        assert!(!o.has_pending(1));
        // Gone stale (its callback trapped): dropped, and the job's next step runs.
        let mut o = outbox();
        let cb2 = o.push(1, callback());
        let next = o.push(1, Effect::Settle);
        assert_eq!(o.take_ready(0, 10)[0].0, cb2);
        assert!(o.take_ready(STALE_IN_FLIGHT_NS - 1, 10).is_empty());
        assert!(o.take_ready(STALE_IN_FLIGHT_NS, 10).is_empty());
        assert!(o.get(cb2).is_none());
        assert_eq!(o.take_ready(STALE_IN_FLIGHT_NS, 10)[0].0, next);
        // A callback that was never handed out is made once, as usual.
        let mut o = outbox();
        o.push(1, callback());
        o.reset_in_flight();
        assert_eq!(o.take_ready(0, 10).len(), 1);
    }
}
