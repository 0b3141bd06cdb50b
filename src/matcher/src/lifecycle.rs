//! The job lifecycle as a pure state machine.
//!
//! Each transition checks who may make it and when, changes the job, and
//! returns the cross-canister [`Effect`]s it implies (lock, bond, release,
//! slash, settle...). The canister records the effects in its outbox before
//! making any call, so a trap or an unknown outcome never loses one, and each
//! effect carries the idempotency key the escrow or registry deduplicates on.
//!
//! Timing: a job assigned at `t` must be acknowledged by the provider's first
//! heartbeat before `t + interval + grace`. From the acknowledgement on, a
//! heartbeat is due every interval. A heartbeat more than half an interval
//! early is refused; one missing at `due + grace` is a missed deadline.
//!
//! Pay: a one-off job is billed by fuel. Each heartbeat reports the
//! attempt's cumulative fuel, which may not shrink, exceed the budget, or
//! grow faster than the offer's declared speed since the bond held; the
//! pay for the new fuel goes to the provider's *pending* balance in the
//! escrow. The result is a commitment (outcome, output hash, fuel used,
//! engine): the bill is the fuel used at the agreed price, and the job is
//! `Reported` while its challenge window runs; when the window closes the
//! job is final and the settle makes the pending pay claimable. An attempt
//! with no result by its deadline is slashed and its pending pay forfeited
//! back to the job, which returns to the book with its whole budget.
//!
//! Audit: each result of a one-off job is audited with the job's audit
//! probability (the market's minimum, or more if the buyer asks): the
//! matcher draws randomness and, if the draw says so, runs the job again on
//! another provider (an *audit run*, its own job record) and compares the
//! commitments. The challenge window waits for the verdict. An audit run
//! is paid nothing until the verdict, and then only if it sided with the
//! majority: its pay comes from the audited job's lock, which holds a
//! second budget for it. A disagreement is broken by a third run; the
//! side in the minority is slashed its whole bond and paid nothing. The
//! bond of an audited job covers its value divided by its audit
//! probability, so a lie's expected slash exceeds what it earns.
//!
//! A reserved slot is paid per interval instead: each accepted heartbeat
//! pays the interval just completed, at once. A job in a reservation is
//! paid nothing of its own (its slot is).

use candid::Principal;
use market_api::matcher::{
    AUDIT_ALWAYS_PPM, AuditVerdict, Commitment, JobResult, JobStatus, RunOutcome, attempt_secs,
    fuel_cost,
};
use market_api::prices::{PriceConversion, Ratio, XdrTerms};
use market_api::registry::RecordEvent;
use market_api::{JobId, OfferId, Tokens};
use serde::{Deserialize, Serialize};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Lifecycle parameters from the matcher's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Extra time after a due heartbeat before it counts as missed.
    pub grace_secs: u64,
    /// Stake bonded per job, in intervals' prices.
    pub bond_multiple: u32,
    /// Stake slashed per missed deadline, in intervals' prices.
    pub slash_multiple: u32,
    /// The smallest slash for a missed deadline.
    pub min_slash: Tokens,
    /// How long a result stays open to challenge.
    pub challenge_window_secs: u64,
    /// The least audit probability of a one-off job, in parts per million.
    pub min_audit_ppm: u32,
    /// How often each acknowledged replica of a service is probed.
    pub probe_interval_secs: u64,
    /// Failed probes in a row that count as a missed heartbeat deadline.
    pub probe_failures: u32,
    /// What one probe costs a service lease made now.
    pub probe_fee: Tokens,
    /// The market's fee for jobs and reservations submitted now, in parts
    /// per million of the provider's pay.
    pub market_fee_ppm: u32,
}

/// The terms of a one-off job billed by fuel.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuelTerms {
    /// The most fuel a run may use and be billed for.
    pub budget: u64,
    /// Highest price per billion fuel the buyer accepts.
    pub max_price_per_gfuel: Tokens,
    /// The bid's own deadline for one attempt, if it names one.
    pub deadline_secs: Option<u64>,
    /// The probability that a result is audited, in parts per million (0:
    /// never, as for an audit run, or a job from before audits).
    #[serde(default)]
    pub audit_ppm: u32,
    /// Whether this is an audit run: paid only at its audit's verdict,
    /// with no challenge window and no audit of its own.
    #[serde(default)]
    pub audit_run: bool,
}

/// The audit of a one-off job's result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Whether the buyer asked for it.
    pub disputed: bool,
    /// Whether the draw deciding it is still to come back.
    pub drawing: bool,
    /// The audit runs so far: the re-run, then the tie-break.
    pub runs: Vec<JobId>,
    /// Random bits from the draw, which pick the audit runs' providers.
    #[serde(default)]
    pub seed: u64,
    /// The verdict, once reached.
    pub verdict: Option<AuditVerdict>,
}

impl AuditRecord {
    /// Whether the audit still has to reach its verdict.
    pub fn pending(&self) -> bool {
        self.verdict.is_none()
    }
}

/// The current assignment of a job to a provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The provider running the job.
    pub provider: Principal,
    /// The offer whose slot it takes.
    pub offer_id: OfferId,
    /// Price per interval the provider is paid.
    pub price: Tokens,
    /// Counts assignments of this job, from 1.
    pub attempt: u32,
    /// When the provider acknowledged the job, if it did.
    pub started_at_ns: Option<u64>,
    /// When the next heartbeat is due (the acknowledgement, before it is made).
    pub due_ns: u64,
    /// Stake bonded in the registry for this assignment.
    pub bonded: Tokens,
    /// The price a missed deadline's slash is measured against: `price`, or
    /// for a job in a reserved slot (which is paid nothing of its own) the
    /// slot's price. Records from before it was kept read 0, and are
    /// slashed the minimum.
    #[serde(default)]
    pub stake_price: Tokens,
    /// Whether the registry has yet to confirm the bond. Until it does the
    /// assignment is not the provider's to act on: no heartbeat, result or
    /// payment, and no deadline runs. Records from before it was kept read
    /// `false`, as their bonds were taken before they could act.
    #[serde(default)]
    pub bond_pending: bool,
    /// The offer's declared speed, in fuel per second (fuel-billed jobs).
    #[serde(default)]
    pub fuel_per_sec: u64,
    /// Fuel reported by this attempt so far (heartbeats, then the result).
    #[serde(default)]
    pub fuel_reported: u64,
    /// When the bond held: the attempt's fuel and time count from here.
    #[serde(default)]
    pub counting_from_ns: Option<u64>,
    /// When the attempt's result is due (fuel-billed jobs, once the bond holds).
    #[serde(default)]
    pub result_due_ns: Option<u64>,
    /// Paid into the provider's pending balance by this attempt.
    #[serde(default)]
    pub pending_pay: Tokens,
    /// The market's fee held with `pending_pay` (returned with it by a
    /// forfeit).
    #[serde(default)]
    pub pending_fee: Tokens,
    /// Whether the offer's slot was already given back (a reported job
    /// keeps its assignment, and its bond, through the challenge window).
    #[serde(default)]
    pub slot_freed: bool,
    /// Heartbeats of this attempt accepted (each one on time: a late one
    /// finds the deadline handled).
    #[serde(default)]
    pub heartbeats: u32,
}

/// A job as the lifecycle sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct JobState {
    /// The job.
    pub id: JobId,
    /// Who pays.
    pub owner: Principal,
    /// Lifecycle state.
    pub status: JobStatus,
    /// Length of one interval.
    pub interval_secs: u64,
    /// Most intervals paid over the job's whole life.
    pub max_intervals: u32,
    /// Highest price per interval.
    pub max_price: Tokens,
    /// Re-queues allowed after provider failures.
    pub max_retries: u32,
    /// Re-queues used.
    pub retries_used: u32,
    /// Intervals paid so far, over all assignments.
    pub intervals_paid: u32,
    /// Amount released to providers so far.
    pub released: Tokens,
    /// Number of releases made so far (the next release's sequence number).
    pub release_seq: u64,
    /// The current assignment.
    pub assignment: Option<Assignment>,
    /// Providers that failed this job.
    pub failed_providers: Vec<Principal>,
    /// Number of assignments made so far.
    pub attempts: u32,
    /// The result, once reported.
    pub result: Option<JobResult>,
    /// The provider of the last assignment that ended, with its price, so a
    /// finished job still shows who ran it.
    #[serde(default)]
    pub last_assignment: Option<(Principal, Tokens)>,
    /// A one-off job's fuel terms; `None`: paid per interval (a reserved
    /// slot) or by its slot (a job in a reservation).
    #[serde(default)]
    pub fuel: Option<FuelTerms>,
    /// When the result's challenge window closes (while `Reported`).
    #[serde(default)]
    pub window_closes_at_ns: Option<u64>,
    /// The audit of the result, if one was drawn or asked for.
    #[serde(default)]
    pub audit: Option<AuditRecord>,
    /// For a price in XDR: the bid's terms, its lock, and how the current
    /// (or last) assignment's price converted.
    #[serde(default)]
    pub xdr: Option<XdrPricing>,
    /// The rate from the job's token to the stake ledger's smallest unit
    /// its bonds and slashes are valued at (`None`: the job pays in the
    /// stake ledger's token). Set when the funds are locked, and again at
    /// each assignment made while both valuations are known.
    #[serde(default)]
    pub stake_rate: Option<Ratio>,
    /// The market's fee the job pays, in parts per million of the
    /// provider's pay: the rate in force when it was submitted (for a
    /// reserved slot, its reservation's), never changed afterwards.
    #[serde(default)]
    pub fee_ppm: u32,
    /// The market's fee released with the pay so far (a forfeit takes
    /// back the fee on the pay it returns).
    #[serde(default)]
    pub fee_paid: Tokens,
}

/// How a job priced in XDR is paid in its token.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdrPricing {
    /// The bid's highest price in cycles, the rate its lock converted at
    /// and the buffer.
    pub terms: XdrTerms,
    /// What the lock holds, in the job's token.
    pub lock: Tokens,
    /// How the current (or last) assignment's price converted.
    pub conversion: Option<PriceConversion>,
}

/// A cross-canister step a transition requires, with its idempotency key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Lock the job's maximum cost from the buyer's balance (escrow `lock`),
    /// retried when `submit_job` could not learn the outcome.
    Lock {
        buyer: Principal,
        ledger: Principal,
        amount: Tokens,
        /// Bytes of the job's contents, charged the storage fee with the
        /// lock (absent from steps written before the fee existed: no fee).
        #[serde(default)]
        stored_bytes: Option<u64>,
    },
    /// Credit slashed tokens paid to `beneficiary`'s deposit account (escrow `notify_deposit`).
    NotifyDeposit {
        ledger: Principal,
        beneficiary: Principal,
    },
    /// Tell the buyer's callback method that the job finished, once, with a
    /// notice of bounded size (see `perform::notice`).
    Callback { method: String },
    /// Bond `amount` of the provider's stake (registry `bond`).
    Bond {
        key: StakeKey,
        provider: Principal,
        amount: Tokens,
    },
    /// Free a bond (registry `unbond`).
    Unbond { key: StakeKey },
    /// Pay a provider from the job's lock (escrow `release`): for `fuel`
    /// reported in all by the attempt, into its pending balance (claimable
    /// when the job settles); for an interval (`None`), claimable at once.
    Release {
        seq: u64,
        provider: Principal,
        amount: Tokens,
        #[serde(default)]
        fuel: Option<u64>,
        /// The market's fee leaving the lock with `amount` (absent from
        /// steps written before the fee existed: none).
        #[serde(default)]
        fee: Tokens,
    },
    /// Take a provider's pending pay back into the job's lock (escrow
    /// `forfeit`): its attempt delivered no result, or a wrong one.
    Forfeit { provider: Principal, attempt: u32 },
    /// Draw whether the result of `attempt` is audited (management
    /// canister `raw_rand`).
    DrawAudit { attempt: u32 },
    /// Record an audit's progress in the event log (no call).
    Announce { note: AuditNote },
    /// Add to the provider's track record (registry `record`).
    Record {
        key: StakeKey,
        provider: Principal,
        event: RecordEvent,
    },
    /// Slash a provider in favour of the owner (registry `slash`).
    Slash {
        key: StakeKey,
        provider: Principal,
        amount: Tokens,
        owner: Principal,
    },
    /// Return the rest of the lock to the owner (escrow `settle`).
    Settle,
    /// Give the offer's slot back.
    FreeSlot { offer_id: OfferId },
    /// Put the job back in the book.
    Requeue,
    /// Add `amount` to a reservation's lock as its extension `number` of
    /// `intervals` more per slot (escrow `extend_lock`), retried when
    /// `extend_reservation` could not learn the outcome.
    ExtendLock {
        number: u32,
        amount: Tokens,
        intervals: u32,
    },
    /// Probe a service replica's health path at `url` (an HTTPS outcall,
    /// management canister `http_request`) for the slot's `attempt`.
    Probe { attempt: u32, url: String },
    /// Record that a replica of the service got an endpoint or lost it, in
    /// the event log (no call).
    Endpoint {
        slot: u32,
        provider: Principal,
        endpoint: Option<String>,
        /// A TCP service's `host:port`, set and cleared with the endpoint.
        #[serde(default)]
        tcp_address: Option<String>,
    },
    /// Tell the service owner's callback `method` of a replica's new
    /// endpoint, once.
    ServiceNotice {
        method: String,
        notice: market_api::matcher::ServiceNotice,
    },
    /// Pay the lease's probes to the matcher's own escrow account (escrow
    /// `release` with [`PROBE_FEE_SEQ`]), before the lease's settle.
    ProbeFee { amount: Tokens },
    /// Read the rate of `ledger`'s token (the cycles minting canister's
    /// for the stake ledger, else its configured source); recorded in a
    /// queue of its own ([`rates_queue`]), never a job's.
    ReadRate { ledger: Principal },
    /// Run top-up `number` of the canisters' cycles (see
    /// [`crate::top_up`]); in the top-ups' own queue.
    TopUp { number: u64 },
}

/// The outbox queue of the reads of the `i`-th valued ledger's rate: ids
/// from the top of the range down, which no job reaches (jobs count up
/// from 1), one queue per ledger so a slow source delays no other.
pub fn rates_queue(i: usize) -> JobId {
    JobId::MAX - i as JobId
}

/// The release number of a service lease's probe fee: no slot's release
/// (`slot << 32 | n`, slots below 16) can have it.
pub const PROBE_FEE_SEQ: u64 = (u32::MAX as u64) << 32;

impl Effect {
    /// Numbers a slot's release within its reservation's lock: the slot in
    /// the high 32 bits of `seq`, the slot's own count in the low ones.
    /// Other effects are left as they are.
    pub fn number_in_slot(&mut self, slot: u32) {
        if let Effect::Release { seq, .. } = self {
            *seq |= u64::from(slot) << 32;
        }
    }

    /// Whether the step must happen at most once rather than at least once:
    /// a buyer's callback carries no idempotency key, so one whose call was
    /// made but never answered (an upgrade, a trap) is not made again.
    pub fn at_most_once(&self) -> bool {
        matches!(self, Effect::Callback { .. } | Effect::ServiceNotice { .. })
    }

    /// Whether the step, once done, may have paid the market's fee into
    /// the matcher's escrow balance: a lock with its storage fee, a
    /// release with a fee, a probe fee, or a settle (which pays the fees
    /// held with pending pay).
    pub fn may_pay_market(&self) -> bool {
        match self {
            Effect::Lock { stored_bytes, .. } => stored_bytes.is_some(),
            Effect::Release { fee, .. } => *fee > 0,
            Effect::ProbeFee { .. } | Effect::Settle => true,
            _ => false,
        }
    }
}

/// A step of an audit, for the event log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AuditNote {
    /// Audit run `run` started.
    Started { run: JobId, disputed: bool },
    /// The audit reached its verdict.
    Settled { verdict: AuditVerdict },
}

/// Why a provider's call was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The caller does not hold the job (or holds an older attempt).
    NotAssigned,
    /// The job is not running or assigned.
    NotActive(JobStatus),
    /// Too early for the next heartbeat.
    TooEarly { not_before_ns: u64 },
    /// The caller is not the owner.
    NotOwner,
    /// The provider's bond for this assignment is not confirmed yet.
    BondPending,
    /// The fuel reported is less than the attempt reported before.
    FuelDecreased { reported: u64 },
    /// The fuel reported is more than the job's budget.
    FuelOverBudget { budget: u64 },
    /// The fuel reported grew faster than the offer's declared speed allows.
    FuelTooFast { allowed: u64 },
    /// The result is already being audited, or was.
    Audited,
}

/// What a [`StakeKey`] names in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StakeOp {
    /// The stake bonded to an assignment (and freed by `unbond`).
    Bond,
    /// The slash of an assignment's missed deadline.
    Slash,
    /// The track record of an assignment that delivered a final result.
    Done,
    /// The track record of an assignment that missed a deadline.
    Missed,
    /// The track record of an audit of an assignment's result.
    Audit,
    /// The slash of an assignment whose result lost an audit.
    Caught,
}

/// The registry's idempotency key of one assignment's bond or slash: the
/// job and the attempt, as data. The registry sees its text form,
/// `job/{job}/bond/{attempt}` or `job/{job}/slash/{attempt}`; the outbox
/// stores that same text, so steps recorded before this type existed read
/// back unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StakeKey {
    /// The job.
    pub job_id: JobId,
    /// Bond or slash.
    pub op: StakeOp,
    /// The assignment (counted from 1 per job).
    pub attempt: u32,
}

impl std::fmt::Display for StakeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            StakeOp::Bond => "bond",
            StakeOp::Slash => "slash",
            StakeOp::Done => "done",
            StakeOp::Missed => "missed",
            StakeOp::Audit => "audit",
            StakeOp::Caught => "caught",
        };
        write!(f, "job/{}/{op}/{}", self.job_id, self.attempt)
    }
}

impl From<StakeKey> for String {
    fn from(key: StakeKey) -> String {
        key.to_string()
    }
}

impl TryFrom<String> for StakeKey {
    type Error = String;

    /// Reads the text form back (only stored steps are read this way).
    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("not a bond or slash key: {text:?}");
        let mut parts = text.split('/');
        let (Some("job"), Some(job), Some(op), Some(attempt), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        let op = match op {
            "bond" => StakeOp::Bond,
            "slash" => StakeOp::Slash,
            "done" => StakeOp::Done,
            "missed" => StakeOp::Missed,
            "audit" => StakeOp::Audit,
            "caught" => StakeOp::Caught,
            _ => return Err(bad()),
        };
        Ok(StakeKey {
            job_id: job.parse().map_err(|_| bad())?,
            op,
            attempt: attempt.parse().map_err(|_| bad())?,
        })
    }
}

/// Tests write expected keys in their text form.
#[cfg(test)]
impl From<&str> for StakeKey {
    fn from(text: &str) -> Self {
        StakeKey::try_from(text.to_string()).expect("a bond or slash key")
    }
}

/// The bond key of an assignment.
pub fn bond_key(job: JobId, attempt: u32) -> StakeKey {
    StakeKey {
        job_id: job,
        op: StakeOp::Bond,
        attempt,
    }
}

/// The slash key of an assignment's missed deadline.
pub fn slash_key(job: JobId, attempt: u32) -> StakeKey {
    StakeKey {
        job_id: job,
        op: StakeOp::Slash,
        attempt,
    }
}

/// The registry's key of a track-record entry for an assignment.
pub fn record_key(job: JobId, op: StakeOp, attempt: u32) -> StakeKey {
    StakeKey {
        job_id: job,
        op,
        attempt,
    }
}

/// The escrow lock key of a job.
pub fn lock_key(job: JobId) -> String {
    format!("job/{job}")
}

fn secs(s: u64) -> u64 {
    s.saturating_mul(NANOS_PER_SEC)
}

impl JobState {
    /// A new open one-off job of `owner`, billed by fuel on the terms of
    /// `spec`, audited with the probability it asks for, or the market's
    /// least (`min_audit_ppm`) if that is more.
    pub fn new(
        id: JobId,
        owner: Principal,
        spec: &market_api::matcher::JobSpec,
        min_audit_ppm: u32,
    ) -> Self {
        let mut state = Self::per_interval(id, owner, spec, 0, 0);
        let audit_ppm = spec
            .audit_ppm
            .unwrap_or(0)
            .max(min_audit_ppm)
            .min(AUDIT_ALWAYS_PPM);
        state.fuel = Some(FuelTerms {
            budget: spec.limits.fuel,
            max_price_per_gfuel: spec.max_price_per_gfuel,
            deadline_secs: spec.deadline_secs,
            audit_ppm,
            audit_run: false,
        });
        state
    }

    /// An audit run `id` of the job `of`: the same owner and terms, paid
    /// from `of`'s lock at its verdict, never by `providers` (who ran or
    /// audited it already).
    pub fn audit_run(id: JobId, of: &JobState, providers: Vec<Principal>) -> Self {
        let mut state = of.clone();
        state.id = id;
        state.status = JobStatus::Open;
        state.retries_used = 0;
        state.intervals_paid = 0;
        state.released = 0;
        state.fee_paid = 0;
        state.release_seq = 0;
        state.assignment = None;
        state.failed_providers = providers;
        state.attempts = 0;
        state.result = None;
        state.last_assignment = None;
        state.window_closes_at_ns = None;
        state.audit = None;
        if let Some(x) = state.xdr.as_mut() {
            x.conversion = None;
        }
        if let Some(f) = state.fuel.as_mut() {
            f.audit_ppm = 0;
            f.audit_run = true;
        }
        state
    }

    /// Whether this is an audit run.
    pub fn is_audit_run(&self) -> bool {
        self.fuel.is_some_and(|f| f.audit_run)
    }

    /// A new open job of `owner` paid per interval: at most `max_intervals`
    /// at up to `max_price` each (a reserved slot; a job in a reservation
    /// runs for at most `max_intervals` and pays nothing, `max_price` 0).
    pub fn per_interval(
        id: JobId,
        owner: Principal,
        spec: &market_api::matcher::JobSpec,
        max_intervals: u32,
        max_price: Tokens,
    ) -> Self {
        JobState {
            id,
            owner,
            status: JobStatus::Open,
            interval_secs: spec.interval_secs,
            max_intervals,
            max_price,
            max_retries: spec.max_retries,
            retries_used: 0,
            intervals_paid: 0,
            released: 0,
            release_seq: 0,
            assignment: None,
            failed_providers: vec![],
            attempts: 0,
            result: None,
            last_assignment: None,
            fuel: None,
            window_closes_at_ns: None,
            audit: None,
            xdr: None,
            stake_rate: None,
            fee_ppm: 0,
            fee_paid: 0,
        }
    }

    /// The maximum cost the buyer's lock must cover: a one-off job's
    /// budget at its highest price, twice if it may be audited (for its
    /// run and the audit's).
    pub fn max_cost(&self) -> Option<Tokens> {
        match self.fuel {
            Some(f) => market_api::matcher::fuel_cost_ceil(f.budget, f.max_price_per_gfuel)?
                .checked_mul(if f.audit_ppm > 0 { 2 } else { 1 }),
            None => self.max_price.checked_mul(Tokens::from(self.max_intervals)),
        }
    }

    fn check_holder(&self, provider: Principal, attempt: u32) -> Result<&Assignment, Refusal> {
        if !matches!(self.status, JobStatus::Assigned | JobStatus::Running) {
            return Err(Refusal::NotActive(self.status));
        }
        match &self.assignment {
            Some(a) if a.provider == provider && a.attempt == attempt => Ok(a),
            _ => Err(Refusal::NotAssigned),
        }
    }

    /// Matches the open job to an offer at `price` (per billion fuel for
    /// a fuel-billed job, else per interval), declaring `fuel_per_sec`.
    ///
    /// The stake answering for the attempt is measured against the job's
    /// value: a fuel-billed job's whole budget at the agreed price, else
    /// one interval's price (see [`bond_for`]), in the stake ledger's
    /// smallest unit (converted at [`JobState::stake_rate`], rounded up).
    pub fn assign(
        &mut self,
        p: &Params,
        now_ns: u64,
        provider: Principal,
        offer_id: OfferId,
        price: Tokens,
        fuel_per_sec: u64,
    ) -> Vec<Effect> {
        debug_assert_eq!(self.status, JobStatus::Open);
        self.attempts += 1;
        let stake_rate = self.stake_rate;
        let in_stake = |v: Tokens| match stake_rate {
            Some(r) => r.ceil(v).unwrap_or(Tokens::MAX),
            None => v,
        };
        let (stake_price, bonded) = match self.fuel {
            Some(f) => {
                let value = in_stake(fuel_cost(f.budget, price).unwrap_or(Tokens::MAX));
                (value, bond_for(p, value, f.audit_ppm))
            }
            None => {
                let value = in_stake(price);
                (value, value.saturating_mul(Tokens::from(p.bond_multiple)))
            }
        };
        self.assignment = Some(Assignment {
            provider,
            offer_id,
            price,
            attempt: self.attempts,
            started_at_ns: None,
            due_ns: now_ns.saturating_add(secs(self.interval_secs)),
            bonded,
            stake_price,
            bond_pending: bonded > 0,
            fuel_per_sec,
            fuel_reported: 0,
            counting_from_ns: None,
            result_due_ns: None,
            pending_pay: 0,
            pending_fee: 0,
            slot_freed: false,
            heartbeats: 0,
        });
        self.status = JobStatus::Assigned;
        if bonded == 0 {
            // A job in a reservation's slot: the slot's own bond backs it.
            return vec![];
        }
        vec![Effect::Bond {
            key: bond_key(self.id, self.attempts),
            provider,
            amount: bonded,
        }]
    }

    /// Matches the queued job to a reserved slot whose holder is paid
    /// `slot_price` per interval: the job pays nothing and bonds nothing of
    /// its own (the slot does), but its holder answers for a missed
    /// deadline at the slot's price.
    pub fn assign_in_slot(
        &mut self,
        p: &Params,
        now_ns: u64,
        provider: Principal,
        slot_id: JobId,
        slot_price: Tokens,
    ) -> Vec<Effect> {
        let effects = self.assign(p, now_ns, provider, slot_id, 0, 0);
        if let Some(a) = self.assignment.as_mut() {
            a.stake_price = slot_price;
        }
        effects
    }

    /// Whether the current assignment's deadline has passed by `now_ns`.
    pub fn past_deadline(&self, p: &Params, now_ns: u64) -> bool {
        self.deadline_ns(p).is_some_and(|d| now_ns >= d)
    }

    /// The next deadline of the job: by which the current assignment must
    /// heartbeat, or report its result (none while its bond is pending: the
    /// provider can't act until it holds); or, once reported, when the
    /// challenge window closes (none while an audit is pending: the window
    /// waits for its verdict; none for an audit run, which waits for its
    /// audit's).
    pub fn deadline_ns(&self, p: &Params) -> Option<u64> {
        let a = self.assignment.as_ref()?;
        if self.status == JobStatus::Reported {
            if self.audit.as_ref().is_some_and(AuditRecord::pending) {
                return None;
            }
            return self.window_closes_at_ns;
        }
        if !matches!(self.status, JobStatus::Assigned | JobStatus::Running) || a.bond_pending {
            return None;
        }
        let grace = secs(p.grace_secs);
        let heartbeat = a.due_ns.saturating_add(grace);
        Some(match a.result_due_ns {
            Some(result) => heartbeat.min(result.saturating_add(grace)),
            None => heartbeat,
        })
    }

    /// The registry confirmed the bond of `attempt`: the provider may act
    /// on the job from now, its acknowledgement is due an interval later
    /// (never earlier than an interval after the assignment), and a
    /// fuel-billed job's time and fuel start counting.
    /// Returns whether this changed anything.
    pub fn bond_held(&mut self, now_ns: u64, attempt: u32) -> bool {
        let interval = secs(self.interval_secs);
        let fuel = self.fuel;
        let interval_secs = self.interval_secs;
        match self.assignment.as_mut() {
            Some(a) if a.attempt == attempt && a.bond_pending => {
                a.bond_pending = false;
                a.due_ns = a.due_ns.max(now_ns.saturating_add(interval));
                a.counting_from_ns = Some(now_ns);
                a.result_due_ns = fuel.map(|f| {
                    let limit =
                        attempt_secs(f.budget, a.fuel_per_sec, f.deadline_secs, interval_secs);
                    now_ns.saturating_add(secs(limit))
                });
                true
            }
            _ => false,
        }
    }

    /// The most fuel the current assignment may have burnt by `now_ns`:
    /// its declared speed times the seconds since its bond held, within
    /// the budget.
    pub fn fuel_allowed(&self, now_ns: u64) -> u64 {
        let (Some(a), Some(f)) = (&self.assignment, self.fuel) else {
            return 0;
        };
        let elapsed = now_ns.saturating_sub(a.counting_from_ns.unwrap_or(now_ns));
        let allowed = u128::from(a.fuel_per_sec) * u128::from(elapsed) / u128::from(NANOS_PER_SEC);
        u64::try_from(allowed).unwrap_or(u64::MAX).min(f.budget)
    }

    /// Checks the cumulative fuel an attempt reports against what it
    /// reported before and the budget (and, for a heartbeat, the speed).
    fn check_fuel(&self, a: &Assignment, fuel: u64, now_ns: Option<u64>) -> Result<(), Refusal> {
        let Some(f) = self.fuel else { return Ok(()) };
        if fuel < a.fuel_reported {
            return Err(Refusal::FuelDecreased {
                reported: a.fuel_reported,
            });
        }
        if fuel > f.budget {
            return Err(Refusal::FuelOverBudget { budget: f.budget });
        }
        if let Some(now_ns) = now_ns {
            let allowed = self.fuel_allowed(now_ns);
            if fuel > allowed {
                return Err(Refusal::FuelTooFast { allowed });
            }
        }
        Ok(())
    }

    /// Records `fuel` as the attempt's cumulative fuel and returns the
    /// release of what the new fuel earns, into the provider's pending
    /// balance (none if it earns nothing, or for an audit run, which is
    /// owed it until its audit's verdict). A per-interval job pays by
    /// the interval: the fuel its holder reports earns nothing.
    fn pay_fuel(&mut self, fuel: u64) -> Option<Effect> {
        self.fuel?;
        let audit_run = self.is_audit_run();
        let a = self.assignment.as_mut()?;
        let before = fuel_cost(a.fuel_reported, a.price).unwrap_or(Tokens::MAX);
        let after = fuel_cost(fuel, a.price).unwrap_or(Tokens::MAX);
        a.fuel_reported = fuel;
        let amount = after.saturating_sub(before);
        if amount == 0 {
            return None;
        }
        a.pending_pay = a.pending_pay.saturating_add(amount);
        if audit_run {
            return None;
        }
        let provider = a.provider;
        let release = self.release(provider, amount, Some(fuel));
        if let (Effect::Release { fee, .. }, Some(a)) = (&release, self.assignment.as_mut()) {
            a.pending_fee = a.pending_fee.saturating_add(*fee);
        }
        Some(release)
    }

    /// The market's fee on one release of `amount` at the job's rate
    /// (rounded down, so the fees never exceed what the lock holds for
    /// them).
    pub fn fee_on(&self, amount: Tokens) -> Tokens {
        // No overflow for a rate within the configuration's bound.
        market_api::matcher::market_fee_floor(amount, self.fee_ppm).unwrap_or(0)
    }

    /// The next release of the job: numbered, and counted as released
    /// with the market's fee on it.
    fn release(&mut self, provider: Principal, amount: Tokens, fuel: Option<u64>) -> Effect {
        let seq = self.release_seq;
        self.release_seq += 1;
        self.released = self.released.saturating_add(amount);
        let fee = self.fee_on(amount);
        self.fee_paid = self.fee_paid.saturating_add(fee);
        Effect::Release {
            seq,
            provider,
            amount,
            fuel,
            fee,
        }
    }

    /// Takes the attempt's pending pay back into the lock: it delivered no
    /// result, or a wrong one. (An audit run was released nothing.)
    fn forfeit(&mut self, a: &Assignment) -> Option<Effect> {
        if self.fuel.is_none() || self.is_audit_run() || a.pending_pay == 0 {
            return None;
        }
        self.released = self.released.saturating_sub(a.pending_pay);
        self.fee_paid = self.fee_paid.saturating_sub(a.pending_fee);
        Some(Effect::Forfeit {
            provider: a.provider,
            attempt: a.attempt,
        })
    }

    /// Whether the current assignment waits for its bond.
    pub fn bond_pending(&self) -> bool {
        self.assignment.as_ref().is_some_and(|a| a.bond_pending)
    }

    /// The holder of `attempt`, once its bond holds: who may be paid or
    /// report a result.
    fn check_bonded_holder(
        &self,
        provider: Principal,
        attempt: u32,
    ) -> Result<&Assignment, Refusal> {
        let a = self.check_holder(provider, attempt)?;
        if a.bond_pending {
            return Err(Refusal::BondPending);
        }
        Ok(a)
    }

    /// A heartbeat from `provider` for `attempt`, reporting the attempt's
    /// cumulative `fuel`: acknowledges an assigned job, or keeps a running
    /// one alive. A fuel-billed job pays the newly reported fuel into the
    /// provider's pending balance; a reserved slot the interval just
    /// completed.
    pub fn heartbeat(
        &mut self,
        now_ns: u64,
        provider: Principal,
        attempt: u32,
        fuel: u64,
    ) -> Result<Vec<Effect>, Refusal> {
        let interval = secs(self.interval_secs);
        let a = self.check_bonded_holder(provider, attempt)?.clone();
        self.check_fuel(&a, fuel, Some(now_ns))?;
        let mut effects = vec![];
        if self.status == JobStatus::Assigned {
            let a = self.assignment.as_mut().expect("checked");
            a.heartbeats = a.heartbeats.saturating_add(1);
            a.started_at_ns = Some(now_ns);
            a.due_ns = now_ns.saturating_add(interval);
            self.status = JobStatus::Running;
            effects.extend(self.pay_fuel(fuel));
            return Ok(effects);
        }
        let not_before = market_api::matcher::heartbeat_window_opens_ns(a.due_ns, interval);
        if now_ns < not_before {
            return Err(Refusal::TooEarly {
                not_before_ns: not_before,
            });
        }
        if self.fuel.is_some() {
            effects.extend(self.pay_fuel(fuel));
        } else if self.intervals_paid < self.max_intervals {
            effects.extend(self.pay(a.provider, a.price));
            if self.intervals_paid >= self.max_intervals {
                // Its paid time is used up: a per-interval job (a reserved
                // slot, a service's replica) ends with the heartbeat that
                // pays its last interval, rather than being held unpaid
                // until its holder stops heartbeating.
                effects.extend(self.finish(JobStatus::Expired));
                return Ok(effects);
            }
        }
        let a = self.assignment.as_mut().expect("checked");
        a.due_ns = a.due_ns.saturating_add(interval);
        a.heartbeats = a.heartbeats.saturating_add(1);
        Ok(effects)
    }

    /// Counts one interval as paid; returns the release unless the price is
    /// zero (a job in a reservation's slot, which the slot pays for).
    fn pay(&mut self, provider: Principal, price: Tokens) -> Option<Effect> {
        self.intervals_paid += 1;
        if price == 0 {
            return None;
        }
        Some(self.release(provider, price, None))
    }

    fn unbond(&self, a: &Assignment) -> Option<Effect> {
        (a.bonded > 0).then(|| Effect::Unbond {
            key: bond_key(self.id, a.attempt),
        })
    }

    /// Ends the job for good with `status` (a reservation ending takes its
    /// queued and running jobs with it).
    pub fn end(&mut self, status: JobStatus) -> Vec<Effect> {
        self.finish(status)
    }

    fn finish(&mut self, status: JobStatus) -> Vec<Effect> {
        let mut effects = vec![];
        if let Some(a) = self.assignment.take() {
            self.last_assignment = Some((a.provider, a.price));
            effects.extend(self.unbond(&a));
            if !a.slot_freed {
                effects.push(Effect::FreeSlot {
                    offer_id: a.offer_id,
                });
            }
        }
        self.window_closes_at_ns = None;
        self.status = status;
        effects.push(Effect::Settle);
        effects
    }

    /// The provider's result. A fuel-billed job's result must report at
    /// least the fuel its heartbeats did and at most the budget; the rest
    /// of its bill goes to the provider's pending balance, the provider's
    /// slot is given back, the challenge window opens (the bond holds
    /// until it closes) and, if the job may be audited, the draw is made.
    /// An audit run's result waits for its audit's verdict instead. Any
    /// other job pays the interval in progress (at least one interval of
    /// work is paid once acknowledged) and settles.
    pub fn submit_result(
        &mut self,
        p: &Params,
        now_ns: u64,
        provider: Principal,
        attempt: u32,
        result: JobResult,
    ) -> Result<Vec<Effect>, Refusal> {
        let a = self.check_bonded_holder(provider, attempt)?.clone();
        if let Some(f) = self.fuel {
            self.check_fuel(&a, result.fuel_used, None)?;
            let mut effects: Vec<Effect> = self.pay_fuel(result.fuel_used).into_iter().collect();
            self.result = Some(result);
            self.status = JobStatus::Reported;
            if !f.audit_run {
                self.window_closes_at_ns =
                    Some(now_ns.saturating_add(secs(p.challenge_window_secs)));
            }
            let a = self.assignment.as_mut().expect("checked");
            a.slot_freed = true;
            effects.push(Effect::FreeSlot {
                offer_id: a.offer_id,
            });
            if f.audit_ppm > 0 && self.audit.is_none() {
                self.audit = Some(AuditRecord {
                    disputed: false,
                    drawing: true,
                    runs: vec![],
                    seed: 0,
                    verdict: None,
                });
                effects.push(Effect::DrawAudit { attempt });
            }
            return Ok(effects);
        }
        let mut effects = vec![];
        let started = a.started_at_ns.unwrap_or(now_ns);
        let interval = secs(self.interval_secs).max(1);
        // Intervals of this assignment begun by now (at least one).
        let begun = (now_ns.saturating_sub(started) / interval).saturating_add(1);
        let paid_this = (a.due_ns.saturating_sub(started) / interval).saturating_sub(1);
        if begun > paid_this && self.intervals_paid < self.max_intervals {
            effects.extend(self.pay(a.provider, a.price));
        }
        let ok = matches!(result.outcome, RunOutcome::Exited { code: 0 });
        self.result = Some(result);
        effects.extend(self.finish(if ok {
            JobStatus::Succeeded
        } else {
            JobStatus::Failed
        }));
        Ok(effects)
    }

    /// The owner cancels: work already reported (fuel, or intervals) stays
    /// paid, the rest is refunded. A reported job can't be cancelled: its
    /// result is in.
    pub fn cancel(&mut self, caller: Principal) -> Result<Vec<Effect>, Refusal> {
        if caller != self.owner {
            return Err(Refusal::NotOwner);
        }
        if self.status.is_terminal() || self.status == JobStatus::Reported {
            return Err(Refusal::NotActive(self.status));
        }
        Ok(self.finish(JobStatus::Cancelled))
    }

    /// The holder gives the job back before its deadline (a node shutting
    /// down for maintenance): nothing is slashed, no retry is used, and the
    /// job returns to the book, never to be matched with this provider
    /// again. A fuel-billed attempt delivered nothing, so its pending pay
    /// is forfeited and the job keeps its whole budget; a per-interval job
    /// keeps the intervals already heartbeated paid, and expires once they
    /// are used up.
    pub fn hand_back(&mut self, provider: Principal, attempt: u32) -> Result<Vec<Effect>, Refusal> {
        let a = self.check_holder(provider, attempt)?.clone();
        self.failed_providers.push(a.provider);
        if self.fuel.is_none() && self.intervals_paid >= self.max_intervals {
            return Ok(self.finish(JobStatus::Expired));
        }
        self.assignment = None;
        self.status = JobStatus::Open;
        let mut effects: Vec<Effect> = self.forfeit(&a).into_iter().collect();
        effects.extend(self.unbond(&a));
        effects.push(Effect::FreeSlot {
            offer_id: a.offer_id,
        });
        effects.push(Effect::Requeue);
        Ok(effects)
    }

    /// The deadline of the current assignment passed without a heartbeat.
    /// Returns no effects if `attempt` is stale (the deadline was already
    /// handled, or the job moved on), so each deadline is handled once.
    pub fn deadline_passed(&mut self, p: &Params, now_ns: u64, attempt: u32) -> Vec<Effect> {
        let Some(deadline) = self.deadline_ns(p) else {
            return vec![];
        };
        let Some(a) = self.assignment.clone() else {
            return vec![];
        };
        if a.attempt != attempt || now_ns < deadline {
            return vec![];
        }
        if self.status == JobStatus::Reported {
            // The challenge window closed: the result is final, the
            // pending pay becomes claimable with the settle, and the
            // provider's record counts the job.
            let ok = self
                .result
                .as_ref()
                .is_some_and(|r| matches!(r.outcome, RunOutcome::Exited { code: 0 }));
            let overturned = self
                .audit
                .as_ref()
                .is_some_and(|x| x.verdict == Some(AuditVerdict::Overturned));
            let mut effects = vec![];
            if !overturned {
                effects.push(Effect::Record {
                    key: record_key(self.id, StakeOp::Done, a.attempt),
                    provider: a.provider,
                    event: RecordEvent::JobCompleted {
                        heartbeats_on_time: a.heartbeats,
                    },
                });
            }
            effects.extend(self.finish(if ok {
                JobStatus::Succeeded
            } else {
                JobStatus::Failed
            }));
            return effects;
        }
        self.missed(p, a)
    }

    /// The holder of `attempt`, a service's replica, failed the chain's
    /// probes of its health path (`probe_failures` in a row): handled
    /// exactly as a missed heartbeat deadline. No effects if `attempt` is
    /// not the running attempt.
    pub fn probes_failed(&mut self, p: &Params, attempt: u32) -> Vec<Effect> {
        let Some(a) = self.assignment.clone() else {
            return vec![];
        };
        if a.attempt != attempt || self.status != JobStatus::Running {
            return vec![];
        }
        self.missed(p, a)
    }

    /// The holder of assignment `a` failed it (a missed deadline, failed
    /// probes): slashed and recorded, its pending pay forfeited, and the
    /// job matched anew while retries and budget are left, else failed. A
    /// per-interval job whose paid time is used up expires instead.
    fn missed(&mut self, p: &Params, a: Assignment) -> Vec<Effect> {
        if self.fuel.is_none()
            && self.intervals_paid >= self.max_intervals
            && self.status == JobStatus::Running
        {
            // The paid time is used up: the job expires; the provider did
            // its paid work and is not slashed.
            return self.finish(JobStatus::Expired);
        }
        // Never below the floor: a slash at or below the ledger's fee would
        // move nothing, and a job in a reserved slot has no price of its own.
        let amount = a
            .stake_price
            .saturating_mul(Tokens::from(p.slash_multiple))
            .max(p.min_slash);
        let mut effects: Vec<Effect> = (amount > 0)
            .then(|| Effect::Slash {
                key: slash_key(self.id, a.attempt),
                provider: a.provider,
                amount,
                owner: self.owner,
            })
            .into_iter()
            .collect();
        self.failed_providers.push(a.provider);
        effects.push(Effect::Record {
            key: record_key(self.id, StakeOp::Missed, a.attempt),
            provider: a.provider,
            event: RecordEvent::DeadlineMissed,
        });
        effects.extend(self.forfeit(&a));
        let budget_left = self.fuel.is_some() || self.intervals_paid < self.max_intervals;
        if self.retries_used < self.max_retries && budget_left {
            self.retries_used += 1;
            self.assignment = None;
            self.status = JobStatus::Open;
            effects.extend(self.unbond(&a));
            effects.push(Effect::FreeSlot {
                offer_id: a.offer_id,
            });
            effects.push(Effect::Requeue);
        } else {
            effects.extend(self.finish(JobStatus::Failed));
        }
        effects
    }
}

/// The bond answering for a fuel-billed attempt worth `value`: the larger
/// of `value` times the bond multiple and `value` divided by the audit
/// probability (`audit_ppm` parts per million, rounded up), and never below
/// the smallest slash. A result that loses an audit is slashed the whole
/// bond, so a lie audited with probability q loses at least `value` in
/// expectation: more than it can earn.
pub fn bond_for(p: &Params, value: Tokens, audit_ppm: u32) -> Tokens {
    let by_multiple = value.saturating_mul(Tokens::from(p.bond_multiple));
    let by_audit = match audit_ppm {
        0 => 0,
        ppm => value
            .checked_mul(Tokens::from(AUDIT_ALWAYS_PPM))
            .map_or(Tokens::MAX, |v| v.div_ceil(Tokens::from(ppm))),
    };
    by_multiple.max(by_audit).max(p.min_slash)
}

/// The random bits of a draw that pick the audit runs' providers (its
/// bytes 8 to 15; the first eight decide whether to audit).
pub fn seed_of(randomness: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    for (b, r) in bytes.iter_mut().zip(randomness.iter().skip(8)) {
        *b = *r;
    }
    u64::from_le_bytes(bytes)
}

/// Reads a draw of `randomness` as a number below one million, for
/// comparing with a probability in parts per million.
pub fn draw_ppm(randomness: &[u8]) -> u32 {
    let mut bytes = [0u8; 8];
    for (b, r) in bytes.iter_mut().zip(randomness) {
        *b = *r;
    }
    (u64::from_le_bytes(bytes) % u64::from(AUDIT_ALWAYS_PPM)) as u32
}

/// Audits: the draw, disputes, and the ends of an audit's runs.
impl JobState {
    /// The draw for the result of `attempt` came back with `randomness`:
    /// returns whether the result is audited (`None`: no draw was waiting,
    /// as when it came back twice). A result not drawn for audit has no
    /// audit, and its window runs; the buyer may still dispute it.
    pub fn audit_drawn(&mut self, attempt: u32, randomness: &[u8]) -> Option<bool> {
        let ppm = self.fuel?.audit_ppm;
        if self.status != JobStatus::Reported || self.assignment.as_ref()?.attempt != attempt {
            return None;
        }
        let audit = self.audit.as_mut().filter(|x| x.drawing)?;
        audit.drawing = false;
        audit.seed = seed_of(randomness);
        let selected = audit.disputed || draw_ppm(randomness) < ppm;
        if !selected {
            self.audit = None;
        }
        Some(selected)
    }

    /// The owner disputes the result while its challenge window is open:
    /// it is audited, paid from the lock like any audit, once the draw
    /// that picks its auditor comes back.
    pub fn dispute(&mut self, caller: Principal, now_ns: u64) -> Result<Vec<Effect>, Refusal> {
        if caller != self.owner {
            return Err(Refusal::NotOwner);
        }
        let window_open = self.window_closes_at_ns.is_some_and(|c| now_ns < c);
        let auditable = self.fuel.is_some_and(|f| f.audit_ppm > 0);
        if self.status != JobStatus::Reported || !auditable || !window_open {
            return Err(Refusal::NotActive(self.status));
        }
        if self.audit.is_some() {
            return Err(Refusal::Audited);
        }
        self.audit = Some(AuditRecord {
            disputed: true,
            drawing: true,
            runs: vec![],
            seed: 0,
            verdict: None,
        });
        let attempt = self.assignment.as_ref().map_or(0, |a| a.attempt);
        Ok(vec![Effect::DrawAudit { attempt }])
    }

    /// The commitment of the reported result, while it stands to be compared.
    pub fn commitment(&self) -> Option<Commitment> {
        if self.status != JobStatus::Reported {
            return None;
        }
        self.result.as_ref().map(JobResult::commitment)
    }

    /// The result lost its audit: the provider is slashed its whole bond
    /// (never below the floor) in favour of the owner, its record counts
    /// the failure, and its pending pay is forfeited. An audit run ends
    /// failed; the job keeps its assignment (and frees its bond when its
    /// window closes).
    pub fn reject(&mut self, p: &Params) -> Vec<Effect> {
        let Some(a) = self.assignment.clone() else {
            return vec![];
        };
        let mut effects = vec![
            Effect::Slash {
                key: record_key(self.id, StakeOp::Caught, a.attempt),
                provider: a.provider,
                amount: a.bonded.max(p.min_slash),
                owner: self.owner,
            },
            Effect::Record {
                key: record_key(self.id, StakeOp::Audit, a.attempt),
                provider: a.provider,
                event: RecordEvent::AuditFailed,
            },
        ];
        effects.extend(self.forfeit(&a));
        if let Some(held) = self.assignment.as_mut() {
            held.pending_pay = 0;
            held.pending_fee = 0;
        }
        if self.is_audit_run() {
            self.failed_providers.push(a.provider);
            effects.extend(self.finish(JobStatus::Failed));
        }
        effects
    }

    /// Ends a reported audit run at its audit's verdict. If it sided with
    /// the verdict (`paid`) its record counts the job and the returned pay
    /// (provider, amount, fuel) is owed it from the audited job's lock;
    /// otherwise it is owed nothing and counts nothing.
    pub fn end_audit_run(&mut self, paid: bool) -> (Vec<Effect>, Option<(Principal, Tokens, u64)>) {
        let Some(a) = self.assignment.clone() else {
            return (vec![], None);
        };
        let mut effects = vec![];
        let mut owed = None;
        if paid {
            effects.push(Effect::Record {
                key: record_key(self.id, StakeOp::Done, a.attempt),
                provider: a.provider,
                event: RecordEvent::JobCompleted {
                    heartbeats_on_time: a.heartbeats,
                },
            });
            owed = Some((a.provider, a.pending_pay, a.fuel_reported));
        }
        effects.extend(self.finish(if paid {
            JobStatus::Succeeded
        } else {
            JobStatus::Failed
        }));
        (effects, owed)
    }

    /// Pays an audit run's provider what it is owed, from this job's lock
    /// into its pending balance (claimable when this job settles).
    pub fn pay_auditor(
        &mut self,
        provider: Principal,
        amount: Tokens,
        fuel: u64,
    ) -> Option<Effect> {
        (amount > 0).then(|| self.release(provider, amount, Some(fuel)))
    }

    /// The audit reached `verdict` over `runs`: the result stands, or
    /// (overturned, after [`JobState::reject`]) is replaced by the
    /// majority's `result`. The challenge window runs on from here.
    pub fn audit_settled(
        &mut self,
        verdict: AuditVerdict,
        runs: Vec<JobId>,
        result: Option<JobResult>,
    ) -> Vec<Effect> {
        let mut effects = vec![];
        if verdict == AuditVerdict::Agreed
            && let Some(a) = &self.assignment
        {
            effects.push(Effect::Record {
                key: record_key(self.id, StakeOp::Audit, a.attempt),
                provider: a.provider,
                event: RecordEvent::AuditPassed,
            });
        }
        if let Some(result) = result {
            self.result = Some(result);
        }
        if let Some(audit) = self.audit.as_mut() {
            audit.verdict = Some(verdict);
            audit.runs = runs;
        }
        effects.push(Effect::Announce {
            note: AuditNote::Settled { verdict },
        });
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The scenario tests' market with a shorter grace, a larger bond and
    /// a smaller slash.
    const P: Params = Params {
        grace_secs: 10,
        bond_multiple: 3,
        slash_multiple: 2,
        ..crate::tests::market::P
    };
    /// The fuel-billed tests' declared speed: a tenth of a billion fuel a second.
    const SPEED: u64 = 100_000_000;
    const G: u64 = market_api::matcher::GFUEL;
    const S: u64 = NANOS_PER_SEC;

    fn owner() -> Principal {
        Principal::from_slice(&[1])
    }

    fn provider(n: u8) -> Principal {
        Principal::from_slice(&[2, n])
    }

    /// Job 7 paid per interval (as a reserved slot is): at most
    /// `max_intervals` at up to 100 each.
    fn job(max_intervals: u32, max_retries: u32) -> JobState {
        let spec = crate::tests::market::spec(100, max_retries);
        JobState::per_interval(7, owner(), &spec, max_intervals, 100)
    }

    /// Job 7 billed by fuel: a budget of `gfuel` billion fuel at up to 100
    /// per billion, heartbeats every 60 s, no deadline of its own.
    fn fuel_job(gfuel: u64, max_retries: u32) -> JobState {
        let mut spec = crate::tests::market::spec(100, max_retries);
        spec.limits.fuel = gfuel * G;
        JobState::new(7, owner(), &spec, P.min_audit_ppm)
    }

    /// Release `seq` of job 7 to provider `n`: `fuel` reported for a
    /// fuel-billed job, `None` for an interval.
    fn paid(seq: u64, n: u8, amount: Tokens, fuel: Option<u64>) -> Effect {
        Effect::Release {
            fee: 0,
            seq,
            provider: provider(n),
            amount,
            fuel,
        }
    }

    fn fuel_pay(seq: u64, n: u8, amount: Tokens, fuel: u64) -> Effect {
        paid(seq, n, amount, Some(fuel))
    }

    /// The slash of job 7's `attempt` on provider `n`, for `amount`.
    fn slash(attempt: u32, n: u8, amount: Tokens) -> Effect {
        Effect::Slash {
            key: format!("job/7/slash/{attempt}").as_str().into(),
            provider: provider(n),
            amount,
            owner: owner(),
        }
    }

    impl JobState {
        /// Assigns the job and confirms its bond at once, as the outbox
        /// does when the registry takes the bond.
        fn assign_bonded(
            &mut self,
            p: &Params,
            now_ns: u64,
            provider: Principal,
            offer_id: OfferId,
            price: Tokens,
        ) -> Vec<Effect> {
            let effects = self.assign(p, now_ns, provider, offer_id, price, SPEED);
            self.bond_held(now_ns, self.attempts);
            effects
        }
    }

    fn result(code: i32) -> JobResult {
        result_with_fuel(code, 1)
    }

    fn result_with_fuel(code: i32, fuel_used: u64) -> JobResult {
        JobResult {
            outcome: RunOutcome::Exited { code },
            output: b"ok".to_vec(),
            output_sha256: [0; 32],
            fuel_used,
            engine: "wasmtime-48.0.8".into(),
        }
    }

    #[test]
    fn stake_keys_keep_their_text_form() {
        assert_eq!(bond_key(7, 1).to_string(), "job/7/bond/1");
        assert_eq!(slash_key(12, 3).to_string(), "job/12/slash/3");
        assert_eq!(lock_key(7), "job/7");
        for (op, text) in [
            (StakeOp::Done, "job/7/done/2"),
            (StakeOp::Missed, "job/7/missed/2"),
        ] {
            assert_eq!(record_key(7, op, 2).to_string(), text);
            assert_eq!(StakeKey::from(text), record_key(7, op, 2));
        }
        // The outbox stores the text form, as before keys were typed.
        let stored = canister_common::codec::Cbor(Effect::Unbond {
            key: bond_key(7, 2),
        });
        let old = canister_common::codec::Cbor(OldUnbond {
            Unbond: OldKey {
                key: "job/7/bond/2".into(),
            },
        });
        use ic_stable_structures::Storable;
        assert_eq!(stored.to_bytes(), old.to_bytes());
        assert_eq!(
            Cbor::<Effect>::from_bytes(old.to_bytes()).0,
            Effect::Unbond {
                key: bond_key(7, 2)
            }
        );
        assert!(StakeKey::try_from("job/7/lock/1".to_string()).is_err());
        assert!(StakeKey::try_from("job/7/bond/1/2".to_string()).is_err());
    }

    use canister_common::codec::Cbor;

    /// The shape of an unbond step before keys were typed.
    #[allow(non_snake_case)]
    #[derive(Serialize, Deserialize, Debug)]
    struct OldUnbond {
        Unbond: OldKey,
    }

    #[derive(Serialize, Deserialize, Debug)]
    struct OldKey {
        key: String,
    }

    #[test]
    fn nothing_is_paid_or_reported_and_no_deadline_runs_before_the_bond_holds() {
        let mut j = job(5, 0);
        j.assign(&P, 0, provider(1), 3, 80, SPEED);
        assert_eq!(j.deadline_ns(&P), None);
        assert_eq!(j.heartbeat(S, provider(1), 1, 0), Err(Refusal::BondPending));
        assert_eq!(
            j.submit_result(&P, S, provider(1), 1, result(0)),
            Err(Refusal::BondPending)
        );
        assert!(!j.bond_held(2 * S, 2), "another attempt's bond");
        assert!(j.bond_held(100 * S, 1));
        assert!(!j.bond_held(100 * S, 1), "once");
        assert_eq!(j.deadline_ns(&P), Some((160 + P.grace_secs) * S));
        assert_eq!(j.heartbeat(101 * S, provider(1), 1, 0), Ok(vec![]));
        assert_eq!(j.released, 0);
    }

    #[test]
    fn a_per_interval_job_pays_intervals_never_the_fuel_its_holder_reports() {
        // Its lock holds max_intervals x price; fuel reported by the holder
        // must not draw on it, or the holder takes the whole lock with its
        // first heartbeat and walks away from a smaller bond.
        let mut j = job(5, 0);
        j.assign_bonded(&P, 0, provider(1), 3, 80);
        assert_eq!(j.heartbeat(S, provider(1), 1, 4 * G), Ok(vec![]));
        assert_eq!(j.released, 0);
        let fx = j.heartbeat(61 * S, provider(1), 1, 100 * G).unwrap();
        assert_eq!(fx, vec![paid(0, 1, 80, None)]);
        assert_eq!(j.released, 80);
    }

    #[test]
    fn heartbeats_pay_once_per_interval_and_result_settles() {
        let mut j = job(5, 0);
        let fx = j.assign_bonded(&P, 0, provider(1), 3, 80);
        assert_eq!(
            fx,
            vec![Effect::Bond {
                key: "job/7/bond/1".into(),
                provider: provider(1),
                amount: 240
            }]
        );
        assert_eq!(
            j.heartbeat(S, provider(1), 1, 0),
            Ok(vec![]),
            "the first heartbeat acknowledges"
        );
        assert_eq!(j.status, JobStatus::Running);
        assert!(matches!(
            j.heartbeat(2 * S, provider(1), 1, 0),
            Err(Refusal::TooEarly { .. })
        ));
        let fx = j.heartbeat(61 * S, provider(1), 1, 0).unwrap();
        assert_eq!(fx, vec![paid(0, 1, 80, None)]);
        assert_eq!(
            j.heartbeat(62 * S, provider(2), 1, 0),
            Err(Refusal::NotAssigned)
        );
        assert_eq!(
            j.heartbeat(62 * S, provider(1), 2, 0),
            Err(Refusal::NotAssigned)
        );
        let fx = j
            .submit_result(&P, 100 * S, provider(1), 1, result(0))
            .unwrap();
        assert_eq!(
            fx,
            vec![
                paid(1, 1, 80, None),
                Effect::Unbond {
                    key: "job/7/bond/1".into()
                },
                Effect::FreeSlot { offer_id: 3 },
                Effect::Settle,
            ]
        );
        assert_eq!(j.status, JobStatus::Succeeded);
        assert_eq!(j.released, 160);
        assert!(
            j.submit_result(&P, 101 * S, provider(1), 1, result(0))
                .is_err(),
            "a result is taken once"
        );
    }

    #[test]
    fn a_slash_is_never_below_the_floor_and_a_slot_job_answers_at_the_slot_price() {
        let slash_of = |j: &mut JobState, p: &Params| {
            let deadline = j.deadline_ns(p).unwrap();
            assert!(j.past_deadline(p, deadline) && !j.past_deadline(p, deadline - 1));
            j.deadline_passed(p, deadline, 1)
                .into_iter()
                .find_map(|e| match e {
                    Effect::Slash { amount, .. } => Some(amount),
                    _ => None,
                })
        };
        let floor = Params {
            min_slash: 500,
            ..P
        };
        let mut cheap = job(5, 0);
        cheap.assign_bonded(&floor, 0, provider(1), 3, 80);
        assert_eq!(
            slash_of(&mut cheap, &floor),
            Some(500),
            "2 x 80 is below the floor"
        );
        let mut dear = job(5, 0);
        dear.assign_bonded(&floor, 0, provider(1), 3, 400);
        assert_eq!(slash_of(&mut dear, &floor), Some(800));

        let mut in_slot = job(5, 0);
        assert_eq!(
            in_slot.assign_in_slot(&P, 0, provider(2), 9, 300),
            vec![],
            "the slot's bond backs it"
        );
        assert_eq!(
            in_slot.assignment.as_ref().unwrap().price,
            0,
            "paid by the slot"
        );
        assert_eq!(slash_of(&mut in_slot, &P), Some(600));
    }

    #[test]
    fn missed_deadline_slashes_and_requeues_then_fails_when_retries_are_used() {
        let mut j = job(5, 1);
        j.assign_bonded(&P, 0, provider(1), 3, 80);
        let deadline = j.deadline_ns(&P).unwrap();
        assert_eq!(deadline, 70 * S);
        assert!(j.deadline_passed(&P, deadline - 1, 1).is_empty(), "not yet");
        let fx = j.deadline_passed(&P, deadline, 1);
        assert_eq!(fx[0], slash(1, 1, 160));
        assert_eq!(fx.last(), Some(&Effect::Requeue));
        assert_eq!(j.status, JobStatus::Open);
        assert!(
            j.deadline_passed(&P, deadline + 1, 1).is_empty(),
            "a deadline is handled once"
        );
        j.assign_bonded(&P, 100 * S, provider(2), 4, 90);
        let fx = j.deadline_passed(&P, 200 * S, 2);
        assert_eq!(fx.first(), Some(&slash(2, 2, 180)));
        assert_eq!(fx.last(), Some(&Effect::Settle));
        assert_eq!(j.status, JobStatus::Failed);
        assert_eq!(j.failed_providers, vec![provider(1), provider(2)]);
    }

    #[test]
    fn paid_time_used_up_expires_without_slash() {
        let mut j = job(1, 3);
        j.assign_bonded(&P, 0, provider(1), 3, 50);
        j.heartbeat(0, provider(1), 1, 0).unwrap();
        // The heartbeat that pays the last interval ends the job: the
        // holder is not kept on unpaid, and nobody is slashed.
        let fx = j.heartbeat(60 * S, provider(1), 1, 0).unwrap();
        assert!(matches!(fx[0], Effect::Release { .. }), "{fx:?}");
        assert_eq!(fx.last(), Some(&Effect::Settle));
        assert!(!fx.iter().any(|e| matches!(e, Effect::Slash { .. })));
        assert_eq!(j.status, JobStatus::Expired);
        assert!(
            j.heartbeat(120 * S, provider(1), 1, 0).is_err(),
            "nothing left to hold"
        );
        assert!(j.deadline_passed(&P, 200 * S, 1).is_empty());
    }

    #[test]
    fn only_the_owner_cancels() {
        let mut j = job(3, 0);
        j.assign_bonded(&P, 0, provider(1), 3, 50);
        assert_eq!(j.cancel(provider(1)), Err(Refusal::NotOwner));
        let fx = j.cancel(owner()).unwrap();
        assert_eq!(fx.last(), Some(&Effect::Settle));
        assert_eq!(j.status, JobStatus::Cancelled);
        assert!(j.cancel(owner()).is_err());
    }

    #[test]
    fn fuel_is_paid_into_pending_as_reported_and_the_result_opens_the_window() {
        let mut j = fuel_job(10, 0);
        assert_eq!(j.max_cost(), Some(1_000), "10 billion fuel at 100");
        let fx = j.assign_bonded(&P, 0, provider(1), 3, 80);
        assert_eq!(
            fx,
            vec![Effect::Bond {
                key: "job/7/bond/1".into(),
                provider: provider(1),
                amount: 3 * 800,
            }],
            "the bond is a multiple of the job's value at the agreed price"
        );
        let a = j.assignment.clone().unwrap();
        assert_eq!(
            a.result_due_ns,
            Some(S * attempt_secs(10 * G, SPEED, None, 60)),
            "twice the 100 s the budget needs at the declared speed, plus an interval"
        );
        assert_eq!(
            j.heartbeat(S, provider(1), 1, 0),
            Ok(vec![]),
            "acknowledged"
        );
        // 61 s at a tenth of a billion a second: at most 6.1 billion.
        assert_eq!(
            j.heartbeat(61 * S, provider(1), 1, 7 * G),
            Err(Refusal::FuelTooFast {
                allowed: 6_100_000_000
            })
        );
        assert_eq!(
            j.heartbeat(61 * S, provider(1), 1, 5 * G),
            Ok(vec![fuel_pay(0, 1, 400, 5 * G)])
        );
        assert!(matches!(
            j.heartbeat(62 * S, provider(1), 1, 5 * G),
            Err(Refusal::TooEarly { .. })
        ));
        assert_eq!(
            j.heartbeat(121 * S, provider(1), 1, 4 * G),
            Err(Refusal::FuelDecreased { reported: 5 * G })
        );
        assert_eq!(
            j.heartbeat(121 * S, provider(1), 1, 5 * G),
            Ok(vec![]),
            "no new fuel, no pay"
        );
        assert_eq!(
            j.submit_result(&P, 130 * S, provider(1), 1, result_with_fuel(0, 4 * G)),
            Err(Refusal::FuelDecreased { reported: 5 * G }),
            "a result can't report less than the heartbeats did"
        );
        assert_eq!(
            j.submit_result(&P, 130 * S, provider(1), 1, result_with_fuel(0, 11 * G)),
            Err(Refusal::FuelOverBudget { budget: 10 * G })
        );
        let fx = j
            .submit_result(&P, 130 * S, provider(1), 1, result_with_fuel(0, 8 * G))
            .unwrap();
        assert_eq!(
            fx,
            vec![fuel_pay(1, 1, 240, 8 * G), Effect::FreeSlot { offer_id: 3 }],
            "the bill is 8 billion at 80; the slot is free, the bond holds"
        );
        assert_eq!(j.status, JobStatus::Reported);
        assert_eq!(j.released, 640);
        assert_eq!(j.deadline_ns(&P), Some(230 * S), "the window closes");
        assert_eq!(
            j.cancel(owner()),
            Err(Refusal::NotActive(JobStatus::Reported))
        );
        assert!(j.deadline_passed(&P, 229 * S, 1).is_empty(), "not yet");
        assert_eq!(
            j.deadline_passed(&P, 230 * S, 1),
            vec![
                Effect::Record {
                    key: "job/7/done/1".into(),
                    provider: provider(1),
                    event: RecordEvent::JobCompleted {
                        heartbeats_on_time: 3
                    },
                },
                Effect::Unbond {
                    key: "job/7/bond/1".into()
                },
                Effect::Settle,
            ],
            "final: the record counts the job, the settle makes the pending pay claimable"
        );
        assert_eq!(j.status, JobStatus::Succeeded);
    }

    #[test]
    fn an_attempt_without_a_result_is_slashed_and_forfeits_its_pending_pay() {
        let mut j = fuel_job(10, 1);
        j.assign_bonded(&P, 0, provider(1), 3, 80);
        j.heartbeat(S, provider(1), 1, 0).unwrap();
        // Heartbeats on time, claiming fuel as fast as the speed allows,
        // and never a result.
        let mut paid = 0;
        for t in [61, 121, 181, 241] {
            let fuel = j.fuel_allowed(t * S);
            for e in j.heartbeat(t * S, provider(1), 1, fuel).unwrap() {
                if let Effect::Release { amount, .. } = e {
                    paid += amount;
                }
            }
        }
        assert_eq!(paid, 800, "its whole budget went to pending");
        let due = j.deadline_ns(&P).unwrap();
        let fx = j.deadline_passed(&P, due, 1);
        assert_eq!(fx[0], slash(1, 1, 2 * 800));
        assert_eq!(
            fx[1],
            Effect::Record {
                key: "job/7/missed/1".into(),
                provider: provider(1),
                event: RecordEvent::DeadlineMissed,
            }
        );
        assert_eq!(
            fx[2],
            Effect::Forfeit {
                provider: provider(1),
                attempt: 1
            }
        );
        assert_eq!(fx.last(), Some(&Effect::Requeue));
        assert_eq!(j.released, 0, "nothing is paid for the attempt");
        assert_eq!(j.status, JobStatus::Open);
        j.assign_bonded(&P, due, provider(2), 4, 90);
        assert_eq!(
            j.assignment.as_ref().unwrap().fuel_reported,
            0,
            "the next attempt has the whole budget"
        );
    }

    #[test]
    fn a_slow_and_a_fast_provider_are_paid_the_same_for_the_same_run() {
        let run = |finish_secs: u64| {
            let mut j = fuel_job(10, 0);
            j.assign_bonded(&P, 0, provider(1), 3, 80);
            j.heartbeat(S, provider(1), 1, 0).unwrap();
            if finish_secs > 100 {
                j.heartbeat(61 * S, provider(1), 1, 3 * G).unwrap();
            }
            j.submit_result(
                &P,
                finish_secs * S,
                provider(1),
                1,
                result_with_fuel(0, 6 * G),
            )
            .unwrap();
            j.released
        };
        assert_eq!(run(5), run(150));
        assert_eq!(run(5), 480);
    }

    #[test]
    fn handing_back_a_fuel_job_forfeits_its_pending_pay_without_a_slash() {
        let mut j = fuel_job(10, 0);
        j.assign_bonded(&P, 0, provider(1), 3, 80);
        j.heartbeat(S, provider(1), 1, 0).unwrap();
        j.heartbeat(61 * S, provider(1), 1, 2 * G).unwrap();
        let fx = j.hand_back(provider(1), 1).unwrap();
        assert_eq!(
            fx[0],
            Effect::Forfeit {
                provider: provider(1),
                attempt: 1
            }
        );
        assert!(!fx.iter().any(|e| matches!(e, Effect::Slash { .. })));
        assert_eq!(j.status, JobStatus::Open);
        assert_eq!(j.released, 0);
    }

    #[test]
    fn a_bid_deadline_bounds_the_attempt() {
        let mut spec = crate::tests::market::spec(100, 0);
        spec.limits.fuel = 10 * G;
        spec.deadline_secs = Some(500);
        let mut j = JobState::new(7, owner(), &spec, 0);
        j.assign_bonded(&P, 7 * S, provider(1), 3, 80);
        assert_eq!(j.assignment.unwrap().result_due_ns, Some(507 * S));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Advance(u64),
        /// A heartbeat from provider `.0` reporting `.1` tenths of the fuel
        /// its speed allows by now.
        Heartbeat(u8, u8),
        Result(u8, i32),
        Deadline,
        Cancel,
        Assign(u8, u8),
        HandBack(u8),
    }

    proptest! {
        /// Cheating loses money: the bond a caught lie is slashed, times
        /// the chance an audit catches it, is at least what the lie earns
        /// (the job's value), whatever the configuration.
        #[test]
        fn a_caught_lie_costs_more_in_expectation_than_it_earns(
            value in 0u128..1_000_000_000_000_000_000,
            ppm in 1u32..=AUDIT_ALWAYS_PPM,
            multiple in 1u32..50,
            floor in 0u128..1_000_000,
        ) {
            let p = Params { bond_multiple: multiple, min_slash: floor, ..P };
            let bond = bond_for(&p, value, ppm);
            prop_assert!(bond * u128::from(ppm) >= value * u128::from(AUDIT_ALWAYS_PPM));
            prop_assert!(bond >= value * u128::from(multiple));
            prop_assert!(bond >= floor);
        }
    }

    #[test]
    fn an_audited_job_bonds_its_value_over_its_audit_probability() {
        let mut spec = crate::tests::market::spec(100, 0);
        spec.limits.fuel = 10 * G;
        // One in twenty: the bond is twenty times the value, above the
        // bond multiple's three.
        let mut j = JobState::new(7, owner(), &spec, 50_000);
        let fx = j.assign(&P, 0, provider(1), 3, 50, SPEED);
        assert_eq!(
            fx,
            vec![Effect::Bond {
                key: "job/7/bond/1".into(),
                provider: provider(1),
                amount: 20 * 500,
            }]
        );
        assert_eq!(
            j.max_cost(),
            Some(2 * 1_000),
            "the lock holds an audit's budget too"
        );
        // A buyer asking for more gets it; one asking less gets the minimum.
        spec.audit_ppm = Some(1_000_000);
        assert_eq!(
            JobState::new(7, owner(), &spec, 50_000)
                .fuel
                .unwrap()
                .audit_ppm,
            1_000_000
        );
        spec.audit_ppm = Some(10);
        assert_eq!(
            JobState::new(7, owner(), &spec, 50_000)
                .fuel
                .unwrap()
                .audit_ppm,
            50_000
        );
        assert_eq!(
            JobState::new(7, owner(), &spec, 0).fuel.unwrap().audit_ppm,
            10
        );
    }

    #[test]
    fn the_draw_audits_with_the_jobs_probability_once() {
        let mut spec = crate::tests::market::spec(100, 0);
        spec.limits.fuel = 10 * G;
        let mut j = JobState::new(7, owner(), &spec, 500_000);
        j.assign_bonded(&P, 0, provider(1), 3, 50);
        let fx = j
            .submit_result(&P, S, provider(1), 1, result_with_fuel(0, G))
            .unwrap();
        assert!(fx.contains(&Effect::DrawAudit { attempt: 1 }));
        assert_eq!(j.deadline_ns(&P), None, "the window waits for the draw");
        assert_eq!(j.audit_drawn(2, &[0; 8]), None, "another attempt's");
        // 0x..ff draws 551 615: above one half.
        assert_eq!(j.audit_drawn(1, &[0xff; 8]), Some(false));
        assert_eq!(j.audit, None);
        assert_eq!(j.deadline_ns(&P), j.window_closes_at_ns);
        assert_eq!(j.audit_drawn(1, &[0; 8]), None, "drawn once");
        assert_eq!(draw_ppm(&[0; 32]), 0);
        assert_eq!(draw_ppm(&[0xff; 32]), 551_615);
        let bad = MatcherInitCheck::with_ppm(1_000_001);
        assert!(bad.check().is_err());
        assert!(MatcherInitCheck::with_ppm(1_000_000).check().is_ok());
    }

    struct MatcherInitCheck;

    impl MatcherInitCheck {
        fn with_ppm(ppm: u32) -> market_api::matcher::MatcherInit {
            market_api::matcher::MatcherInit {
                min_audit_ppm: Some(ppm),
                ..market_api::matcher::MatcherInit::new(owner(), owner(), owner(), 0)
            }
        }
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1u64..200).prop_map(Step::Advance),
            (0u8..3, 0u8..=11).prop_map(|(p, tenths)| Step::Heartbeat(p, tenths)),
            (0u8..3, -1i32..2).prop_map(|(p, c)| Step::Result(p, c)),
            Just(Step::Deadline),
            Just(Step::Cancel),
            (0u8..3, 1u8..=100).prop_map(|(p, price)| Step::Assign(p, price)),
            (0u8..3).prop_map(Step::HandBack),
        ]
    }

    proptest! {
        /// Whatever providers, owners and the clock do, billed by fuel or
        /// per interval: pay never exceeds the lock, releases are numbered
        /// once each, a forfeit takes back exactly the attempt's pending
        /// pay, a deadline is slashed at most once, an open job holds no
        /// assignment, a reported one keeps its provider's, and a finished
        /// job was settled exactly once; the market's fees released with
        /// the pay never take the lock (cost and fee) past what it holds.
        #[test]
        fn lifecycle_invariants(by_fuel: bool, max_intervals in 1u32..6, retries in 0u32..3, fee_ppm in 0u32..=market_api::matcher::MAX_MARKET_FEE_PPM, steps in proptest::collection::vec(step(), 1..80)) {
            let mut j = if by_fuel {
                fuel_job(u64::from(max_intervals), retries)
            } else {
                job(max_intervals, retries)
            };
            j.fee_ppm = fee_ppm;
            let lock = market_api::matcher::with_market_fee(j.max_cost().unwrap(), fee_ppm).unwrap();
            let mut fees: Tokens = 0;
            let mut pending_fees: std::collections::BTreeMap<Principal, Tokens> = Default::default();
            let mut pending: std::collections::BTreeMap<Principal, Tokens> = Default::default();
            let mut now = 0u64;
            let mut seqs = Vec::new();
            let mut slashes = BTreeSet::new();
            let mut settles = 0;
            let mut released: Tokens = 0;
            for s in steps {
                let effects = match s {
                    Step::Advance(secs) => { now += secs * S; vec![] }
                    Step::Heartbeat(p, tenths) => {
                        let attempt = j.assignment.as_ref().map_or(0, |a| a.attempt);
                        let fuel = j.fuel_allowed(now) / 10 * u64::from(tenths);
                        j.heartbeat(now, provider(p), attempt, fuel).unwrap_or_default()
                    }
                    Step::Result(p, code) => {
                        let attempt = j.assignment.as_ref().map_or(0, |a| a.attempt);
                        let fuel = j.assignment.as_ref().map_or(0, |a| a.fuel_reported) + G / 3;
                        j.submit_result(&P, now, provider(p), attempt, result_with_fuel(code, fuel)).unwrap_or_default()
                    }
                    Step::Deadline => {
                        let attempt = j.assignment.as_ref().map_or(0, |a| a.attempt);
                        j.deadline_passed(&P, now, attempt)
                    }
                    Step::Cancel => j.cancel(owner()).unwrap_or_default(),
                    Step::HandBack(p) => {
                        let attempt = j.assignment.as_ref().map_or(0, |a| a.attempt);
                        j.hand_back(provider(p), attempt).unwrap_or_default()
                    }
                    Step::Assign(p, price) => {
                        if j.status == JobStatus::Open && !j.failed_providers.contains(&provider(p)) {
                            j.assign_bonded(&P, now, provider(p), p as u64, price as Tokens)
                        } else { vec![] }
                    }
                };
                for e in effects {
                    match e {
                        Effect::Release { seq, amount, provider, fuel, fee } => {
                            seqs.push(seq);
                            released += amount;
                            fees += fee;
                            if fuel.is_some() {
                                *pending.entry(provider).or_default() += amount;
                                *pending_fees.entry(provider).or_default() += fee;
                            }
                        }
                        Effect::Forfeit { provider, .. } => {
                            let back = pending.remove(&provider).unwrap_or(0);
                            prop_assert!(back > 0, "a forfeit of nothing");
                            released -= back;
                            fees -= pending_fees.remove(&provider).unwrap_or(0);
                        }
                        Effect::Slash { key, .. } => prop_assert!(slashes.insert(key), "slashed twice"),
                        Effect::Settle => settles += 1,
                        _ => {}
                    }
                }
                prop_assert!(released <= j.max_cost().unwrap());
                prop_assert_eq!(released, j.released);
                prop_assert!(released + fees <= lock);
                prop_assert_eq!(fees, j.fee_paid);
                prop_assert!(j.intervals_paid <= j.max_intervals);
                prop_assert_eq!(seqs.clone(), (0..seqs.len() as u64).collect::<Vec<_>>());
                prop_assert_eq!(j.status == JobStatus::Open, j.assignment.is_none() && !j.status.is_terminal());
                prop_assert!(j.status != JobStatus::Reported || (by_fuel && j.assignment.is_some()));
                prop_assert_eq!(settles, u32::from(j.status.is_terminal()));
            }
        }
    }
}
