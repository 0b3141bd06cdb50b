//! Changes of state that the public event log records. Each function here
//! applies one change and appends its event in the same step, so the log
//! and the state can't drift apart; no other module appends events.

use crate::lifecycle::{AuditNote, Effect};
use crate::market::JobRecord;
use crate::modules::{ModuleMeta, StoreError};
use crate::state::State;
use candid::Principal;
use market_api::matcher::{
    AuditVerdict, DaoRegistration, JobKind, JobStatus, MatcherError, MatcherEvent, OfferSpec,
    SetDelegatesArgs, Sha256, SubmitResultArgs, fuel_cost,
};
use market_api::{JobId, OfferId, Tokens};

/// Commits an upload (see `ModuleStore::commit`).
pub fn commit_module(
    s: &mut State,
    now_ns: u64,
    uploader: Principal,
    sha256: Sha256,
) -> Result<ModuleMeta, StoreError> {
    let m = s.market.modules.commit(now_ns, uploader, sha256)?;
    s.events.append(
        now_ns,
        MatcherEvent::ModuleStored {
            sha256,
            size: m.size,
            uploader,
        },
    );
    Ok(m)
}

/// What an offer is posted with, besides its terms: the provider's
/// registry record as the caller read it.
pub struct OfferPost {
    /// The provider.
    pub provider: Principal,
    /// Its node's principal.
    pub node: Principal,
    /// Its stake and track record.
    pub backing: crate::market::Backing,
    /// The offer to change, or `None` for a new one.
    pub offer_id: Option<OfferId>,
}

/// Posts or changes an offer (see `Market::put_offer`).
pub fn put_offer(
    s: &mut State,
    now_ns: u64,
    post: OfferPost,
    spec: OfferSpec,
) -> Result<OfferId, MatcherError> {
    let params = s.params();
    let offer_id = s.market.put_offer(
        &params,
        now_ns,
        post.provider,
        post.node,
        post.backing,
        post.offer_id,
        spec,
    )?;
    s.events.append(
        now_ns,
        MatcherEvent::OfferChanged {
            offer_id,
            provider: post.provider,
            withdrawn: false,
        },
    );
    Ok(offer_id)
}

/// The registry refused `provider` a bond or jailed it: it can't back new
/// work, so its offers leave the book (jobs running on them go on).
pub fn provider_ineligible(s: &mut State, now_ns: u64, provider: Principal) {
    for offer_id in s.market.drop_offers_of(provider) {
        record_withdrawal(s, now_ns, provider, offer_id);
    }
}

/// Withdraws one of `provider`'s offers.
pub fn withdraw_offer(
    s: &mut State,
    now_ns: u64,
    provider: Principal,
    offer_id: OfferId,
) -> Result<(), MatcherError> {
    s.market.withdraw_offer(provider, offer_id)?;
    record_withdrawal(s, now_ns, provider, offer_id);
    Ok(())
}

/// Records that `provider`'s offer left the book.
fn record_withdrawal(s: &mut State, now_ns: u64, provider: Principal, offer_id: OfferId) {
    s.events.append(
        now_ns,
        MatcherEvent::OfferChanged {
            offer_id,
            provider,
            withdrawn: true,
        },
    );
}

/// Changes a reservation's delegates; returns them.
pub fn set_delegates(
    s: &mut State,
    now_ns: u64,
    caller: Principal,
    args: &SetDelegatesArgs,
) -> Result<Vec<Principal>, MatcherError> {
    let delegates = s.market.set_delegates(caller, args)?;
    s.events.append(
        now_ns,
        MatcherEvent::DelegatesChanged {
            reservation: args.reservation,
            delegates: delegates.clone(),
        },
    );
    Ok(delegates)
}

/// Registers (`registered`) or removes a DAO.
pub fn set_dao(
    s: &mut State,
    now_ns: u64,
    dao: DaoRegistration,
    registered: bool,
) -> Result<(), MatcherError> {
    if registered {
        s.market.register_dao(dao.clone())?;
    } else if !s.market.deregister_dao(dao.governance) {
        return Err(MatcherError::InvalidArgument {
            field: "governance".into(),
            reason: "not registered".into(),
        });
    }
    s.events.append(
        now_ns,
        MatcherEvent::DaoChanged {
            governance: dao.governance,
            name: dao.name,
            registered,
        },
    );
    Ok(())
}

/// The holder of a job gives it back (see `Market::hand_back`).
pub fn hand_back(
    s: &mut State,
    now_ns: u64,
    caller: Principal,
    job_id: JobId,
    attempt: u32,
) -> Result<(), MatcherError> {
    let p = s.params();
    let provider = s.market.hand_back(&p, now_ns, caller, job_id, attempt)?;
    s.events.append(
        now_ns,
        MatcherEvent::JobHandedBack {
            job_id,
            provider,
            attempt,
        },
    );
    Ok(())
}

/// The escrow locked `amount` for a job or reservation: it enters the book
/// (see `Market::job_funded`). Recorded once, however often confirmed.
pub fn job_funded(s: &mut State, now_ns: u64, job_id: JobId, amount: Tokens) {
    if let Some(rec) = s.market.job(job_id).filter(|r| !r.funded) {
        let event = funded_event(s, &rec, amount);
        s.events.append(now_ns, event);
    }
    let p = s.params();
    s.market.job_funded(&p, now_ns, job_id);
}

fn funded_event(s: &State, rec: &JobRecord, amount: Tokens) -> MatcherEvent {
    let id = rec.state.id;
    if rec.kind == JobKind::Reservation {
        return MatcherEvent::ReservationMade {
            reservation: id,
            owner: rec.state.owner,
            slots: s.market.reservation_record(id).map_or(0, |r| r.spec.slots),
            locked: amount,
            ledger: rec.spec.ledger,
        };
    }
    MatcherEvent::JobSubmitted {
        xdr: rec.state.xdr.map(|x| x.terms),
        job_id: id,
        owner: rec.state.owner,
        max_cost: amount,
        ledger: rec.spec.ledger,
    }
}

/// What the escrow locked for a reservation's extension.
pub struct ExtensionLocked {
    /// The reservation.
    pub reservation: JobId,
    /// The extension's number.
    pub number: u32,
    /// Added to the lock.
    pub amount: Tokens,
    /// Intervals added to each slot.
    pub intervals: u32,
    /// The lock's total afterwards, as the escrow reported it.
    pub locked: Tokens,
}

/// The escrow locked an extension: it applies (once; see
/// `Market::apply_extension`).
pub fn extension_locked(s: &mut State, now_ns: u64, ext: ExtensionLocked) {
    s.market
        .apply_extension(ext.reservation, ext.number, ext.amount, ext.intervals);
    s.events.append(
        now_ns,
        MatcherEvent::ReservationExtended {
            reservation: ext.reservation,
            intervals: ext.intervals,
            locked: ext.locked,
        },
    );
}

/// The stake backing assignment `attempt` of a job is bonded: the
/// assignment holds (recorded if it is still the job's assignment).
pub fn job_assigned(s: &mut State, now_ns: u64, job_id: JobId, provider: Principal, attempt: u32) {
    let params = s.params();
    s.market.bond_held(&params, now_ns, job_id, attempt);
    let assigned = s.market.job(job_id).and_then(|r| {
        let conversion = r.state.xdr.and_then(|x| x.conversion);
        r.state
            .assignment
            .filter(|a| a.attempt == attempt)
            .map(|a| (a.price, conversion, a.stake_price))
    });
    if let Some((price, conversion, stake_value)) = assigned {
        s.events.append(
            now_ns,
            MatcherEvent::JobAssigned {
                conversion,
                stake_value: Some(stake_value),
                job_id,
                provider,
                attempt,
                price,
            },
        );
    }
}

/// A release the escrow made from a job's lock.
pub struct Paid {
    /// The job whose lock paid.
    pub job_id: JobId,
    /// Who was paid.
    pub provider: Principal,
    /// The release's number.
    pub seq: u64,
    /// The provider's pay.
    pub amount: Tokens,
    /// The market's fee that left the lock with it.
    pub fee: Tokens,
    /// Fuel reported in all by the attempt (pay held pending), or `None`
    /// for an interval (claimable at once).
    pub fuel: Option<u64>,
}

/// The escrow made release `seq` of a job: its pay to the provider and
/// the market's fee on it.
pub fn paid(s: &mut State, now_ns: u64, paid: Paid) {
    let event = match paid.fuel {
        Some(fuel) => MatcherEvent::FuelPaid {
            job_id: paid.job_id,
            provider: paid.provider,
            seq: paid.seq,
            fuel,
            amount: paid.amount,
            fee: paid.fee,
        },
        None => MatcherEvent::IntervalPaid {
            job_id: paid.job_id,
            provider: paid.provider,
            seq: paid.seq,
            amount: paid.amount,
            fee: paid.fee,
        },
    };
    s.events.append(now_ns, event);
}

/// Top-up `top_up` of a canister's cycles is done: its ICP went to the
/// cycles minting canister in `block_index` and became `cycles`.
pub fn cycles_topped_up(
    s: &mut State,
    now_ns: u64,
    top_up: &crate::top_up::TopUp,
    block_index: u64,
    cycles: u128,
) {
    s.events.append(
        now_ns,
        MatcherEvent::CyclesToppedUp {
            number: top_up.number,
            canister: top_up.canister,
            amount: top_up.amount,
            block_index,
            cycles,
        },
    );
}

/// Top-up `top_up` stopped for good, for `reason`.
pub fn cycles_top_up_failed(
    s: &mut State,
    now_ns: u64,
    top_up: &crate::top_up::TopUp,
    reason: String,
) {
    s.events.append(
        now_ns,
        MatcherEvent::CyclesTopUpFailed {
            number: top_up.number,
            canister: top_up.canister,
            reason,
        },
    );
}

/// A controller sets the market's fee for what is submitted from now on;
/// running jobs and reservations keep theirs.
pub fn set_market_fee(
    s: &mut State,
    now_ns: u64,
    controller: Principal,
    fee_ppm: u32,
) -> Result<(), MatcherError> {
    crate::endpoints::check_market_fee(fee_ppm)?;
    let mut config = s.config();
    config.market_fee_ppm = Some(fee_ppm);
    s.set_config(config);
    s.events.append(
        now_ns,
        MatcherEvent::MarketFeeSet {
            fee_ppm,
            controller,
        },
    );
    Ok(())
}

/// The escrow took a failed attempt's pending pay back into the job's lock.
pub fn pay_forfeited(s: &mut State, now_ns: u64, job_id: JobId, provider: Principal, attempt: u32) {
    s.events.append(
        now_ns,
        MatcherEvent::PayForfeited {
            job_id,
            provider,
            attempt,
        },
    );
}

/// A provider's result (see `Market::submit_result`): a one-off job's
/// opens its challenge window, recorded with the commitment and the bill.
pub fn submit_result(
    s: &mut State,
    now_ns: u64,
    caller: Principal,
    args: SubmitResultArgs,
) -> Result<(), MatcherError> {
    let p = s.params();
    let (job_id, attempt) = (args.job_id, args.attempt);
    s.market.submit_result(&p, now_ns, caller, args)?;
    let Some(rec) = s.market.job(job_id) else {
        return Ok(());
    };
    if let (JobStatus::Reported, Some(a), Some(r), Some(closes)) = (
        rec.state.status,
        &rec.state.assignment,
        &rec.state.result,
        rec.state.window_closes_at_ns,
    ) {
        s.events.append(
            now_ns,
            MatcherEvent::ResultReported {
                job_id,
                provider: a.provider,
                attempt,
                fuel_used: r.fuel_used,
                bill: fuel_cost(r.fuel_used, a.price).unwrap_or(Tokens::MAX),
                window_closes_at_ns: closes,
            },
        );
    }
    Ok(())
}

/// A job's lock is settled (`refunded` went back to the buyer).
pub fn job_finished(s: &mut State, now_ns: u64, job_id: JobId, refunded: Tokens) {
    if let Some(status) = s.market.job(job_id).map(|r| r.state.status) {
        s.events.append(
            now_ns,
            MatcherEvent::JobFinished {
                job_id,
                status,
                refunded,
            },
        );
    }
}

/// An audit of job `job_id` started a run or reached its verdict:
/// recorded and counted.
pub fn announce(s: &mut State, now_ns: u64, job_id: JobId, note: AuditNote) {
    let mut counts = s.audit_counts.get().0;
    let event = match note {
        AuditNote::Started { run, disputed } => {
            counts.runs += 1;
            // A dispute starts one audit; its tie-break is a second run.
            let first = s
                .market
                .job(job_id)
                .and_then(|r| r.state.audit)
                .is_some_and(|a| a.runs.first() == Some(&run));
            if disputed && first {
                counts.disputes += 1;
            }
            MatcherEvent::AuditStarted {
                job_id,
                run,
                disputed,
            }
        }
        AuditNote::Settled { verdict } => {
            match verdict {
                AuditVerdict::Agreed => counts.agreed += 1,
                AuditVerdict::Overturned => counts.overturned += 1,
                AuditVerdict::Inconclusive => counts.inconclusive += 1,
            }
            MatcherEvent::AuditSettled { job_id, verdict }
        }
    };
    s.audit_counts.set(canister_common::codec::Cbor(counts));
    s.events.append(now_ns, event);
}

/// The owner disputes a result: it is audited (see `Market::dispute`).
pub fn dispute(
    s: &mut State,
    now_ns: u64,
    caller: Principal,
    job_id: JobId,
) -> Result<(), MatcherError> {
    let p = s.params();
    s.market.dispute(&p, now_ns, caller, job_id)
}

/// What the registry slashed for a missed deadline or a caught result.
pub struct Slashed {
    /// The job.
    pub job_id: JobId,
    /// The provider that missed it.
    pub provider: Principal,
    /// Its assignment.
    pub attempt: u32,
    /// Stake taken.
    pub slashed: Tokens,
    /// The credit of the payout to the buyer's escrow balance, if one was
    /// paid out.
    pub credit: Option<Effect>,
    /// Whether the slash was for a result that lost its audit (else for a
    /// missed deadline).
    pub caught: bool,
}

/// The registry slashed a provider that missed a deadline or whose result
/// lost its audit; a payout to the buyer's deposit account is credited next.
pub fn slashed(s: &mut State, now_ns: u64, slashed: Slashed) {
    let (job_id, provider, attempt) = (slashed.job_id, slashed.provider, slashed.attempt);
    let event = if slashed.caught {
        MatcherEvent::ResultRejected {
            job_id,
            provider,
            attempt,
            slashed: slashed.slashed,
        }
    } else {
        MatcherEvent::DeadlineMissed {
            job_id,
            provider,
            attempt,
            slashed: slashed.slashed,
        }
    };
    s.events.append(now_ns, event);
    if let Some(effect) = slashed.credit {
        s.market.outbox.push(slashed.job_id, effect);
    }
}

/// Where a replica of a service answers now, for its event.
pub struct ReplicaAddress {
    /// The replica's slot.
    pub slot: u32,
    /// Its provider.
    pub provider: Principal,
    /// Its endpoint (`None`: it lost it).
    pub endpoint: Option<String>,
    /// A TCP service's `host:port`.
    pub tcp_address: Option<String>,
}

/// A replica of service `reservation` got an endpoint or lost it.
pub fn service_endpoint(s: &mut State, now_ns: u64, reservation: JobId, at: ReplicaAddress) {
    s.events.append(
        now_ns,
        MatcherEvent::ServiceEndpoint {
            reservation,
            slot: at.slot,
            provider: at.provider,
            endpoint: at.endpoint,
            tcp_address: at.tcp_address,
        },
    );
}

/// A probe of slot job `slot_id`'s `attempt` was answered (see
/// `Market::probe_answered`): counted, and a failure recorded.
pub fn probed(s: &mut State, now_ns: u64, slot_id: JobId, attempt: u32, healthy: Option<bool>) {
    let p = s.params();
    let answer = s
        .market
        .probe_answered(&p, now_ns, slot_id, attempt, healthy);
    let mut counts = s.probe_counts.get().0;
    counts.probes = counts.probes.saturating_add(1);
    if healthy == Some(false) {
        counts.failures = counts.failures.saturating_add(1);
    }
    s.probe_counts.set(canister_common::codec::Cbor(counts));
    if let Some(a) = answer.filter(|a| a.failed) {
        s.events.append(
            now_ns,
            MatcherEvent::ProbeFailed {
                reservation: a.reservation,
                slot: a.slot,
                provider: a.provider,
                consecutive: a.consecutive,
            },
        );
    }
}
