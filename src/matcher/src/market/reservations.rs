//! Reserved capacity: a buyer (a DAO, typically) reserves K slots of a
//! given size for N intervals, and its delegates run jobs in them without
//! paying again.
//!
//! A reservation is built from the job lifecycle rather than beside it:
//! - its record is a job of kind [`JobKind::Reservation`] whose lock (the
//!   usual `job/<id>` key) holds slots x intervals x max price;
//! - each slot is a job of kind [`JobKind::ReservedSlot`] that is matched in
//!   the book like a bid, bonded, heartbeated every interval whether busy or
//!   idle and paid per interval, slashed and matched anew when its provider
//!   misses a deadline, and ends when its intervals are used up. Its releases
//!   are drawn from the reservation's lock, numbered `slot << 32 | n`, and
//!   recorded in the reservation's outbox queue, so the reservation's settle
//!   (queued when the last slot ends) always comes after every release;
//! - a job of the owner or a delegate is a job of kind
//!   [`JobKind::InReservation`]: it costs nothing (no lock, no bond, no
//!   release, no slash), waits in the reservation's queue, runs in an idle
//!   held slot on that slot's provider, and goes back to the queue if the
//!   slot loses its provider. It runs for at most its own `max_intervals`.
//!
//! A reservation with a service is a service lease: its slots run replicas
//! of one component instead of jobs (see [`super::services`]).

use super::*;
use market_api::matcher::Reservation;
use market_api::matcher::{
    DaoRegistration, ExtendReservationArgs, JobLimits, ReservationSpec, ReservationStatus,
    ReservedJobArgs, ReservedSlotView, SetDelegatesArgs,
};

/// Most slots in one reservation.
pub const MAX_RESERVED_SLOTS: u32 = 16;
/// Most delegates of one reservation.
pub const MAX_DELEGATES: usize = 16;
/// Most jobs waiting in one reservation's queue.
pub const MAX_QUEUED_JOBS: usize = 1_000;
/// Most registered DAOs.
pub const MAX_DAOS: u64 = 10_000;
/// Longest DAO name.
pub const MAX_DAO_NAME_LEN: usize = 64;

/// What the matcher keeps about a reservation besides its job record.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReservationRecord {
    /// Its terms: `intervals` grows with extensions, `delegates` changes.
    pub spec: ReservationSpec,
    /// The slots' job ids (empty until the lock is confirmed).
    pub slots: Vec<JobId>,
    /// The job running in each slot.
    pub running: Vec<Option<JobId>>,
    /// Amounts added to the lock by extensions, in order.
    pub extensions: Vec<Tokens>,
    /// Total locked: the first term and every extension, the market's
    /// fee on them included.
    pub locked: Tokens,
    /// The part of `locked` held for the market's fee.
    #[serde(default)]
    pub fee_locked: Tokens,
    /// Where it is.
    pub status: ReservationStatus,
    /// Whether the lock's settle has been queued.
    pub settled: bool,
    /// An extension asked of the escrow whose answer is not in yet.
    #[serde(default)]
    pub pending_extension: Option<Extension>,
    /// A service lease's replicas, one per slot (empty otherwise).
    #[serde(default)]
    pub replicas: Vec<super::services::Replica>,
    /// What one probe costs this lease (the matcher's fee when it was made).
    #[serde(default)]
    pub probe_fee: Tokens,
    /// Probes of one replica per interval, as the lease was priced.
    #[serde(default)]
    pub probes_per_interval: u64,
    /// The part of `locked` held for probes: the most their fee takes.
    #[serde(default)]
    pub probe_locked: Tokens,
    /// Probes made of the lease's replicas.
    #[serde(default)]
    pub probes: u64,
    /// For a reservation priced in XDR: each slot's highest price per
    /// interval in the ledger's token (what the lock covers), and the
    /// slots' XDR terms. Extensions lock at that price.
    #[serde(default)]
    pub xdr: Option<SlotXdr>,
    /// The rate from the reservation's token to the stake ledger's
    /// smallest unit when it was locked (`None`: the stake ledger's token).
    #[serde(default)]
    pub stake_rate: Option<market_api::prices::Ratio>,
}

/// What a reservation locks, in its ledger's token (see
/// [`lease_terms`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTerms {
    /// For an XDR price: the slots' terms.
    pub xdr: Option<SlotXdr>,
    /// Each slot's highest price per interval in tokens.
    pub max_price: Tokens,
    /// What one probe costs the lease, in tokens.
    pub probe_fee: Tokens,
    /// The part of the lock held for probes.
    pub probe_locked: Tokens,
    /// The part of the lock held for the market's fee on the rest.
    pub fee_locked: Tokens,
    /// The whole lock.
    pub locked: Tokens,
}

/// The XDR terms of a reservation's slots.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotXdr {
    /// The highest price per slot and interval in the ledger's token.
    pub max_price: Tokens,
    /// The bid's terms (its price per interval in cycles) and the lock's rate.
    pub terms: market_api::prices::XdrTerms,
    /// What the lock holds for the slots, in the ledger's token.
    pub lock: Tokens,
}

/// Checks every bound of a reservation.
pub fn validate_reservation(spec: &ReservationSpec) -> Result<(), MatcherError> {
    if spec.slots == 0 || spec.slots > MAX_RESERVED_SLOTS {
        return Err(invalid("slots", format!("1 to {MAX_RESERVED_SLOTS}")));
    }
    super::check_limits(
        "memory_mib",
        spec.memory_mib,
        spec.fuel_per_interval,
        MAX_FUEL_PER_INTERVAL,
    )?;
    if spec.interval_secs == 0 || spec.interval_secs > MAX_INTERVAL_SECS {
        return Err(invalid(
            "interval_secs",
            format!("1 to {MAX_INTERVAL_SECS}"),
        ));
    }
    if spec.intervals == 0 || spec.intervals > MAX_INTERVALS {
        return Err(invalid("intervals", format!("1 to {MAX_INTERVALS}")));
    }
    if spec.max_price_per_interval == 0 {
        return Err(invalid("max_price_per_interval", "must be positive"));
    }
    if reservation_cost(spec).is_none() {
        return Err(invalid("max_price_per_interval", "maximum cost overflows"));
    }
    if spec.max_rematches > 10 {
        return Err(invalid("max_rematches", "at most 10"));
    }
    if let Some(service) = &spec.service {
        super::services::validate_service(service)?;
        if !spec.delegates.is_empty() {
            return Err(invalid(
                "delegates",
                "a service lease runs its component, not jobs: it has no delegates",
            ));
        }
    }
    check_delegates(&spec.delegates)
}

fn check_delegates(delegates: &[Principal]) -> Result<(), MatcherError> {
    if delegates.len() > MAX_DELEGATES {
        return Err(invalid("delegates", format!("at most {MAX_DELEGATES}")));
    }
    if delegates.contains(&Principal::anonymous()) {
        return Err(invalid("delegates", "the anonymous principal can't be one"));
    }
    Ok(())
}

/// The most a reservation can cost (the rule lives in the API crate, so
/// buyers' tools price a reservation the way the matcher does).
pub use market_api::matcher::reservation_cost;

/// The spec of a reservation's slots (and of its record): the size and
/// terms; there is no module, nothing runs. Its price is per interval, in
/// the job state (see [`slot_state`]).
fn slot_spec(spec: &ReservationSpec) -> JobSpec {
    JobSpec {
        sealed: None,
        currency: None,
        module: ModuleSource::Stored { sha256: [0; 32] },
        input: vec![],
        args: vec![],
        env: vec![],
        limits: JobLimits {
            memory_mib: spec.memory_mib,
            fuel: spec.fuel_per_interval,
        },
        max_price_per_gfuel: 0,
        deadline_secs: None,
        interval_secs: spec.interval_secs,
        ledger: spec.ledger,
        min_provider_stake: spec.min_provider_stake,
        min_record: None,
        max_retries: spec.max_rematches,
        callback: None,
        audit_ppm: None,
    }
}

/// The state of a new reservation record or slot of `owner`: paid per
/// interval, for the reservation's intervals at up to `price` each.
fn slot_state(id: JobId, owner: Principal, spec: &ReservationSpec, price: Tokens) -> JobState {
    JobState::per_interval(id, owner, &slot_spec(spec), spec.intervals, price)
}

/// The intervals a job in a reservation may run for: its own deadline's,
/// else what its fuel budget needs at the slot's fuel per interval, with
/// the same margin as a one-off job's default deadline.
fn reserved_job_intervals(spec: &JobSpec, slot_fuel_per_interval: u64, interval_secs: u64) -> u32 {
    let intervals = match spec.deadline_secs {
        Some(d) => d.div_ceil(interval_secs.max(1)),
        None => spec
            .limits
            .fuel
            .div_ceil(slot_fuel_per_interval.max(1))
            .saturating_mul(market_api::matcher::DEADLINE_MARGIN)
            .saturating_add(1),
    };
    u32::try_from(intervals)
        .unwrap_or(u32::MAX)
        .clamp(1, MAX_INTERVALS)
}

/// What a reservation of `spec` locks at `rates`: for an XDR price,
/// the slots' cost in cycles converted, plus the buffer; for a
/// service lease, what its probes can cost, their fee (in the stake
/// ledger's smallest unit) converted into the lease's token, rounded up.
pub fn lease_terms(
    pricing: &crate::rates::Pricing,
    p: &Params,
    spec: &ReservationSpec,
    rates: &crate::rates::BidRates,
) -> Result<LeaseTerms, MatcherError> {
    let overflows = || invalid("max_price_per_interval", "maximum cost overflows");
    let probe_fee = rates.from_stake_ceil(p.probe_fee).ok_or_else(overflows)?;
    let xdr = match rates.xdr_valuation() {
        Some(v) => Some(price_xdr_slots(spec, v, pricing.config.rate_buffer_ppm())?),
        None => None,
    };
    let max_price = xdr.map_or(spec.max_price_per_interval, |x| x.max_price);
    let token_spec = ReservationSpec {
        max_price_per_interval: max_price,
        ..spec.clone()
    };
    let probe_locked =
        market_api::matcher::service_probe_cost(&token_spec, p.probe_interval_secs, probe_fee)
            .ok_or_else(overflows)?;
    let slots_locked = match xdr {
        Some(x) => x.lock,
        None => reservation_cost(spec).ok_or_else(overflows)?,
    };
    let pay = slots_locked
        .checked_add(probe_locked)
        .ok_or_else(overflows)?;
    let fee_locked =
        market_api::matcher::market_fee_ceil(pay, p.market_fee_ppm).ok_or_else(overflows)?;
    let locked = pay.checked_add(fee_locked).ok_or_else(overflows)?;
    Ok(LeaseTerms {
        xdr,
        max_price,
        probe_fee,
        probe_locked,
        fee_locked,
        locked,
    })
}

/// Prices the slots of an XDR reservation at its ledger's valuation `v`:
/// the lock holds slots x intervals x the highest price in cycles at `v`,
/// rounded up, plus `buffer_ppm`; each slot's price in tokens is capped at
/// its share of the lock per interval.
fn price_xdr_slots(
    spec: &ReservationSpec,
    v: market_api::prices::Valuation,
    buffer_ppm: u32,
) -> Result<SlotXdr, MatcherError> {
    let overflows = || invalid("max_price_per_interval", "maximum cost overflows");
    let cycles = reservation_cost(spec).ok_or_else(overflows)?;
    let lock = market_api::prices::lock_for_xdr(cycles, &v, buffer_ppm).ok_or_else(overflows)?;
    let per_slot = lock / Tokens::from(spec.slots.max(1));
    let max_price = per_slot / Tokens::from(spec.intervals.max(1));
    if max_price == 0 {
        return Err(invalid(
            "max_price_per_interval",
            "too low to pay anything in the ledger's token at today's rate",
        ));
    }
    Ok(SlotXdr {
        max_price,
        terms: market_api::prices::XdrTerms {
            max_price_cycles: spec.max_price_per_interval,
            lock_rate: v,
            buffer_ppm: if v.is_fixed() { 0 } else { buffer_ppm },
        },
        lock,
    })
}

/// What an extension takes: its number and the amount to add to the lock.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension {
    /// Numbers the reservation's extensions from 1.
    pub number: u32,
    /// Added to the lock.
    pub amount: Tokens,
    /// Slots it covers (those not ended).
    pub live_slots: u32,
    /// Intervals it adds to each slot.
    pub intervals: u32,
    /// The part of `amount` held for a service lease's probes.
    #[serde(default)]
    pub probe_amount: Tokens,
    /// The part of `amount` held for the market's fee (at the
    /// reservation's rate).
    #[serde(default)]
    pub fee: Tokens,
}

impl<M: Memory> Market<M> {
    pub(super) fn next_job_id(&self) -> JobId {
        self.jobs.last_key_value().map_or(1, |(k, _)| k + 1)
    }

    /// A reservation's record.
    pub fn reservation_record(&self, id: JobId) -> Option<ReservationRecord> {
        self.reservations.get(&id).map(|c| c.0)
    }

    pub(super) fn put_reservation(&mut self, id: JobId, r: ReservationRecord) {
        self.reservations.insert(id, Cbor(r));
    }

    /// Records a new reservation, not yet funded; its lock is asked for next,
    /// exactly as for a job (see [`Market::create_job`]).
    ///
    /// A service lease also locks what its probes can cost at the
    /// matcher's current probe interval and fee (see
    /// [`market_api::matcher::lease_cost`]), and pins a stored component in
    /// the module store until it ends (its record's module is the
    /// component, so dropping it unfunded lets the component go).
    pub fn create_reservation(
        &mut self,
        p: &Params,
        now_ns: u64,
        owner: Principal,
        spec: ReservationSpec,
    ) -> Result<JobRecord, MatcherError> {
        validate_reservation(&spec)?;
        self.check_sealing_enabled(spec.service.as_ref().and_then(|s| s.sealed.as_ref()))?;
        let rates = self
            .pricing
            .bid_rates(now_ns / 1_000_000_000, spec.ledger, spec.currency)?;
        let terms = lease_terms(&self.pricing, p, &spec, &rates)?;
        if self.active_jobs_of(owner) >= MAX_ACTIVE_JOBS_PER_OWNER {
            return Err(MatcherError::LimitReached {
                what: "active jobs and reservations".into(),
                limit: MAX_ACTIVE_JOBS_PER_OWNER,
            });
        }
        let component = spec.service.as_ref().map(|s| s.component.clone());
        if let Some(ModuleSource::Stored { sha256 }) = &component {
            match self.modules.meta(sha256) {
                Some(m) if m.committed => {}
                _ => return Err(MatcherError::UnknownModule { sha256: *sha256 }),
            }
            self.modules
                .acquire(sha256)
                .map_err(|_| MatcherError::UnknownModule { sha256: *sha256 })?;
        }
        let id = self.next_job_id();
        let all_slots = terms.max_price * Tokens::from(spec.slots);
        let mut record_spec = slot_spec(&spec);
        if let Some(component) = component {
            record_spec.module = component;
        }
        let mut state = slot_state(id, owner, &spec, all_slots);
        state.stake_rate = rates.stake_rate;
        state.fee_ppm = p.market_fee_ppm;
        let rec = JobRecord {
            state,
            spec: record_spec,
            submitted_at_ns: now_ns,
            funded: false,
            kind: JobKind::Reservation,
            audit_pick: None,
            keys: Default::default(),
        };
        let service = spec.service.is_some();
        self.put_job(rec.clone());
        self.index_owner(owner, id);
        self.put_reservation(
            id,
            ReservationRecord {
                replicas: if service {
                    vec![Default::default(); spec.slots as usize]
                } else {
                    vec![]
                },
                spec,
                slots: vec![],
                running: vec![],
                extensions: vec![],
                locked: terms.locked,
                fee_locked: terms.fee_locked,
                status: ReservationStatus::Funding,
                settled: false,
                pending_extension: None,
                probe_fee: if service { terms.probe_fee } else { 0 },
                probes_per_interval: if service {
                    market_api::matcher::probes_per_interval(
                        rec.spec.interval_secs,
                        p.probe_interval_secs,
                    )
                } else {
                    0
                },
                probe_locked: if service { terms.probe_locked } else { 0 },
                probes: 0,
                xdr: terms.xdr,
                stake_rate: rates.stake_rate,
            },
        );
        Ok(rec)
    }

    /// The amount a reservation's lock holds: its slots' and, for a
    /// service lease, its probes' maximum cost.
    pub(super) fn reservation_lock_amount(&self, id: JobId) -> Option<Tokens> {
        self.reservation_record(id).map(|r| r.locked)
    }

    /// The lock is confirmed: the slots are created and matched.
    pub(super) fn activate_reservation(&mut self, p: &Params, now_ns: u64, id: JobId) {
        let Some(mut r) = self.reservation_record(id) else {
            return;
        };
        let Some(mut rec) = self.job(id) else { return };
        if r.status != ReservationStatus::Funding {
            return;
        }
        for slot in 0..r.spec.slots {
            let slot_id = self.next_job_id();
            let mut state = slot_state(
                slot_id,
                rec.state.owner,
                &r.spec,
                r.xdr.map_or(r.spec.max_price_per_interval, |x| x.max_price),
            );
            state.stake_rate = r.stake_rate;
            state.fee_ppm = rec.state.fee_ppm;
            state.xdr = r.xdr.map(|x| crate::lifecycle::XdrPricing {
                terms: x.terms,
                lock: x.max_price.saturating_mul(Tokens::from(r.spec.intervals)),
                conversion: None,
            });
            self.put_job(JobRecord {
                state,
                spec: slot_spec(&r.spec),
                submitted_at_ns: now_ns,
                funded: true,
                kind: JobKind::ReservedSlot {
                    reservation: id,
                    slot,
                },
                audit_pick: None,
                keys: Default::default(),
            });
            r.slots.push(slot_id);
            r.running.push(None);
        }
        r.status = ReservationStatus::Active;
        rec.state.status = JobStatus::Running;
        self.put_job(rec);
        let slots = r.slots.clone();
        self.put_reservation(id, r);
        for slot_id in slots {
            self.try_match(p, now_ns, slot_id);
        }
    }

    /// Effects of a slot's transition: releases go to the reservation's
    /// lock (in the reservation's outbox queue), a freed slot loses its
    /// running job to the queue, and the last slot to end settles the lock.
    pub(super) fn apply_slot(
        &mut self,
        p: &Params,
        now_ns: u64,
        slot_id: JobId,
        reservation: JobId,
        slot: u32,
        effects: Vec<Effect>,
    ) {
        for effect in effects {
            match effect {
                mut release @ Effect::Release { .. } => {
                    release.number_in_slot(slot);
                    self.outbox.push(reservation, release);
                }
                Effect::FreeSlot { offer_id } => {
                    self.book.free_slot(offer_id);
                    self.replica_down(reservation, slot_id, slot);
                    self.detach(p, now_ns, reservation, slot);
                    self.serve_offer(p, now_ns, offer_id);
                }
                Effect::Requeue => {
                    self.try_match(p, now_ns, slot_id);
                }
                Effect::Settle => {
                    self.book.remove_bid(slot_id);
                    self.end_if_done(p, now_ns, reservation);
                }
                Effect::Callback { .. } => {}
                other => {
                    self.outbox.push(slot_id, other);
                }
            }
        }
    }

    /// Effects of a transition of a job in a reservation: it pays nothing
    /// and bonds nothing; it frees its slot or goes back to the queue.
    pub(super) fn apply_reserved_job(
        &mut self,
        p: &Params,
        now_ns: u64,
        id: JobId,
        reservation: JobId,
        effects: Vec<Effect>,
    ) {
        for effect in effects {
            match effect {
                Effect::FreeSlot { .. } => {
                    if let Some(mut r) = self.reservation_record(reservation) {
                        for running in r.running.iter_mut() {
                            if *running == Some(id) {
                                *running = None;
                            }
                        }
                        self.put_reservation(reservation, r);
                    }
                    self.serve_reservation(p, now_ns, reservation);
                }
                Effect::Requeue => {
                    self.reserved_queue.insert((reservation, id), ());
                    self.serve_reservation(p, now_ns, reservation);
                }
                Effect::Settle => self.settle_job(now_ns, id),
                other => {
                    self.outbox.push(id, other);
                }
            }
        }
    }

    /// Takes the job running in a slot back to the reservation's queue (its
    /// slot lost its provider; the job is not to blame).
    pub(super) fn detach(&mut self, p: &Params, now_ns: u64, reservation: JobId, slot: u32) {
        let Some(mut r) = self.reservation_record(reservation) else {
            return;
        };
        let Some(job_id) = r.running.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.put_reservation(reservation, r);
        if let Some(mut rec) = self.job(job_id)
            && !rec.state.status.is_terminal()
        {
            let old = Self::deadline_key(p, &rec.state);
            if let Some(a) = rec.state.assignment.take() {
                rec.state.last_assignment = Some((a.provider, a.price));
            }
            rec.state.status = JobStatus::Open;
            self.track_deadline(p, &rec.state, old);
            self.put_job(rec);
            self.reserved_queue.insert((reservation, job_id), ());
        }
        self.serve_reservation(p, now_ns, reservation);
    }

    /// Starts queued jobs in the reservation's idle held slots; once the
    /// reservation is over, ends the jobs still queued.
    pub(super) fn serve_reservation(&mut self, p: &Params, now_ns: u64, reservation: JobId) {
        let Some(mut r) = self.reservation_record(reservation) else {
            return;
        };
        if r.status != ReservationStatus::Active {
            let queued: Vec<JobId> = self.queued(reservation).collect();
            for id in queued {
                self.reserved_queue.remove(&(reservation, id));
                if let Some(mut rec) = self.job(id)
                    && !rec.state.status.is_terminal()
                {
                    let effects = rec.state.end(JobStatus::Expired);
                    self.put_job(rec);
                    self.apply_reserved_job(p, now_ns, id, reservation, effects);
                }
            }
            return;
        }
        for (i, slot_id) in r.slots.clone().into_iter().enumerate() {
            if r.running[i].is_some() {
                continue;
            }
            let Some(holder) = self.job(slot_id).and_then(|s| {
                matches!(s.state.status, JobStatus::Assigned | JobStatus::Running)
                    .then_some(s.state.assignment)
                    .flatten()
            }) else {
                continue;
            };
            let Some(job_id) = self.queued(reservation).next() else {
                break;
            };
            self.reserved_queue.remove(&(reservation, job_id));
            let Some(mut rec) = self.job(job_id) else {
                continue;
            };
            // The slot's stake price is already in the stake ledger's
            // unit (records from before it was kept have its price).
            let stake_price = if holder.stake_price > 0 {
                holder.stake_price
            } else {
                holder.price
            };
            let effects =
                rec.state
                    .assign_in_slot(p, now_ns, holder.provider, slot_id, stake_price);
            self.track_deadline(p, &rec.state, None);
            self.put_job(rec);
            r.running[i] = Some(job_id);
            debug_assert!(effects.is_empty(), "a reserved job bonds nothing");
        }
        self.put_reservation(reservation, r);
    }

    fn queued(&self, reservation: JobId) -> impl Iterator<Item = JobId> + '_ {
        self.reserved_queue
            .keys_range((reservation, 0)..=(reservation, JobId::MAX))
            .map(|(_, id)| id)
    }

    /// Once every slot has ended: the reservation ends, its queued jobs
    /// with it, and its lock is settled (after every release, which sit
    /// before the settle in the reservation's outbox queue).
    fn end_if_done(&mut self, p: &Params, now_ns: u64, reservation: JobId) {
        let Some(mut r) = self.reservation_record(reservation) else {
            return;
        };
        if r.settled
            || r.slots
                .iter()
                .any(|id| self.job(*id).is_some_and(|s| !s.state.status.is_terminal()))
        {
            return;
        }
        r.settled = true;
        let cancelled = r.status == ReservationStatus::Cancelled;
        if !cancelled {
            r.status = ReservationStatus::Ended;
        }
        let probe_fee = super::services::probe_fee_due(&r);
        let component = r.spec.service.as_ref().map(|s| s.component.clone());
        self.put_reservation(reservation, r);
        if let Some(ModuleSource::Stored { sha256 }) = component {
            self.modules.release(now_ns, &sha256);
        }
        if probe_fee > 0 {
            // Before the settle: the refund is what the probes left.
            self.outbox
                .push(reservation, Effect::ProbeFee { amount: probe_fee });
        }
        if let Some(mut rec) = self.job(reservation) {
            rec.state.status = if cancelled {
                JobStatus::Cancelled
            } else {
                JobStatus::Expired
            };
            self.put_job(rec);
        }
        self.serve_reservation(p, now_ns, reservation);
        self.outbox.push(reservation, Effect::Settle);
    }

    /// The owner cancels a reservation: its slots end now (intervals already
    /// heartbeated stay paid), its jobs end, and the rest of the lock
    /// returns to the owner.
    pub fn cancel_reservation(
        &mut self,
        p: &Params,
        now_ns: u64,
        caller: Principal,
        reservation: JobId,
    ) -> Result<(), MatcherError> {
        let mut r = self.owned(caller, reservation)?;
        match r.status {
            ReservationStatus::Active => {}
            ReservationStatus::Funding => return Err(MatcherError::Busy),
            _ => {
                return Err(invalid("reservation", "already ended"));
            }
        }
        r.status = ReservationStatus::Cancelled;
        let slots = r.slots.clone();
        self.put_reservation(reservation, r);
        for slot_id in slots {
            let Some(mut rec) = self.job(slot_id) else {
                continue;
            };
            if rec.state.status.is_terminal() {
                continue;
            }
            let old = Self::deadline_key(p, &rec.state);
            let effects = rec.state.end(JobStatus::Cancelled);
            self.track_deadline(p, &rec.state, old);
            let kind = rec.kind;
            self.put_job(rec);
            self.apply(p, now_ns, slot_id, kind, effects);
        }
        self.end_if_done(p, now_ns, reservation);
        Ok(())
    }

    fn owned(
        &self,
        caller: Principal,
        reservation: JobId,
    ) -> Result<ReservationRecord, MatcherError> {
        let r = self
            .reservation_record(reservation)
            .ok_or(MatcherError::UnknownJob {
                job_id: reservation,
            })?;
        let owner = self.job(reservation).map(|j| j.state.owner);
        if owner != Some(caller) {
            return Err(MatcherError::Unauthorized {
                reason: "only the reservation's owner may do this".into(),
            });
        }
        Ok(r)
    }

    /// Checks an extension and prices it; nothing changes until
    /// [`Market::apply_extension`], once the escrow has locked the amount.
    pub fn prepare_extension(
        &self,
        caller: Principal,
        args: &ExtendReservationArgs,
    ) -> Result<Extension, MatcherError> {
        let r = self.owned(caller, args.reservation)?;
        if r.status != ReservationStatus::Active {
            return Err(invalid(
                "reservation",
                "only an active reservation can be extended",
            ));
        }
        if r.pending_extension.is_some() {
            // The escrow's answer to the last extension is not in yet.
            return Err(MatcherError::Busy);
        }
        let total = r.spec.intervals.checked_add(args.intervals);
        if args.intervals == 0 || total.is_none_or(|t| t > MAX_INTERVALS) {
            return Err(invalid(
                "intervals",
                format!("positive, and at most {MAX_INTERVALS} in all"),
            ));
        }
        let live_slots = r
            .slots
            .iter()
            .filter(|id| {
                self.job(**id)
                    .is_some_and(|s| !s.state.status.is_terminal())
            })
            .count() as u32;
        let overflows = || invalid("intervals", "the cost overflows");
        let slot_intervals = Tokens::from(live_slots)
            .checked_mul(Tokens::from(args.intervals))
            .ok_or_else(overflows)?;
        let probe_amount = slot_intervals
            .checked_mul(Tokens::from(r.probes_per_interval))
            .and_then(|n| n.checked_mul(r.probe_fee))
            .ok_or_else(overflows)?;
        // An XDR reservation extends at its slots' price in tokens.
        let pay = r
            .xdr
            .map_or(r.spec.max_price_per_interval, |x| x.max_price)
            .checked_mul(slot_intervals)
            .and_then(|a| a.checked_add(probe_amount))
            .ok_or_else(overflows)?;
        // At the reservation's own rate, whatever the market's is now.
        let fee_ppm = self
            .job(args.reservation)
            .map_or(0, |rec| rec.state.fee_ppm);
        let fee = market_api::matcher::market_fee_ceil(pay, fee_ppm).ok_or_else(overflows)?;
        Ok(Extension {
            number: r.extensions.len() as u32 + 1,
            amount: pay.checked_add(fee).ok_or_else(overflows)?,
            live_slots,
            intervals: args.intervals,
            probe_amount,
            fee,
        })
    }

    /// Records that extension `ext` is being asked of the escrow, before the
    /// call: the reservation holds it as pending, and the outbox holds the
    /// escrow step in flight. The caller settles the step with the answer;
    /// an answer that never comes (an unknown outcome, a callback dropped by
    /// an upgrade or a trap) leaves the step to the outbox, which asks again
    /// with the same number. Returns the step's number.
    pub fn begin_extension(&mut self, now_ns: u64, reservation: JobId, ext: Extension) -> u64 {
        if let Some(mut r) = self.reservation_record(reservation) {
            r.pending_extension = Some(ext);
            self.put_reservation(reservation, r);
        }
        self.outbox.push_in_flight(
            reservation,
            Effect::ExtendLock {
                number: ext.number,
                amount: ext.amount,
                intervals: ext.intervals,
            },
            now_ns,
        )
    }

    /// The escrow refused extension `number`: it is forgotten.
    pub fn extension_refused(&mut self, reservation: JobId, number: u32) {
        if let Some(mut r) = self.reservation_record(reservation)
            && r.pending_extension.is_some_and(|e| e.number == number)
        {
            r.pending_extension = None;
            self.put_reservation(reservation, r);
        }
    }

    /// Applies extension `number` once its amount is locked; a repeat is
    /// ignored. Slots that ended meanwhile are not revived: their share is
    /// refunded when the reservation settles.
    pub fn apply_extension(
        &mut self,
        reservation: JobId,
        number: u32,
        amount: Tokens,
        intervals: u32,
    ) {
        let Some(mut r) = self.reservation_record(reservation) else {
            return;
        };
        if r.extensions.len() as u32 + 1 != number {
            return;
        }
        let (probe_amount, fee) = r
            .pending_extension
            .filter(|e| e.number == number)
            .map_or((0, 0), |e| (e.probe_amount, e.fee));
        r.probe_locked = r.probe_locked.saturating_add(probe_amount);
        r.fee_locked = r.fee_locked.saturating_add(fee);
        r.pending_extension = None;
        r.extensions.push(amount);
        r.locked = r.locked.saturating_add(amount);
        r.spec.intervals = r.spec.intervals.saturating_add(intervals);
        for slot_id in &r.slots {
            if let Some(mut rec) = self.job(*slot_id)
                && !rec.state.status.is_terminal()
            {
                rec.state.max_intervals = rec.state.max_intervals.saturating_add(intervals);
                self.put_job(rec);
            }
        }
        if let Some(mut rec) = self.job(reservation) {
            rec.state.max_intervals = rec.state.max_intervals.saturating_add(intervals);
            self.put_job(rec);
        }
        self.put_reservation(reservation, r);
    }

    /// Adds and removes delegates; returns the new list.
    pub fn set_delegates(
        &mut self,
        caller: Principal,
        args: &SetDelegatesArgs,
    ) -> Result<Vec<Principal>, MatcherError> {
        let delegates = self.delegates_after(caller, args)?;
        let mut r = self.owned(caller, args.reservation)?;
        r.spec.delegates = delegates.clone();
        self.put_reservation(args.reservation, r);
        Ok(delegates)
    }

    /// The delegates `args` would leave, checked; nothing changes.
    pub fn delegates_after(
        &self,
        caller: Principal,
        args: &SetDelegatesArgs,
    ) -> Result<Vec<Principal>, MatcherError> {
        let r = self.owned(caller, args.reservation)?;
        if matches!(
            r.status,
            ReservationStatus::Ended | ReservationStatus::Cancelled
        ) {
            return Err(invalid("reservation", "already ended"));
        }
        if args.add.len() > MAX_DELEGATES || args.remove.len() > MAX_DELEGATES {
            return Err(invalid("add", format!("at most {MAX_DELEGATES} each")));
        }
        let mut delegates = r.spec.delegates;
        for p in &args.add {
            if !delegates.contains(p) {
                delegates.push(*p);
            }
        }
        delegates.retain(|p| !args.remove.contains(p));
        check_delegates(&delegates)?;
        Ok(delegates)
    }

    /// A job of the owner or a delegate, to run in the reservation's slots.
    pub fn submit_reserved_job(
        &mut self,
        p: &Params,
        now_ns: u64,
        caller: Principal,
        args: ReservedJobArgs,
    ) -> Result<JobId, MatcherError> {
        let reservation = args.reservation;
        let r = self.check_reserved_job(caller, &args)?;
        let mut spec = args.spec;
        spec.ledger = r.spec.ledger;
        spec.interval_secs = r.spec.interval_secs;
        spec.min_provider_stake = 0;
        // Validated (in create_job) as if it had a price; it has none.
        spec.max_price_per_gfuel = 1;
        let intervals = reserved_job_intervals(&spec, r.spec.fuel_per_interval, spec.interval_secs);
        // Paid by its slot, it has no price of its own to convert.
        spec.currency = None;
        let mut rec = self.new_job(p, now_ns, caller, spec, false)?;
        rec.spec.max_price_per_gfuel = 0;
        // Paid by its slot: nothing of its own, for at most `intervals`.
        rec.state = JobState::per_interval(rec.state.id, caller, &rec.spec, intervals, 0);
        rec.funded = true;
        rec.kind = JobKind::InReservation { reservation };
        let id = rec.state.id;
        self.put_job(rec);
        self.reserved_queue.insert((reservation, id), ());
        self.serve_reservation(p, now_ns, reservation);
        Ok(id)
    }

    /// Checks who may run `args` in the reservation and that it fits a slot.
    pub fn check_reserved_job(
        &self,
        caller: Principal,
        args: &ReservedJobArgs,
    ) -> Result<ReservationRecord, MatcherError> {
        let r = self
            .reservation_record(args.reservation)
            .ok_or(MatcherError::UnknownJob {
                job_id: args.reservation,
            })?;
        let owner = self.job(args.reservation).map(|j| j.state.owner);
        if owner != Some(caller) && !r.spec.delegates.contains(&caller) {
            return Err(MatcherError::Unauthorized {
                reason: "only the reservation's owner and delegates may run jobs in it".into(),
            });
        }
        if r.status != ReservationStatus::Active {
            return Err(invalid("reservation", "not active"));
        }
        if r.spec.service.is_some() {
            return Err(invalid(
                "reservation",
                "a service lease runs its component, not jobs",
            ));
        }
        if args.spec.limits.memory_mib > r.spec.memory_mib {
            return Err(invalid(
                "limits",
                format!("the reserved slots have {} MiB", r.spec.memory_mib),
            ));
        }
        if self.queued(args.reservation).count() >= MAX_QUEUED_JOBS {
            return Err(MatcherError::LimitReached {
                what: "jobs queued in the reservation".into(),
                limit: MAX_QUEUED_JOBS as u64,
            });
        }
        Ok(r)
    }

    /// The public view of a reservation.
    pub fn reservation(&self, id: JobId) -> Option<Reservation> {
        let r = self.reservation_record(id)?;
        let rec = self.job(id)?;
        let slots: Vec<ReservedSlotView> = r
            .slots
            .iter()
            .zip(&r.running)
            .filter_map(|(slot_id, running)| {
                let job = self.job(*slot_id)?.to_job();
                Some(ReservedSlotView {
                    job_id: *slot_id,
                    status: job.status,
                    provider: job.provider,
                    price_per_interval: job.price,
                    intervals_paid: job.intervals_paid,
                    rematches: job.retries_used,
                    running: *running,
                })
            })
            .collect();
        let (slots_paid, fee_paid) = r.slots.iter().filter_map(|id| self.job(*id)).fold(
            (0u128, 0u128),
            |(paid, fees), s| {
                (
                    paid.saturating_add(s.state.released),
                    fees.saturating_add(s.state.fee_paid),
                )
            },
        );
        // A service lease pays its probes' fee with its settle.
        let probes_paid = if r.settled {
            super::services::probe_fee_due(&r)
        } else {
            0
        };
        let paid = slots_paid.saturating_add(probes_paid);
        Some(Reservation {
            id,
            owner: rec.state.owner,
            spec: r.spec.clone(),
            status: r.status,
            slots,
            locked: r.locked,
            paid,
            market_fee: market_api::matcher::MarketFee {
                fee_ppm: rec.state.fee_ppm,
                locked: r.fee_locked,
                paid: fee_paid,
            },
            queued_jobs: self.queued(id).count() as u64,
            created_at_ns: rec.submitted_at_ns,
        })
    }

    /// An owner's reservations, from `start` (a reservation id) on, as
    /// `caller` may see them (see [`super::access`]).
    pub fn reservations_of(
        &self,
        caller: Principal,
        owner: Principal,
        start: JobId,
        limit: usize,
    ) -> Vec<Reservation> {
        self.jobs_by_owner
            .keys_range((owner, start)..=(owner, JobId::MAX))
            .filter(|(_, id)| self.reservations.contains_key(id))
            .take(limit)
            .filter_map(|(_, id)| self.reservation_for(caller, id))
            .collect()
    }

    /// Active reservations and the slots they hold (matched to a provider).
    pub fn reservation_gauges(&self) -> (u64, u64) {
        let mut active = 0;
        let mut held = 0;
        for e in self.reservations.iter() {
            let r = e.value().0;
            if r.status != ReservationStatus::Active {
                continue;
            }
            active += 1;
            held += r
                .slots
                .iter()
                .filter(|id| self.job(**id).is_some_and(|j| j.state.assignment.is_some()))
                .count() as u64;
        }
        (active, held)
    }

    /// Registers a DAO's governance canister (or renames it).
    pub fn register_dao(&mut self, dao: DaoRegistration) -> Result<(), MatcherError> {
        self.check_dao(&dao)?;
        self.daos.insert(dao.governance, Cbor(dao.name));
        Ok(())
    }

    /// Whether `dao` may be registered (or renamed); nothing changes.
    pub fn check_dao(&self, dao: &DaoRegistration) -> Result<(), MatcherError> {
        if dao.governance == Principal::anonymous() {
            return Err(invalid("governance", "not the anonymous principal"));
        }
        if dao.name.is_empty() || dao.name.len() > MAX_DAO_NAME_LEN {
            return Err(invalid("name", format!("1 to {MAX_DAO_NAME_LEN} bytes")));
        }
        if !self.daos.contains_key(&dao.governance) && self.daos.len() >= MAX_DAOS {
            return Err(MatcherError::LimitReached {
                what: "registered DAOs".into(),
                limit: MAX_DAOS,
            });
        }
        Ok(())
    }

    /// Removes a DAO; `true` if it was registered.
    pub fn deregister_dao(&mut self, governance: Principal) -> bool {
        self.daos.remove(&governance).is_some()
    }

    /// The name of a registered DAO's governance canister.
    pub fn dao_name(&self, governance: Principal) -> Option<String> {
        self.daos.get(&governance).map(|c| c.0)
    }

    /// Registered DAOs, from `start` on.
    pub fn daos(&self, limit: usize) -> Vec<DaoRegistration> {
        self.daos
            .iter()
            .take(limit)
            .map(|e| DaoRegistration {
                governance: *e.key(),
                name: e.value().0,
            })
            .collect()
    }
}
