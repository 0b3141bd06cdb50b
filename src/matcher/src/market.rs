//! The matcher's rules over its whole state: jobs, the book, deadlines, the
//! module store and the outbox. Every method takes the time and the caller
//! as arguments and makes no call, so native tests drive all of it; the
//! canister layer performs the outbox's steps and reports back.

use crate::book::{Bid, Book, BookOffer};
use crate::lifecycle::{Effect, JobState, Params, Refusal};
use crate::modules::ModuleStore;
use crate::outbox::Outbox;
use crate::rates::{BidRates, Pricing};
use candid::Principal;
use canister_common::audit::{Books, Chunk, ChunkRequest, after};
use canister_common::codec::Cbor;
use canister_common::retention::TimeIndex;
use ic_stable_structures::{Memory, StableBTreeMap};
use market_api::matcher::{
    FINISHED_JOB_RETENTION_SECS, HeartbeatAck, HeartbeatItem, Job, JobAudit, JobChunk,
    JobChunkRequest, JobKind, JobPart, JobSpec, JobStatus, JobView, MAX_ARG_LEN, MAX_ARGS,
    MAX_CHUNK_BYTES, MAX_FUEL_PER_INTERVAL, MAX_INPUT_BYTES, MAX_JOB_FUEL, MAX_JOB_MEMORY_MIB,
    MAX_RESTING_SECS, MatcherError, ModuleSource, Offer, OfferSpec, PriceUnit, SubmitResultArgs,
};
use market_api::prices::{
    Currency, PriceConversion, Valuation, XdrTerms, lock_for_xdr, max_price_within,
};
use market_api::registry::TrackRecord;
use market_api::{JobId, OfferId, Tokens};
use serde::{Deserialize, Serialize};
use sha2::Digest;

pub mod access;
pub mod audits;
pub mod keys;
pub mod outages;
pub mod reservations;
pub mod services;
use reservations::ReservationRecord;

/// Most jobs one principal may have that are not finished.
pub const MAX_ACTIVE_JOBS_PER_OWNER: u64 = 100;
/// Most offers one provider may post.
pub const MAX_OFFERS_PER_PROVIDER: usize = 16;
/// Most items in one heartbeat batch.
pub const MAX_HEARTBEAT_ITEMS: usize = 1_000;
/// Longest URL of a module named by URL.
pub const MAX_URL_LEN: usize = 2_048;
/// Longest callback method name.
pub const MAX_METHOD_LEN: usize = 64;
/// Longest interval a job may ask for (one day).
pub const MAX_INTERVAL_SECS: u64 = 86_400;
/// Most intervals one job may buy.
pub const MAX_INTERVALS: u32 = 100_000;
/// Longest deadline a bid may name for one attempt: thirty days.
pub const MAX_DEADLINE_SECS: u64 = 30 * 86_400;

/// A job with everything the matcher keeps about it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    /// The lifecycle state.
    pub state: JobState,
    /// What the buyer asked for.
    pub spec: JobSpec,
    /// When it was submitted.
    pub submitted_at_ns: u64,
    /// Whether the escrow confirmed the lock; until then the job is not in the book.
    pub funded: bool,
    /// A one-off job, or its part in a reservation.
    #[serde(default)]
    pub kind: JobKind,
    /// For an audit run, the random number that picks its provider (see
    /// `Book::best_offer_for`).
    #[serde(default)]
    pub audit_pick: Option<u64>,
    /// The job keys derived for it (see [`keys`]).
    #[serde(default)]
    pub keys: keys::KeyCounts,
}

impl JobRecord {
    /// What a one-off job's lock holds for its pay (the market's fee
    /// aside): its maximum cost, or for an XDR price what that converted
    /// to. `None` on overflow.
    pub fn pay_lock(&self) -> Option<Tokens> {
        match self.state.xdr {
            Some(x) => Some(x.lock),
            None => self.state.max_cost(),
        }
    }

    /// The market's fee of the job: its rate, what its lock holds for
    /// the fee (a one-off job; others have no lock of their own) and
    /// what was paid of it.
    pub fn market_fee(&self) -> market_api::matcher::MarketFee {
        let locked = match self.kind {
            JobKind::OneOff => self
                .pay_lock()
                .and_then(|cost| market_api::matcher::market_fee_ceil(cost, self.state.fee_ppm))
                .unwrap_or(0),
            _ => 0,
        };
        market_api::matcher::MarketFee {
            fee_ppm: self.state.fee_ppm,
            locked,
            paid: self.state.fee_paid,
        }
    }

    /// The public view of the job.
    pub fn to_job(&self) -> Job {
        let current = self
            .state
            .assignment
            .as_ref()
            .map(|a| (a.provider, a.price));
        // A finished job shows the provider that held it last.
        let shown = current.or(self
            .state
            .status
            .is_terminal()
            .then_some(self.state.last_assignment)
            .flatten());
        let withheld = self.result_withheld();
        Job {
            pricing: self.state.xdr.map(|x| market_api::matcher::JobPricing {
                terms: x.terms,
                conversion: x.conversion,
            }),
            market_fee: self.market_fee(),
            id: self.state.id,
            owner: self.state.owner,
            spec: self.spec.clone(),
            status: self.state.status,
            provider: shown.map(|(p, _)| p),
            price: shown.map(|(_, price)| price),
            intervals_paid: self.state.intervals_paid,
            fuel_reported: self
                .state
                .assignment
                .as_ref()
                .map(|a| a.fuel_reported)
                .or_else(|| self.state.result.as_ref().map(|r| r.fuel_used))
                .unwrap_or(0),
            paid: self.state.released,
            window_closes_at_ns: self.state.window_closes_at_ns,
            retries_used: self.state.retries_used,
            result: self.state.result.clone().filter(|_| !withheld),
            submitted_at_ns: self.submitted_at_ns,
            kind: self.public_kind(),
            audit: self.state.audit.as_ref().map(|a| JobAudit {
                disputed: a.disputed,
                // A dispute's draw only picks its auditor.
                drawing: a.drawing && !a.disputed,
                verdict: a.verdict,
                // Until the verdict an auditor could find its run here.
                runs: if a.pending() { vec![] } else { a.runs.clone() },
            }),
        }
    }

    /// Whether the result is withheld from every reader: an audited job's
    /// until the verdict, an audit run's until it ends, so no auditor can
    /// read the result it is checking (or another auditor's).
    pub fn result_withheld(&self) -> bool {
        let run_unfinished =
            matches!(self.kind, JobKind::Audit { .. }) && !self.state.status.is_terminal();
        run_unfinished || self.state.audit.as_ref().is_some_and(|a| a.pending())
    }

    /// The kind as readers see it: an audit run shows as a one-off job
    /// until it ends, so its provider can't tell it from any job.
    pub fn public_kind(&self) -> JobKind {
        match self.kind {
            JobKind::Audit { .. } if !self.state.status.is_terminal() => JobKind::OneOff,
            kind => kind,
        }
    }

    /// The job's bid as it enters the book at `now_ns`: a one-off job's
    /// per billion fuel, a reserved slot's per interval.
    fn bid(&self, now_ns: u64) -> Bid {
        let (unit, max_price, deadline_secs) = match self.state.fuel {
            Some(f) => (PriceUnit::Gfuel, f.max_price_per_gfuel, f.deadline_secs),
            None => (PriceUnit::Interval, self.state.max_price, None),
        };
        // An XDR bid stands in the XDR book at its price in cycles.
        let (max_price, currency) = match self.state.xdr {
            Some(x) => (x.terms.max_price_cycles, Currency::Xdr),
            None => (max_price, Currency::Token),
        };
        Bid {
            job_id: self.state.id,
            ledger: self.spec.ledger,
            unit,
            max_price,
            currency,
            memory_mib: self.spec.limits.memory_mib,
            fuel: self.spec.limits.fuel,
            deadline_secs,
            interval_secs: self.spec.interval_secs,
            min_provider_stake: self.spec.min_provider_stake,
            min_record: self.spec.min_record.clone(),
            excluded_providers: self.state.failed_providers.clone(),
            audit_pick: self.audit_pick,
            submitted_at_ns: self.submitted_at_ns,
            rested_at_ns: now_ns,
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> MatcherError {
    MatcherError::InvalidArgument {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Checks the memory and fuel a job or reserved slot asks for: positive,
/// and no more than any sandbox could give (a bid asking for more could
/// never match, and would rest for nothing). `fuel` is a job's budget (at
/// most [`MAX_JOB_FUEL`]) or a slot's fuel per interval (at most
/// [`MAX_FUEL_PER_INTERVAL`]), `max_fuel` says which.
pub fn check_limits(
    field: &str,
    memory_mib: u32,
    fuel: u64,
    max_fuel: u64,
) -> Result<(), MatcherError> {
    if memory_mib == 0 || memory_mib > MAX_JOB_MEMORY_MIB {
        return Err(invalid(
            field,
            format!("memory_mib from 1 to {MAX_JOB_MEMORY_MIB}"),
        ));
    }
    if fuel == 0 || fuel > max_fuel {
        return Err(invalid(field, format!("fuel from 1 to {max_fuel}")));
    }
    Ok(())
}

/// Most bytes of job contents (input, args, env, output) a page of
/// `list_jobs` carries, so its reply stays under the IC's 2 MiB limit; a
/// page holds at least one job (a one-off job keeps its input until it
/// ends and its output after, never both, so one fits alone).
pub const MAX_JOBS_PAGE_BYTES: u64 = 1024 * 1024;

/// The bytes of a job's contents in a reply.
fn job_bytes(job: &Job) -> u64 {
    let output = job.result.as_ref().map_or(0, |r| r.output.len() as u64);
    job.spec.stored_bytes().saturating_add(output)
}

/// The error of a sealing's check (see [`market_api::privacy::Sealed`]).
pub fn sealing_error((field, reason): (&str, String)) -> MatcherError {
    invalid(field, reason)
}

impl<M: Memory> Market<M> {
    /// Checks that the market takes sealed contents if `sealed` is set
    /// (the shape is checked with the rest of the spec).
    pub fn check_sealing_enabled(
        &self,
        sealed: Option<&market_api::privacy::Sealed>,
    ) -> Result<(), MatcherError> {
        if sealed.is_some() && !self.sealing {
            return Err(invalid(
                "sealed",
                "this market takes no sealed jobs: its matcher has no privacy key configured",
            ));
        }
        Ok(())
    }
}

/// Checks every bound of a job spec, its sealing's shape included.
pub fn validate_spec(spec: &JobSpec) -> Result<(), MatcherError> {
    if let Some(sealed) = &spec.sealed {
        sealed.check_job(&spec.input).map_err(sealing_error)?;
    }
    if spec.input.len() > MAX_INPUT_BYTES {
        return Err(invalid("input", format!("at most {MAX_INPUT_BYTES} bytes")));
    }
    if spec.args.len() > MAX_ARGS || spec.env.len() > MAX_ARGS {
        return Err(invalid(
            "args",
            format!("at most {MAX_ARGS} args and {MAX_ARGS} env entries"),
        ));
    }
    let too_long = spec.args.iter().any(|a| a.len() > MAX_ARG_LEN)
        || spec
            .env
            .iter()
            .any(|(k, v)| k.len() > MAX_ARG_LEN || v.len() > MAX_ARG_LEN);
    if too_long {
        return Err(invalid(
            "args",
            format!("each arg, env name and value at most {MAX_ARG_LEN} bytes"),
        ));
    }
    if let ModuleSource::Url { url, .. } = &spec.module
        && (url.len() > MAX_URL_LEN || !url.starts_with("https://"))
    {
        return Err(invalid(
            "module",
            format!("an https:// URL of at most {MAX_URL_LEN} bytes"),
        ));
    }
    check_limits(
        "limits",
        spec.limits.memory_mib,
        spec.limits.fuel,
        MAX_JOB_FUEL,
    )?;
    if spec.interval_secs == 0 || spec.interval_secs > MAX_INTERVAL_SECS {
        return Err(invalid(
            "interval_secs",
            format!("1 to {MAX_INTERVAL_SECS}"),
        ));
    }
    if spec.max_price_per_gfuel == 0 {
        return Err(invalid("max_price_per_gfuel", "must be positive"));
    }
    if spec.max_cost().is_none() {
        return Err(invalid("max_price_per_gfuel", "maximum cost overflows"));
    }
    if let Some(d) = spec.deadline_secs
        && (d == 0 || d > MAX_DEADLINE_SECS)
    {
        return Err(invalid(
            "deadline_secs",
            format!("1 to {MAX_DEADLINE_SECS}"),
        ));
    }
    if spec.max_retries > 10 {
        return Err(invalid("max_retries", "at most 10"));
    }
    if let Some(m) = &spec.callback
        && (m.is_empty() || m.len() > MAX_METHOD_LEN)
    {
        return Err(invalid("callback", format!("1 to {MAX_METHOD_LEN} bytes")));
    }
    Ok(())
}

/// Prices the XDR job `state` (its highest price per billion fuel still in
/// cycles) at its ledger's valuation `v`: the lock holds its maximum cost
/// in cycles (twice the budget's if it may be audited) at `v`, rounded up,
/// plus `buffer_ppm`; its price in tokens is capped at the highest the
/// lock covers, so the lifecycle's own maximum cost never passes the lock.
pub fn price_xdr_job(
    state: &mut JobState,
    v: Valuation,
    buffer_ppm: u32,
) -> Result<(), MatcherError> {
    let Some(f) = state.fuel.as_mut() else {
        return Ok(());
    };
    let overflows = || invalid("max_price_per_gfuel", "the maximum cost overflows");
    let factor: Tokens = if f.audit_ppm > 0 { 2 } else { 1 };
    let cycles = market_api::matcher::fuel_cost_ceil(f.budget, f.max_price_per_gfuel)
        .and_then(|c| c.checked_mul(factor))
        .ok_or_else(overflows)?;
    let lock = lock_for_xdr(cycles, &v, buffer_ppm).ok_or_else(overflows)?;
    let ceiling = max_price_within(f.budget, lock / factor).unwrap_or(0);
    if ceiling == 0 {
        return Err(invalid(
            "max_price_per_gfuel",
            "too low to pay anything in the ledger's token at today's rate",
        ));
    }
    let terms = XdrTerms {
        max_price_cycles: f.max_price_per_gfuel,
        lock_rate: v,
        buffer_ppm: if v.is_fixed() { 0 } else { buffer_ppm },
    };
    f.max_price_per_gfuel = ceiling;
    state.xdr = Some(crate::lifecycle::XdrPricing {
        terms,
        lock,
        conversion: None,
    });
    Ok(())
}

/// Checks every bound of an offer.
pub fn validate_offer(spec: &OfferSpec) -> Result<(), MatcherError> {
    if spec.slots == 0 || spec.slots > 10_000 {
        return Err(invalid("slots", "1 to 10000"));
    }
    if spec.memory_per_slot_mib == 0
        || spec.max_fuel_per_interval == 0
        || spec.fuel_per_sec == 0
        || spec.price_per_interval == 0
        || spec.price_per_gfuel == 0
    {
        return Err(invalid(
            "spec",
            "memory, fuel, speed and prices must be positive",
        ));
    }
    if spec.min_interval_secs == 0 || spec.min_interval_secs > spec.max_interval_secs {
        return Err(invalid(
            "min_interval_secs",
            "positive and not above max_interval_secs",
        ));
    }
    if spec.tags.len() > 16 || spec.tags.iter().any(|t| t.len() > 64) {
        return Err(invalid("tags", "at most 16 tags of at most 64 bytes"));
    }
    Ok(())
}

/// What stands behind a provider's offers, as the registry last said: its
/// stake (free plus bonded) and its track record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backing {
    /// Free plus bonded stake.
    pub stake: Tokens,
    /// What it did.
    pub record: TrackRecord,
}

/// A stake alone, with an empty track record.
impl From<Tokens> for Backing {
    fn from(stake: Tokens) -> Self {
        Backing {
            stake,
            record: TrackRecord::default(),
        }
    }
}

/// The memories the market keeps its maps in.
pub struct Memories<M> {
    /// Jobs by id.
    pub jobs: M,
    /// (owner, job) pairs.
    pub jobs_by_owner: M,
    /// (owner, job) pairs of jobs not yet terminal.
    pub active_by_owner: M,
    /// (provider, job) pairs of unfinished jobs assigned to the provider.
    pub assigned_by_provider: M,
    /// (deadline, job, attempt) triples.
    pub deadlines: M,
    /// (finished at, job) pairs of finished one-off jobs.
    pub finished: M,
    /// node principal -> provider, and provider -> its current node.
    pub nodes: [M; 2],
    /// The book's four maps.
    pub book: [M; 4],
    /// The module store's maps and byte counter.
    pub modules: [M; 5],
    /// The outbox's two maps.
    pub outbox: [M; 2],
    /// Reservations, their queued jobs, and the registered DAOs.
    pub reservations: [M; 3],
    /// (due, slot, attempt) triples of service replicas' next probes.
    pub probes: M,
    /// The matcher's last run and recent outages.
    pub outages: M,
}

/// All of the matcher's durable state but its configuration and event log.
pub struct Market<M: Memory> {
    jobs: StableBTreeMap<JobId, Cbor<JobRecord>, M>,
    jobs_by_owner: StableBTreeMap<(Principal, JobId), (), M>,
    /// The subset of `jobs_by_owner` not yet terminal: the per-owner limit
    /// counts these without reading the owner's whole history.
    active_by_owner: StableBTreeMap<(Principal, JobId), (), M>,
    /// Unfinished jobs by the provider they are assigned to: `assignments`
    /// reads a provider's own without looking at anyone else's.
    assigned_by_provider: StableBTreeMap<(Principal, JobId), (), M>,
    deadlines: StableBTreeMap<(u64, JobId, u32), (), M>,
    /// Finished one-off jobs by when they finished: the oldest are deleted
    /// once [`FINISHED_JOB_RETENTION_SECS`] have passed.
    finished: StableBTreeMap<(u64, JobId), (), M>,
    nodes: StableBTreeMap<Principal, Principal, M>,
    /// The node each provider's latest offer named: the only one of its
    /// nodes that may act for it (a rotated-out key, say a leaked one, is
    /// refused). Providers absent here (offers posted before this map
    /// existed) keep every node in `nodes` until they post again.
    node_of: StableBTreeMap<Principal, Principal, M>,
    /// The order book.
    pub book: Book<M>,
    /// The module store.
    pub modules: ModuleStore<M>,
    /// Cross-canister steps waiting to be confirmed.
    pub outbox: Outbox<M>,
    reservations: StableBTreeMap<JobId, Cbor<ReservationRecord>, M>,
    reserved_queue: StableBTreeMap<(JobId, JobId), (), M>,
    daos: StableBTreeMap<Principal, Cbor<String>, M>,
    /// When each acknowledged service replica is probed next, by (due,
    /// slot job, attempt).
    probes: StableBTreeMap<(u64, JobId, u32), (), M>,
    /// When the matcher last ran and its recent outages, which move the
    /// deadlines that fell in them (see [`outages`]).
    outages: ic_stable_structures::Cell<Cbor<outages::Outages>, M>,
    /// How tokens are valued (heap only: the state sets it from the
    /// configuration and the rate readings when it opens, and again
    /// whenever either changes).
    pub pricing: Pricing,
    /// Whether the market takes sealed jobs and services (heap only: the
    /// state sets it from the configuration's `privacy`).
    pub sealing: bool,
}

/// Where a pass of the matcher's audit goes on: after this entry of the
/// active-jobs index, of the providers' index or of the deadlines (`None`:
/// from the first).
#[derive(Clone, Copy, Debug)]
pub enum AuditCursor {
    /// Reading the active jobs by owner; the last one read.
    Active(Option<(Principal, JobId)>),
    /// Reading the jobs by provider; the last one read.
    Assigned(Option<(Principal, JobId)>),
    /// Reading the deadlines; the last one read.
    Deadlines(Option<(u64, JobId, u32)>),
}

/// The provider an unfinished job is assigned to, if any (a reported
/// job's provider is done with it: its assignment stays only to hold the
/// bond through the challenge window).
fn holder_of(rec: &JobRecord) -> Option<Principal> {
    if rec.state.status.is_terminal() || rec.state.status == JobStatus::Reported {
        return None;
    }
    rec.state.assignment.as_ref().map(|a| a.provider)
}

impl<M: Memory> Market<M> {
    /// Opens the market kept in these memories.
    pub fn init(m: Memories<M>) -> Self {
        let [b0, b1, b2, b3] = m.book;
        let [o0, o1] = m.outbox;
        let [r0, r1, r2] = m.reservations;
        let [n0, n1] = m.nodes;
        Self {
            jobs: StableBTreeMap::init(m.jobs),
            jobs_by_owner: StableBTreeMap::init(m.jobs_by_owner),
            active_by_owner: StableBTreeMap::init(m.active_by_owner),
            assigned_by_provider: StableBTreeMap::init(m.assigned_by_provider),
            deadlines: StableBTreeMap::init(m.deadlines),
            finished: StableBTreeMap::init(m.finished),
            nodes: StableBTreeMap::init(n0),
            node_of: StableBTreeMap::init(n1),
            book: Book::init(b0, b1, b2, b3),
            modules: ModuleStore::init(m.modules),
            outbox: Outbox::init(o0, o1),
            reservations: StableBTreeMap::init(r0),
            reserved_queue: StableBTreeMap::init(r1),
            daos: StableBTreeMap::init(r2),
            probes: StableBTreeMap::init(m.probes),
            outages: ic_stable_structures::Cell::init(m.outages, Cbor(Default::default())),
            pricing: Pricing::default(),
            sealing: false,
        }
    }

    /// A job by id.
    pub fn job(&self, id: JobId) -> Option<JobRecord> {
        self.jobs.get(&id).map(|c| c.0)
    }

    fn put_job(&mut self, rec: JobRecord) {
        let id = rec.state.id;
        if rec.state.status.is_terminal() {
            self.active_by_owner.remove(&(rec.state.owner, id));
        }
        let holder = holder_of(&rec);
        let old = self.jobs.insert(id, Cbor(rec));
        let old_holder = old.and_then(|o| holder_of(&o.0));
        if old_holder != holder {
            if let Some(p) = old_holder {
                self.assigned_by_provider.remove(&(p, id));
            }
            if let Some(p) = holder {
                self.assigned_by_provider.insert((p, id), ());
            }
        }
    }

    /// Empties the index of assigned jobs, as in a state saved before it existed.
    #[cfg(test)]
    pub fn clear_assignment_index_for_tests(&mut self) {
        let keys: Vec<(Principal, JobId)> = self.assigned_by_provider.keys().collect();
        for k in keys {
            self.assigned_by_provider.remove(&k);
        }
    }

    /// Builds the index of assigned jobs from the deadline index if it is
    /// empty (a state saved before it existed). Returns how many it indexed.
    pub fn index_assignments_if_missing(&mut self) -> usize {
        if !self.assigned_by_provider.is_empty() {
            return 0;
        }
        let pairs: Vec<(Principal, JobId)> = self
            .deadlines
            .keys()
            .filter_map(|(_, id, _)| self.job(id))
            .filter_map(|r| holder_of(&r).map(|p| (p, r.state.id)))
            .collect();
        for key in &pairs {
            self.assigned_by_provider.insert(*key, ());
        }
        pairs.len()
    }

    /// Lists a new job under its owner (and as active).
    fn index_owner(&mut self, owner: Principal, id: JobId) {
        self.jobs_by_owner.insert((owner, id), ());
        self.active_by_owner.insert((owner, id), ());
    }

    /// Empties the active-jobs index, as in a state saved before it existed.
    #[cfg(test)]
    pub fn clear_active_index_for_tests(&mut self) {
        let keys: Vec<(Principal, JobId)> = self.active_by_owner.keys().collect();
        for k in keys {
            self.active_by_owner.remove(&k);
        }
    }

    /// Builds the active-jobs index from the jobs if it is empty (a state
    /// saved before the index existed). Returns how many it indexed.
    pub fn index_active_jobs_if_missing(&mut self) -> usize {
        if !self.active_by_owner.is_empty() {
            return 0;
        }
        let active: Vec<(Principal, JobId)> = self
            .jobs_by_owner
            .keys()
            .filter(|(_, id)| self.job(*id).is_some_and(|r| !r.state.status.is_terminal()))
            .collect();
        for key in &active {
            self.active_by_owner.insert(*key, ());
        }
        active.len()
    }
}

/// The indexes agree with the jobs: every job listed as active exists,
/// belongs to that owner, is unfinished and is listed under its holder;
/// every job listed under a provider is held by it; every pending deadline
/// names an existing job; an unfinished job priced in XDR can't cost more
/// than its lock. The work is bounded by the unfinished jobs, not by all
/// jobs ever.
impl<M: Memory> Books for Market<M> {
    type Cursor = AuditCursor;

    /// At most `budget` index entries from `cursor` on; each broken one is
    /// pushed to `broken`.
    fn audit_chunk(&self, request: ChunkRequest<'_, AuditCursor>) -> Chunk<AuditCursor> {
        let mut read = 0usize;
        let (budget, broken) = (request.budget, request.broken);
        let mut cursor = request.cursor.unwrap_or(AuditCursor::Active(None));
        if let AuditCursor::Active(mut last) = cursor {
            for (owner, id) in self.active_by_owner.keys_range(after(last)) {
                if read >= budget {
                    return Chunk {
                        read,
                        next: Some(AuditCursor::Active(last)),
                    };
                }
                read += 1;
                last = Some((owner, id));
                let Some(rec) = self.job(id) else {
                    broken.push(format!("active job {id} of {owner} does not exist"));
                    continue;
                };
                if rec.state.owner != owner {
                    broken.push(format!(
                        "active job {id} is listed under {owner}, not its owner"
                    ));
                }
                if rec.state.status.is_terminal() {
                    broken.push(format!("finished job {id} is listed as active"));
                }
                if let Some(x) = rec.state.xdr
                    && rec.kind == JobKind::OneOff
                    && rec.state.max_cost().is_none_or(|c| c > x.lock)
                {
                    broken.push(format!("job {id} may cost more than its XDR lock"));
                }
                if let Some(p) = holder_of(&rec)
                    && !self.assigned_by_provider.contains_key(&(p, id))
                {
                    broken.push(format!("job {id} is not listed under its holder {p}"));
                }
            }
            cursor = AuditCursor::Assigned(None);
        }
        if let AuditCursor::Assigned(mut last) = cursor {
            for (provider, id) in self.assigned_by_provider.keys_range(after(last)) {
                if read >= budget {
                    return Chunk {
                        read,
                        next: Some(AuditCursor::Assigned(last)),
                    };
                }
                read += 1;
                last = Some((provider, id));
                let holder = self.job(id).and_then(|r| holder_of(&r));
                if holder != Some(provider) {
                    broken.push(format!(
                        "job {id} is listed under {provider}, which does not hold it"
                    ));
                }
            }
            cursor = AuditCursor::Deadlines(None);
        }
        if let AuditCursor::Deadlines(mut last) = cursor {
            for key in self.deadlines.keys_range(after(last)) {
                if read >= budget {
                    return Chunk {
                        read,
                        next: Some(AuditCursor::Deadlines(last)),
                    };
                }
                read += 1;
                last = Some(key);
                if !self.jobs.contains_key(&key.1) {
                    broken.push(format!(
                        "a deadline names job {}, which does not exist",
                        key.1
                    ));
                }
            }
        }
        Chunk { read, next: None }
    }
}

impl<M: Memory> Market<M> {
    /// Jobs of an owner, from `start` on, at most `limit`, as `caller`
    /// may see them (see [`access`]).
    pub fn jobs_of(
        &self,
        caller: Principal,
        owner: Principal,
        start: JobId,
        limit: usize,
    ) -> Vec<Job> {
        let mut bytes = 0u64;
        let mut page = Vec::new();
        for (_, id) in self
            .jobs_by_owner
            .keys_range((owner, start)..=(owner, JobId::MAX))
            .take(limit)
        {
            let Some(job) = self.job_for(caller, id) else {
                continue;
            };
            bytes = bytes.saturating_add(job_bytes(&job));
            if bytes > MAX_JOBS_PAGE_BYTES && !page.is_empty() {
                break;
            }
            page.push(job);
        }
        page
    }

    fn active_jobs_of(&self, owner: Principal) -> u64 {
        self.active_by_owner
            .keys_range((owner, 0)..=(owner, JobId::MAX))
            .count() as u64
    }

    /// Records a new job, not yet funded. The caller locks its maximum cost
    /// in the escrow next and then calls [`Market::job_funded`] (or
    /// [`Market::drop_unfunded`] if the lock was refused).
    ///
    /// A job paying in another token than the stake ledger's, or priced in
    /// XDR, needs fresh rates (see [`Pricing::bid_rates`]); an XDR job's
    /// lock is its maximum cost in cycles at its ledger's rate plus the
    /// buffer, and its price in tokens is capped at what that lock covers.
    pub fn create_job(
        &mut self,
        p: &Params,
        now_ns: u64,
        owner: Principal,
        spec: JobSpec,
    ) -> Result<JobRecord, MatcherError> {
        self.new_job(p, now_ns, owner, spec, true)
    }

    fn new_job(
        &mut self,
        p: &Params,
        now_ns: u64,
        owner: Principal,
        spec: JobSpec,
        priced: bool,
    ) -> Result<JobRecord, MatcherError> {
        validate_spec(&spec)?;
        self.check_sealing_enabled(spec.sealed.as_ref())?;
        let rates = if priced {
            self.pricing
                .bid_rates(now_ns / 1_000_000_000, spec.ledger, spec.currency)?
        } else {
            BidRates::default()
        };
        if let ModuleSource::Stored { sha256 } = &spec.module {
            match self.modules.meta(sha256) {
                Some(m) if m.committed => {}
                _ => return Err(MatcherError::UnknownModule { sha256: *sha256 }),
            }
        }
        if self.active_jobs_of(owner) >= MAX_ACTIVE_JOBS_PER_OWNER {
            return Err(MatcherError::LimitReached {
                what: "active jobs".into(),
                limit: MAX_ACTIVE_JOBS_PER_OWNER,
            });
        }
        let id = self.next_job_id();
        let mut state = JobState::new(id, owner, &spec, p.min_audit_ppm);
        state.stake_rate = rates.stake_rate;
        state.fee_ppm = p.market_fee_ppm;
        if let Some(v) = rates.xdr_valuation() {
            price_xdr_job(&mut state, v, self.pricing.config.rate_buffer_ppm())?;
        }
        if let ModuleSource::Stored { sha256 } = &spec.module {
            self.modules
                .acquire(sha256)
                .map_err(|_| MatcherError::UnknownModule { sha256: *sha256 })?;
        }
        let rec = JobRecord {
            state,
            spec,
            submitted_at_ns: now_ns,
            funded: false,
            kind: JobKind::OneOff,
            audit_pick: None,
            keys: Default::default(),
        };
        self.put_job(rec.clone());
        self.index_owner(owner, id);
        Ok(rec)
    }

    /// Records the job's escrow lock in the outbox before `submit_job`
    /// makes the call itself, marked in flight. Whatever becomes of the call
    /// (an answer, an unknown outcome, a trap after the answer), the step is
    /// settled by the caller or retried by the outbox with the same key.
    /// Returns the step's number; `None` if the job is gone or funded.
    pub fn lock_in_flight(&mut self, now_ns: u64, id: JobId) -> Option<u64> {
        let rec = self.job(id).filter(|r| !r.funded)?;
        if self.outbox.has_pending(id) {
            return None;
        }
        let amount = match rec.kind {
            JobKind::Reservation => self.reservation_lock_amount(id),
            _ => rec
                .pay_lock()
                .and_then(|cost| market_api::matcher::with_market_fee(cost, rec.state.fee_ppm)),
        }
        .unwrap_or(Tokens::MAX);
        Some(self.outbox.push_in_flight(
            id,
            Effect::Lock {
                buyer: rec.state.owner,
                ledger: rec.spec.ledger,
                amount,
                // A reservation stores no contents; its jobs run in the
                // slots it pays for.
                stored_bytes: (rec.kind == JobKind::OneOff).then(|| rec.spec.stored_bytes()),
            },
            now_ns,
        ))
    }

    /// The escrow refused the lock: forget the job.
    pub fn drop_unfunded(&mut self, now_ns: u64, id: JobId) {
        if let Some(rec) = self.job(id)
            && !rec.funded
        {
            if let ModuleSource::Stored { sha256 } = &rec.spec.module {
                self.modules.release(now_ns, sha256);
            }
            self.jobs.remove(&id);
            self.jobs_by_owner.remove(&(rec.state.owner, id));
            self.active_by_owner.remove(&(rec.state.owner, id));
            self.reservations.remove(&id);
        }
    }

    /// The escrow confirmed the lock: the job enters the book and is matched
    /// at once if it can be. Returns the assignment's provider, if matched.
    pub fn job_funded(&mut self, p: &Params, now_ns: u64, id: JobId) -> Option<Principal> {
        let mut rec = self.job(id)?;
        if rec.funded {
            return rec.state.assignment.map(|a| a.provider);
        }
        rec.funded = true;
        let kind = rec.kind;
        self.put_job(rec);
        if kind == JobKind::Reservation {
            self.activate_reservation(p, now_ns, id);
            return None;
        }
        self.try_match(p, now_ns, id)
    }

    fn try_match(&mut self, p: &Params, now_ns: u64, id: JobId) -> Option<Principal> {
        let rec = self.job(id)?;
        let mut bid = rec.bid(now_ns);
        if let JobKind::ReservedSlot { reservation, slot } = rec.kind {
            // One replica of a service per provider.
            bid.excluded_providers
                .extend(self.lease_exclusions(reservation, slot));
        }
        match self.book.best_offer_for(&bid) {
            Some(offer) => {
                self.assign(p, now_ns, id, &offer);
                Some(offer.offer.provider)
            }
            None => {
                self.book.rest_bid(bid);
                None
            }
        }
    }

    /// Looks again at up to `budget` resting bids, from just after `after`
    /// on in price order, and assigns each to the cheapest offer that can
    /// run it now. A new offer or a freed slot looks only at the best
    /// [`MAX_SCAN`](crate::book::MAX_SCAN) resting bids, so a bid behind many
    /// that no offer can run would otherwise wait for good; the timer runs
    /// this sweep so every resting bid is looked at again within a bounded
    /// number of runs. The same sweep expires one-off jobs whose bid rested
    /// [`MAX_RESTING_SECS`] unmatched (see `expire_resting`).
    /// Returns where the next run goes on (`None`: from the top).
    pub fn sweep_resting_bids(
        &mut self,
        p: &Params,
        now_ns: u64,
        after: Option<crate::book::BidKey>,
        budget: usize,
    ) -> Option<crate::book::BidKey> {
        let bids = self.book.resting_bids_after(after, budget);
        let next = if bids.len() == budget {
            bids.last().map(|(k, _)| *k)
        } else {
            None
        };
        for (_, job_id) in bids {
            let Some(bid) = self.book.bid(job_id) else {
                continue;
            };
            if self.expire_resting(p, now_ns, &bid) {
                continue;
            }
            if self.book.has_free_slots()
                && let Some(offer) = self.book.best_offer_for(&bid)
            {
                self.assign(p, now_ns, job_id, &offer);
            }
        }
        next
    }

    /// Expires a one-off job whose bid has rested unmatched for
    /// [`MAX_RESTING_SECS`]: its lock is refunded and its module released.
    /// A bid nobody takes in a day most likely asks for what no provider
    /// offers; the buyer can submit again. Returns whether it expired.
    fn expire_resting(&mut self, p: &Params, now_ns: u64, bid: &Bid) -> bool {
        let rested = now_ns.saturating_sub(bid.resting_since_ns());
        if rested < MAX_RESTING_SECS.saturating_mul(1_000_000_000) {
            return false;
        }
        let Some(mut rec) = self.job(bid.job_id) else {
            return false;
        };
        let one_off = matches!(rec.kind, JobKind::OneOff | JobKind::Audit { .. });
        if !one_off || rec.state.status != JobStatus::Open {
            return false;
        }
        let effects = rec.state.end(JobStatus::Expired);
        let kind = rec.kind;
        self.book.remove_bid(bid.job_id);
        self.put_job(rec);
        self.apply(p, now_ns, bid.job_id, kind, effects);
        true
    }

    fn assign(&mut self, p: &Params, now_ns: u64, id: JobId, offer: &BookOffer) {
        let Some(mut rec) = self.job(id) else { return };
        if let JobKind::ReservedSlot { reservation, slot } = rec.kind
            && self
                .lease_exclusions(reservation, slot)
                .contains(&offer.offer.provider)
        {
            // A resting bid's exclusions date from when it rested: another
            // replica of the service went to this provider since.
            return;
        }
        if !self.book.take_slot(offer.offer.id) {
            return;
        }
        self.book.remove_bid(id);
        let unit = if rec.state.fuel.is_some() {
            PriceUnit::Gfuel
        } else {
            PriceUnit::Interval
        };
        let price = self.agreed_price(&mut rec, offer.price(unit));
        if let Some(rate) = self.pricing.stake_rate(rec.spec.ledger) {
            rec.state.stake_rate = Some(rate);
        }
        let effects = rec.state.assign(
            p,
            now_ns,
            offer.offer.provider,
            offer.offer.id,
            price,
            offer.offer.spec.fuel_per_sec,
        );
        let kind = rec.kind;
        self.track_deadline(p, &rec.state, None);
        self.put_job(rec);
        self.apply(p, now_ns, id, kind, effects);
        if let JobKind::ReservedSlot { reservation, .. } = kind {
            self.serve_reservation(p, now_ns, reservation);
        }
    }

    /// The price `rec` pays for an offer asking `offer_price`: the same
    /// for a price in tokens; for an XDR price (in cycles), converted at
    /// the ledger's latest valuation (the lock's, if none was read),
    /// rounded down and capped at what the job's lock covers. The
    /// conversion is recorded in the job.
    fn agreed_price(&self, rec: &mut JobRecord, offer_price: Tokens) -> Tokens {
        let ceiling = match rec.state.fuel {
            Some(f) => f.max_price_per_gfuel,
            None => rec.state.max_price,
        };
        let Some(x) = rec.state.xdr.as_mut() else {
            return offer_price;
        };
        let rate = self
            .pricing
            .valuation(rec.spec.ledger)
            .unwrap_or(x.terms.lock_rate);
        let units = rate.units_floor(offer_price).unwrap_or(Tokens::MAX);
        x.conversion = Some(PriceConversion {
            price_cycles: offer_price,
            rate,
            capped: units > ceiling,
        });
        units.min(ceiling)
    }

    fn track_deadline(&mut self, p: &Params, state: &JobState, old: Option<(u64, u32)>) {
        if let Some((deadline, attempt)) = old {
            self.deadlines.remove(&(deadline, state.id, attempt));
        }
        if let (Some(deadline), Some(a)) = (state.deadline_ns(p), &state.assignment) {
            self.deadlines.insert((deadline, state.id, a.attempt), ());
        }
    }

    /// A run of the matcher at `now_ns` (a timer's, or a provider's call):
    /// records an outage if it has not run for a while (see [`outages`]);
    /// returns it if so.
    pub fn observe_run(&mut self, now_ns: u64) -> Option<outages::Outage> {
        let mut o = self.outages.get().0.clone();
        let outage = o.observe(now_ns);
        self.outages.set(Cbor(o));
        outage
    }

    /// When the matcher last ran and its recent outages.
    pub fn outages(&self) -> outages::Outages {
        self.outages.get().0.clone()
    }

    /// A deadline at `deadline_ns` as the outages moved it.
    fn moved(&self, p: &Params, deadline_ns: u64) -> u64 {
        let grace = p.grace_secs.saturating_mul(1_000_000_000);
        self.outages.get().0.extend(deadline_ns, grace)
    }

    /// The job's next deadline as it is enforced: its own
    /// ([`JobState::deadline_ns`]), moved past the matcher's outages.
    pub fn deadline_of(&self, p: &Params, state: &JobState) -> Option<u64> {
        state.deadline_ns(p).map(|d| self.moved(p, d))
    }

    fn deadline_key(p: &Params, state: &JobState) -> Option<(u64, u32)> {
        Some((state.deadline_ns(p)?, state.assignment.as_ref()?.attempt))
    }

    /// Applies a transition's effects: local ones now, cross-canister ones
    /// into the outbox (in order). A change of an audit run may bring its
    /// audit to a verdict.
    fn apply(&mut self, p: &Params, now_ns: u64, id: JobId, kind: JobKind, effects: Vec<Effect>) {
        match kind {
            JobKind::ReservedSlot { reservation, slot } => {
                return self.apply_slot(p, now_ns, id, reservation, slot, effects);
            }
            JobKind::InReservation { reservation } => {
                return self.apply_reserved_job(p, now_ns, id, reservation, effects);
            }
            JobKind::OneOff | JobKind::Reservation | JobKind::Audit { .. } => {}
        }
        for effect in effects {
            match effect {
                Effect::FreeSlot { offer_id } => {
                    self.book.free_slot(offer_id);
                    self.serve_offer(p, now_ns, offer_id);
                }
                Effect::Requeue => {
                    self.try_match(p, now_ns, id);
                }
                Effect::Settle => self.settle_job(now_ns, id),
                other => {
                    self.outbox.push(id, other);
                }
            }
        }
        if let JobKind::Audit { of } = kind {
            self.audit_run_changed(p, now_ns, of, id);
        }
    }

    /// A job ended: its module is released, its bid leaves the book, and
    /// its settle (and callback, if any) are queued. An audit run has no
    /// lock or callback of its own (the audited job settles).
    fn settle_job(&mut self, now_ns: u64, id: JobId) {
        let rec = self.job(id);
        if let Some(ModuleSource::Stored { sha256 }) = rec.as_ref().map(|r| &r.spec.module) {
            self.modules.release(now_ns, sha256);
        }
        let audit_run = rec
            .as_ref()
            .is_some_and(|r| matches!(r.kind, JobKind::Audit { .. }));
        let one_off = |r: &JobRecord| r.kind == JobKind::OneOff || audit_run;
        if let Some(mut r) = rec.clone().filter(one_off) {
            // Only a running job needs its input: a finished one keeps its
            // result, and is deleted after the retention period.
            r.spec.input = Vec::new();
            r.spec.args = Vec::new();
            r.spec.env = Vec::new();
            if let Some(sealed) = r.spec.sealed.as_mut() {
                sealed.env = None;
            }
            self.put_job(r);
            self.finished.insert((now_ns, id), ());
        }
        self.book.remove_bid(id);
        if audit_run {
            return;
        }
        self.outbox.push(id, Effect::Settle);
        if let Some(method) = rec.and_then(|r| r.spec.callback) {
            self.outbox.push(id, Effect::Callback { method });
        }
    }

    /// Matches resting bids to an offer's free slots.
    fn serve_offer(&mut self, p: &Params, now_ns: u64, offer_id: OfferId) {
        let Some(offer) = self.book.offer(offer_id) else {
            return;
        };
        for bid in self.book.bids_for(&offer) {
            let Some(current) = self.book.offer(offer_id) else {
                return;
            };
            self.assign(p, now_ns, bid.job_id, &current);
        }
    }

    /// Posts or replaces an offer of `provider` (whose registry record the
    /// caller checked: registered, not jailed, with `backing` and `node`).
    #[allow(clippy::too_many_arguments)]
    pub fn put_offer(
        &mut self,
        p: &Params,
        now_ns: u64,
        provider: Principal,
        node: Principal,
        backing: impl Into<Backing>,
        offer_id: Option<OfferId>,
        spec: OfferSpec,
    ) -> Result<OfferId, MatcherError> {
        let backing = backing.into();
        validate_offer(&spec)?;
        self.pricing.check_source(spec.ledger, spec.currency)?;
        let (id, slots_used, created_at_ns) = match offer_id {
            Some(id) => {
                let old = self
                    .book
                    .offer(id)
                    .ok_or(MatcherError::UnknownOffer { offer_id: id })?;
                if old.offer.provider != provider {
                    return Err(MatcherError::Unauthorized {
                        reason: "not your offer".into(),
                    });
                }
                (id, old.offer.slots_used, old.offer.created_at_ns)
            }
            None => {
                let mine = self.offers_of(provider).len();
                if mine >= MAX_OFFERS_PER_PROVIDER {
                    return Err(MatcherError::LimitReached {
                        what: "offers".into(),
                        limit: MAX_OFFERS_PER_PROVIDER as u64,
                    });
                }
                (self.book.next_offer_id(), 0, now_ns)
            }
        };
        self.bind_node(provider, node);
        let offer = Offer {
            id,
            provider,
            spec,
            slots_used,
            created_at_ns,
        };
        self.book.put_offer(BookOffer {
            offer,
            provider_stake: backing.stake,
            provider_record: backing.record,
        });
        self.serve_offer(p, now_ns, id);
        Ok(id)
    }

    /// Withdraws an offer; running jobs on it go on until they end.
    pub fn withdraw_offer(
        &mut self,
        provider: Principal,
        offer_id: OfferId,
    ) -> Result<(), MatcherError> {
        let offer = self
            .book
            .offer(offer_id)
            .ok_or(MatcherError::UnknownOffer { offer_id })?;
        if offer.offer.provider != provider {
            return Err(MatcherError::Unauthorized {
                reason: "not your offer".into(),
            });
        }
        self.book.remove_offer(offer_id);
        Ok(())
    }

    /// Removes every offer of `provider` from the book; returns their ids.
    pub fn drop_offers_of(&mut self, provider: Principal) -> Vec<OfferId> {
        let ids: Vec<OfferId> = self.offers_of(provider).iter().map(|o| o.id).collect();
        for id in &ids {
            self.book.remove_offer(*id);
        }
        ids
    }

    /// Sets the stake and track record every offer of `provider` shows to
    /// matching.
    pub fn restake_offers(&mut self, provider: Principal, backing: impl Into<Backing>) {
        let backing = backing.into();
        let ids: Vec<OfferId> = self.offers_of(provider).iter().map(|o| o.id).collect();
        for id in ids {
            if let Some(mut o) = self.book.offer(id) {
                o.provider_stake = backing.stake;
                o.provider_record = backing.record.clone();
                self.book.put_offer(o);
            }
        }
    }

    /// A provider's offers.
    pub fn offers_of(&self, provider: Principal) -> Vec<Offer> {
        self.book
            .offers()
            .filter(|o| o.offer.provider == provider)
            .map(|o| o.offer)
            .collect()
    }

    /// Makes `node` the one node acting for `provider`, unbinding the one
    /// it had.
    fn bind_node(&mut self, provider: Principal, node: Principal) {
        if let Some(old) = self.node_of.insert(provider, node)
            && old != node
            && self.nodes.get(&old) == Some(provider)
        {
            self.nodes.remove(&old);
        }
        self.nodes.insert(node, provider);
    }

    /// The provider a caller acts for: the provider whose latest offer named
    /// the caller as its node, or else the caller itself.
    pub fn provider_of(&self, caller: Principal) -> Principal {
        match self.nodes.get(&caller) {
            Some(provider) if self.node_of.get(&provider).is_none_or(|n| n == caller) => provider,
            _ => caller,
        }
    }

    /// Jobs assigned to a provider (by attempt) that are not finished and
    /// whose bond holds (until it does, the job is not the provider's to run).
    pub fn assignments_of(&self, provider: Principal) -> Vec<JobRecord> {
        self.assigned_by_provider
            .keys_range((provider, 0)..=(provider, JobId::MAX))
            .filter_map(|(_, id)| self.job(id))
            .filter(|r| holder_of(r) == Some(provider) && !r.state.bond_pending())
            .collect()
    }

    /// One page of a provider's assignments: the unfinished jobs it holds
    /// from job `start` on, at most `limit` of them, and the job id the
    /// next page starts at. Reads only this provider's index entries.
    pub fn assignments_page(
        &self,
        provider: Principal,
        start: JobId,
        limit: usize,
    ) -> (Vec<JobRecord>, Option<JobId>) {
        let mut ids = self
            .assigned_by_provider
            .keys_range((provider, start)..=(provider, JobId::MAX))
            .map(|(_, id)| id);
        let page: Vec<JobId> = ids.by_ref().take(limit).collect();
        let next = ids.next();
        let held = page
            .into_iter()
            .filter_map(|id| self.job(id))
            .filter(|r| holder_of(r) == Some(provider))
            .collect();
        (held, next)
    }

    /// A job without its input and output bytes, with their sizes and the
    /// input's hash (see [`JobView`]); its args and env too unless `caller`
    /// reads its contents.
    pub fn job_view(&self, caller: Principal, id: JobId) -> Option<JobView> {
        let rec = self.job(id)?;
        let mut job = rec.to_job();
        let args_env_bytes = access::args_env_bytes(&job.spec);
        let contents_hidden = !self.reads_job(caller, &rec);
        let input = std::mem::take(&mut job.spec.input);
        let output_bytes = job
            .result
            .as_mut()
            .map_or(0, |r| std::mem::take(&mut r.output).len());
        if contents_hidden {
            access::hide_job_contents(&mut job);
        }
        Some(JobView {
            args_env_bytes,
            contents_hidden,
            job,
            input_bytes: input.len() as u64,
            input_sha256: sha2::Sha256::digest(&input).into(),
            output_bytes: output_bytes as u64,
        })
    }

    /// Up to [`MAX_CHUNK_BYTES`] of a job's input or output from `offset`,
    /// with the whole part's size and hash, for the job's readers only.
    pub fn job_chunk(
        &self,
        caller: Principal,
        req: &JobChunkRequest,
    ) -> Result<JobChunk, MatcherError> {
        let rec = self
            .job(req.job_id)
            .ok_or(MatcherError::UnknownJob { job_id: req.job_id })?;
        if !self.reads_job(caller, &rec) {
            return Err(MatcherError::Unauthorized {
                reason: "only the job's owner and the provider running it read its contents".into(),
            });
        }
        let whole: &[u8] = match req.part {
            JobPart::Input => &rec.spec.input,
            JobPart::Output if rec.result_withheld() => &[],
            JobPart::Output => rec.state.result.as_ref().map_or(&[], |r| &r.output),
        };
        let start = usize::try_from(req.offset).map_or(whole.len(), |o| o.min(whole.len()));
        let end = start.saturating_add(MAX_CHUNK_BYTES).min(whole.len());
        Ok(JobChunk {
            bytes: whole[start..end].to_vec(),
            total_bytes: whole.len() as u64,
            sha256: sha2::Sha256::digest(whole).into(),
        })
    }

    /// One heartbeat batch from `caller` (a provider or its node).
    pub fn heartbeat(
        &mut self,
        p: &Params,
        now_ns: u64,
        caller: Principal,
        items: &[HeartbeatItem],
    ) -> Result<Vec<HeartbeatAck>, MatcherError> {
        if items.len() > MAX_HEARTBEAT_ITEMS {
            return Err(invalid("items", format!("at most {MAX_HEARTBEAT_ITEMS}")));
        }
        let provider = self.provider_of(caller);
        let mut acks = Vec::with_capacity(items.len());
        for item in items {
            if self.enforce_deadline(p, now_ns, item.job_id) {
                acks.push(HeartbeatAck::Refused {
                    reason: "the heartbeat deadline has passed".into(),
                });
                continue;
            }
            let Some(mut rec) = self.job(item.job_id) else {
                acks.push(HeartbeatAck::Refused {
                    reason: "unknown job".into(),
                });
                continue;
            };
            let acknowledged = match self.service_heartbeat(&rec, item) {
                Ok(ack) => ack,
                Err(reason) => {
                    acks.push(HeartbeatAck::Refused { reason });
                    continue;
                }
            };
            let old = Self::deadline_key(p, &rec.state);
            match rec
                .state
                .heartbeat(now_ns, provider, item.attempt, item.fuel_used)
            {
                Ok(effects) => {
                    self.track_deadline(p, &rec.state, old);
                    let next = self.deadline_of(p, &rec.state).unwrap_or(0);
                    let kind = rec.kind;
                    self.put_job(rec);
                    self.apply(p, now_ns, item.job_id, kind, effects);
                    if let Some(ack) = acknowledged {
                        self.replica_up(p, now_ns, item.job_id, provider, item.attempt, ack);
                    }
                    acks.push(HeartbeatAck::Accepted {
                        next_deadline_ns: next,
                    });
                }
                Err(r) => acks.push(HeartbeatAck::Refused {
                    reason: refusal_text(&r),
                }),
            }
        }
        Ok(acks)
    }

    /// A provider's result.
    pub fn submit_result(
        &mut self,
        p: &Params,
        now_ns: u64,
        caller: Principal,
        args: SubmitResultArgs,
    ) -> Result<(), MatcherError> {
        let provider = self.provider_of(caller);
        self.enforce_deadline(p, now_ns, args.job_id);
        self.transition(p, now_ns, args.job_id, |rec| {
            if matches!(rec.kind, JobKind::ReservedSlot { .. }) {
                return Err(invalid(
                    "job_id",
                    "a reserved slot runs nothing and has no result; it ends with its reservation",
                ));
            }
            let (state, attempt) = (&mut rec.state, args.attempt);
            state
                .submit_result(p, now_ns, provider, attempt, args.result)
                .map_err(|r| refusal_error(state, r))
        })
    }

    /// Makes `step` on job `id`'s record: the deadline index follows its
    /// lifecycle, the record is saved and the step's effects applied.
    /// Nothing changes if the step refuses.
    pub(super) fn transition(
        &mut self,
        p: &Params,
        now_ns: u64,
        id: JobId,
        step: impl FnOnce(&mut JobRecord) -> Result<Vec<Effect>, MatcherError>,
    ) -> Result<(), MatcherError> {
        let mut rec = self
            .job(id)
            .ok_or(MatcherError::UnknownJob { job_id: id })?;
        let old = Self::deadline_key(p, &rec.state);
        let effects = step(&mut rec)?;
        self.track_deadline(p, &rec.state, old);
        let kind = rec.kind;
        self.put_job(rec);
        self.apply(p, now_ns, id, kind, effects);
        Ok(())
    }

    /// The holder hands a job back before its deadline (see
    /// [`JobState::hand_back`]).
    pub fn hand_back(
        &mut self,
        p: &Params,
        now_ns: u64,
        caller: Principal,
        job_id: JobId,
        attempt: u32,
    ) -> Result<Principal, MatcherError> {
        let provider = self.provider_of(caller);
        self.enforce_deadline(p, now_ns, job_id);
        self.transition(p, now_ns, job_id, |rec| {
            let state = &mut rec.state;
            state
                .hand_back(provider, attempt)
                .map_err(|r| refusal_error(state, r))
        })?;
        Ok(provider)
    }

    /// The owner cancels a job.
    pub fn cancel(
        &mut self,
        p: &Params,
        now_ns: u64,
        caller: Principal,
        id: JobId,
    ) -> Result<(), MatcherError> {
        self.transition(p, now_ns, id, |rec| {
            match rec.kind {
                JobKind::Reservation | JobKind::ReservedSlot { .. } => {
                    return Err(invalid(
                        "job_id",
                        "part of a reservation: cancel the reservation instead",
                    ));
                }
                // Its auditor is paid at the verdict: cancelling would take
                // the work without the pay.
                JobKind::Audit { .. } => {
                    return Err(invalid("job_id", "an audit run ends with its audit"));
                }
                JobKind::OneOff | JobKind::InReservation { .. } => {}
            }
            if !rec.funded {
                return Err(MatcherError::Busy);
            }
            let state = &mut rec.state;
            state.cancel(caller).map_err(|r| refusal_error(state, r))
        })
    }

    /// `providers` and every provider acting through one of their nodes
    /// now, sorted and without repeats.
    fn with_node_mates(&self, mut providers: Vec<Principal>) -> Vec<Principal> {
        let mates: Vec<Principal> = providers
            .iter()
            .filter_map(|provider| self.node_of.get(provider))
            .filter_map(|node| self.nodes.get(&node))
            .collect();
        providers.extend(mates);
        providers.sort();
        providers.dedup();
        providers
    }

    /// Handles up to `budget` deadlines that passed by `now_ns`, as the
    /// matcher's outages moved them; returns how many it handled. Each
    /// (job, attempt) deadline is handled once.
    pub fn process_deadlines(&mut self, p: &Params, now_ns: u64, budget: usize) -> usize {
        // Moving is monotone, so the index's order is the moved order: the
        // first deadline not due yet ends the run.
        let due: Vec<(u64, JobId, u32)> = self
            .deadlines
            .keys_range((0, 0, 0)..=(now_ns, JobId::MAX, u32::MAX))
            .take_while(|(d, _, _)| self.moved(p, *d) <= now_ns)
            .take(budget)
            .collect();
        for key in &due {
            self.deadlines.remove(key);
            let (_, id, attempt) = *key;
            let Some(mut rec) = self.job(id) else {
                continue;
            };
            let effects = rec.state.deadline_passed(p, now_ns, attempt);
            self.track_deadline(p, &rec.state, None);
            let kind = rec.kind;
            self.put_job(rec);
            self.apply(p, now_ns, id, kind, effects);
        }
        due.len()
    }

    /// Handles the job's deadline at once if it has passed, so that a
    /// provider's late call (a heartbeat, a result, a hand-back) can't get
    /// in before the deadline timer and escape its slash. Returns whether it
    /// did.
    fn enforce_deadline(&mut self, p: &Params, now_ns: u64, id: JobId) -> bool {
        let Some(mut rec) = self.job(id) else {
            return false;
        };
        let Some(old @ (deadline, attempt)) = Self::deadline_key(p, &rec.state) else {
            return false;
        };
        if now_ns < self.moved(p, deadline) {
            return false;
        }
        let effects = rec.state.deadline_passed(p, now_ns, attempt);
        self.track_deadline(p, &rec.state, Some(old));
        let kind = rec.kind;
        self.put_job(rec);
        self.apply(p, now_ns, id, kind, effects);
        true
    }

    /// Deletes up to `budget` one-off jobs that finished more than
    /// [`FINISHED_JOB_RETENTION_SECS`] ago and have no step left in the
    /// outbox (their events stay in the log); returns how many it deleted.
    pub fn prune_finished(&mut self, now_ns: u64, budget: usize) -> usize {
        let due: Vec<(u64, JobId)> = self
            .finished
            .expired(now_ns, FINISHED_JOB_RETENTION_SECS)
            .filter(|(_, id)| !self.outbox.has_pending(*id))
            .take(budget)
            .collect();
        for (at, id) in &due {
            self.finished.remove(&(*at, *id));
            if let Some(Cbor(rec)) = self.jobs.remove(id) {
                self.jobs_by_owner.remove(&(rec.state.owner, *id));
                self.active_by_owner.remove(&(rec.state.owner, *id));
            }
        }
        due.len()
    }

    /// Records a read of each valued ledger's rate whose last read is not
    /// still pending; returns their step numbers.
    pub fn read_rates(&mut self) -> Vec<u64> {
        let mut seqs = vec![];
        for (i, ledger) in self.pricing.ledgers().into_iter().enumerate() {
            let queue = crate::lifecycle::rates_queue(i);
            if !self.outbox.has_pending(queue) {
                seqs.push(self.outbox.push(queue, Effect::ReadRate { ledger }));
            }
        }
        seqs
    }

    /// Like [`Market::read_rates`], the steps marked in flight for the
    /// caller to make at once.
    pub fn read_rates_in_flight(&mut self, now_ns: u64) -> Vec<u64> {
        let mut seqs = vec![];
        for (i, ledger) in self.pricing.ledgers().into_iter().enumerate() {
            let queue = crate::lifecycle::rates_queue(i);
            if !self.outbox.has_pending(queue) {
                seqs.push(
                    self.outbox
                        .push_in_flight(queue, Effect::ReadRate { ledger }, now_ns),
                );
            }
        }
        seqs
    }

    /// The earliest pending deadline (as the outages moved it), for
    /// arming the timer.
    pub fn next_deadline_ns(&self, p: &Params) -> Option<u64> {
        self.deadlines
            .keys()
            .next()
            .map(|(d, _, _)| self.moved(p, d))
    }

    /// The registry confirmed the bond of `attempt`: the provider may act
    /// on the job, and its deadline starts running.
    pub fn bond_held(&mut self, p: &Params, now_ns: u64, id: JobId, attempt: u32) {
        let Some(mut rec) = self.job(id) else { return };
        let old = Self::deadline_key(p, &rec.state);
        if !rec.state.bond_held(now_ns, attempt) {
            return;
        }
        self.track_deadline(p, &rec.state, old);
        self.put_job(rec);
    }

    /// A bond step failed for good (the provider's stake no longer covers
    /// it): undo the assignment without blaming the buyer or slashing, and
    /// look for another offer.
    pub fn bond_refused(&mut self, p: &Params, now_ns: u64, id: JobId, attempt: u32) {
        let Some(mut rec) = self.job(id) else { return };
        let Some(a) = rec.state.assignment.clone() else {
            return;
        };
        if a.attempt != attempt || rec.state.status.is_terminal() {
            return;
        }
        let old = Self::deadline_key(p, &rec.state);
        rec.state.assignment = None;
        rec.state.status = JobStatus::Open;
        rec.state.failed_providers.push(a.provider);
        let kind = rec.kind;
        self.track_deadline(p, &rec.state, old);
        self.put_job(rec);
        self.book.free_slot(a.offer_id);
        if let JobKind::ReservedSlot { reservation, slot } = kind {
            self.detach(p, now_ns, reservation, slot);
        }
        self.try_match(p, now_ns, id);
    }
}

fn refusal_text(r: &Refusal) -> String {
    match r {
        Refusal::NotAssigned => "the job is not assigned to this provider and attempt".into(),
        Refusal::NotActive(s) => format!("the job is {s:?}"),
        Refusal::TooEarly { not_before_ns } => {
            format!("too early: the next heartbeat is accepted from {not_before_ns}")
        }
        Refusal::NotOwner => "only the job's owner may do this".into(),
        Refusal::BondPending => "the provider's bond for this job is not confirmed yet".into(),
        Refusal::FuelDecreased { reported } => {
            format!("the fuel reported is below the {reported} reported before")
        }
        Refusal::FuelOverBudget { budget } => {
            format!("the fuel reported is above the job's budget of {budget}")
        }
        Refusal::FuelTooFast { allowed } => format!(
            "the fuel reported grew faster than the offer's declared speed: at most {allowed} by now"
        ),
        Refusal::Audited => "the result is being audited, or was".into(),
    }
}

fn refusal_error(state: &JobState, r: Refusal) -> MatcherError {
    match r {
        Refusal::NotActive(status) => MatcherError::InvalidState { status },
        Refusal::NotOwner | Refusal::NotAssigned => MatcherError::Unauthorized {
            reason: refusal_text(&r),
        },
        Refusal::TooEarly { .. } | Refusal::BondPending | Refusal::Audited => {
            MatcherError::InvalidState {
                status: state.status,
            }
        }
        Refusal::FuelDecreased { .. }
        | Refusal::FuelOverBudget { .. }
        | Refusal::FuelTooFast { .. } => invalid("fuel_used", refusal_text(&r)),
    }
}
