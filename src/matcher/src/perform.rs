//! The performer: the one module that calls other canisters (through the
//! [`Runtime`]), and what their answers mean for the matcher's state.
//!
//! Value-moving calls are outbox steps, recorded before the call. Whether an
//! entry point makes the call at once (`submit_job`, `extend_reservation`)
//! or the timer runs it later, the same [`perform`] makes it: a reject, a
//! busy callee or an unknown outcome leaves the step pending, to be retried
//! with the same idempotency key; a definite answer completes it.
//!
//! The other calls here only read (a provider's registry record, a balance)
//! or act for one caller who gets the answer (a DAO's withdrawal).

use crate::audit::{self, ExtensionLocked, Slashed};
use crate::governance::DaoContext;
use crate::lifecycle::{Effect, PROBE_FEE_SEQ, StakeKey, StakeOp, lock_key};
use crate::market::JobRecord;
use crate::market::keys::{KeyCounts, KeyGrant};
use crate::outbox::Step;
use crate::runtime::Runtime;
use crate::state::{mutate_state, read_state};
use candid::Principal;
use market_api::client::CallError;
use market_api::escrow::{
    EscrowError, ExtendLockArgs, ForfeitArgs, LockArgs, NotifyDepositArgs, ReleaseArgs, SettleArgs,
    WithdrawArgs, WithdrawForArgs,
};
use market_api::matcher::{JobKind, JobNotice, MAX_NOTICE_MESSAGE_BYTES, MatcherError};
use market_api::outcall::{
    HttpMethod, HttpRequestArgs, PROBE_MAX_RESPONSE_BYTES, TransformContext, TransformFunc,
    http_request_cycles, request_bytes,
};
use market_api::privacy::{JOB_KEY_CONTEXT, JobKey, PUBLIC_KEY_BYTES, PrivacyKey};
use market_api::registry::{BondArgs, RecordArgs, RegistryError, SlashArgs};
use market_api::sns::SnsAction;
use market_api::{Account, JobId, Tokens};

/// Most steps started by one run.
pub const STEPS_PER_RUN: usize = 50;

/// What performing a step came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done; the step leaves the outbox.
    Done,
    /// The callee refused for good: the step leaves the outbox, and the
    /// refusal is for the caller that made the call at once, if any.
    Refused(MatcherError),
    /// Not done yet: retried later with the same key.
    Retry(String),
}

fn retry(e: CallError) -> Outcome {
    Outcome::Retry(format!("{e:?}"))
}

/// Escrow `release` of `paid` from its job's lock (held as pending pay
/// when it pays for fuel), recorded once the escrow made it; a refusal is
/// logged as `what` refused.
async fn release(rt: &impl Runtime, escrow: Principal, paid: audit::Paid, what: String) -> Outcome {
    let args = ReleaseArgs {
        job_key: lock_key(paid.job_id),
        seq: paid.seq,
        provider: paid.provider,
        amount: paid.amount,
        hold: paid.fuel.is_some(),
        fee: paid.fee,
    };
    match rt.release(escrow, &args).await {
        Ok(Err(EscrowError::Busy)) => Outcome::Retry("escrow busy".into()),
        Ok(Ok(_)) => {
            let t = rt.now_ns();
            mutate_state(|s| audit::paid(s, t, paid));
            Outcome::Done
        }
        Ok(Err(e)) => logged_done(rt, &format!("{what} refused: {e:?}")),
        Err(e) => retry(e),
    }
}

/// A refusal that only needs a line in the log: the step is done.
fn logged_done(rt: &impl Runtime, message: &str) -> Outcome {
    rt.log(message);
    Outcome::Done
}

/// The escrow's deposit account of `owner`, where a slash payout is sent
/// before `notify_deposit` credits it.
fn deposit_account(escrow: Principal, owner: Principal) -> Account {
    Account {
        owner: escrow,
        subaccount: market_api::escrow::deposit_subaccount(owner),
    }
}

/// What a buyer's callback receives about a finished job: ids, outcome,
/// cost and the output's length and hash, never the job's input or output,
/// so the call's argument stays under [`market_api::matcher::MAX_NOTICE_BYTES`]
/// (the whole job can pass the IC's 2 MiB limit on a call's argument, and
/// such a call is never made). The buyer reads the output with `job_output`.
pub fn notice(rec: &JobRecord) -> JobNotice {
    let st = &rec.state;
    let result = st.result.as_ref();
    let held = st.assignment.as_ref().map(|a| (a.provider, a.price));
    let shown = held.or(st.last_assignment);
    JobNotice {
        job_id: st.id,
        reservation: match rec.kind {
            JobKind::InReservation { reservation } => Some(reservation),
            _ => None,
        },
        status: st.status,
        outcome: result.map(|r| r.outcome.truncated(MAX_NOTICE_MESSAGE_BYTES)),
        fuel_used: result.map(|r| r.fuel_used),
        provider: shown.map(|(p, _)| p),
        price: shown.map(|(_, price)| price),
        intervals_paid: st.intervals_paid,
        paid: st.released,
        output_len: result.map_or(0, |r| r.output.len() as u64),
        output_sha256: result.map(|r| r.output_sha256),
    }
}

/// Makes the call of one step and applies the answer to the state. The
/// caller completes the step or schedules its retry.
pub async fn perform(rt: &impl Runtime, job_id: JobId, effect: Effect) -> Outcome {
    let config = read_state(|s| s.config());
    let (escrow, registry) = (config.escrow, config.registry);
    match effect {
        Effect::Lock {
            buyer,
            ledger,
            amount,
            stored_bytes,
        } => {
            let args = LockArgs {
                job_key: lock_key(job_id),
                buyer,
                ledger,
                amount,
                stored_bytes,
            };
            match rt.lock(escrow, &args).await {
                Ok(Ok(_)) => {
                    let t = rt.now_ns();
                    mutate_state(|s| audit::job_funded(s, t, job_id, amount));
                    Outcome::Done
                }
                Ok(Err(EscrowError::Busy)) => Outcome::Retry("escrow busy".into()),
                Ok(Err(e)) => {
                    let t = rt.now_ns();
                    mutate_state(|s| s.market.drop_unfunded(t, job_id));
                    Outcome::Refused(MatcherError::Escrow(e))
                }
                Err(e) => retry(e),
            }
        }
        Effect::Bond {
            key,
            provider,
            amount,
        } => bond(rt, registry, job_id, key, provider, amount).await,
        Effect::Unbond { key } => match rt.unbond(registry, &key.to_string()).await {
            Ok(Err(RegistryError::Busy)) => Outcome::Retry("registry busy".into()),
            Ok(_) => Outcome::Done,
            Err(e) => retry(e),
        },
        Effect::Record {
            key,
            provider,
            event,
        } => {
            let args = RecordArgs {
                provider,
                key: key.to_string(),
                event,
            };
            match rt.record(registry, &args).await {
                Ok(Err(RegistryError::Busy)) => Outcome::Retry("registry busy".into()),
                Ok(Ok(())) => Outcome::Done,
                // A provider that deregistered and left: nothing to count on.
                Ok(Err(e)) => {
                    logged_done(rt, &format!("job {job_id}: record {key} refused: {e:?}"))
                }
                Err(e) => retry(e),
            }
        }
        Effect::Release {
            seq,
            provider,
            amount,
            fuel,
            fee,
        } => {
            let paid = audit::Paid {
                job_id,
                provider,
                seq,
                amount,
                fee,
                fuel,
            };
            release(rt, escrow, paid, format!("job {job_id}: release {seq}")).await
        }
        Effect::Forfeit { provider, attempt } => {
            let args = ForfeitArgs {
                job_key: lock_key(job_id),
                provider,
            };
            match rt.forfeit(escrow, &args).await {
                Ok(Err(EscrowError::Busy)) => Outcome::Retry("escrow busy".into()),
                Ok(Ok(_)) => {
                    let t = rt.now_ns();
                    mutate_state(|s| audit::pay_forfeited(s, t, job_id, provider, attempt));
                    Outcome::Done
                }
                Ok(Err(e)) => logged_done(
                    rt,
                    &format!("job {job_id}: forfeit of {provider} refused: {e:?}"),
                ),
                Err(e) => retry(e),
            }
        }
        Effect::Settle if !has_lock(job_id) => {
            // A job run in a reservation's slot has no lock of its own.
            let t = rt.now_ns();
            mutate_state(|s| audit::job_finished(s, t, job_id, 0));
            Outcome::Done
        }
        Effect::Settle => {
            let args = SettleArgs {
                job_key: lock_key(job_id),
            };
            match rt.settle(escrow, &args).await {
                Ok(Err(EscrowError::Busy)) => Outcome::Retry("escrow busy".into()),
                Ok(result) => {
                    // What the lock neither paid its providers nor the
                    // market's fee.
                    let refunded = match &result {
                        Ok(lock) => lock
                            .total
                            .saturating_sub(lock.released)
                            .saturating_sub(lock.fee_paid),
                        Err(_) => 0,
                    };
                    let t = rt.now_ns();
                    mutate_state(|s| audit::job_finished(s, t, job_id, refunded));
                    Outcome::Done
                }
                Err(e) => retry(e),
            }
        }
        Effect::Slash {
            key,
            provider,
            amount,
            owner,
        } => {
            let caught = key.op == StakeOp::Caught;
            let reason = if caught {
                format!("result of job {job_id} lost its audit")
            } else {
                format!("missed heartbeat deadline of job {job_id}")
            };
            let args = SlashArgs {
                provider,
                amount,
                beneficiary: deposit_account(escrow, owner),
                reason,
                key: key.to_string(),
            };
            match rt.slash(registry, &args).await {
                // Busy, or the ledger failed (its fee or the payout): nothing
                // was taken, or the payout is pending in the registry; asking
                // again with the same key settles it and never slashes twice.
                Ok(Err(e @ (RegistryError::Busy | RegistryError::Ledger(_)))) => {
                    Outcome::Retry(format!("slash: {e:?}"))
                }
                Ok(Ok(outcome)) => {
                    let credit = (outcome.paid_out > 0).then_some(Effect::NotifyDeposit {
                        ledger: config.stake_ledger,
                        beneficiary: owner,
                    });
                    let slashed = Slashed {
                        job_id,
                        provider,
                        attempt: key.attempt,
                        slashed: outcome.slashed,
                        credit,
                        caught,
                    };
                    let t = rt.now_ns();
                    mutate_state(|s| {
                        audit::slashed(s, t, slashed);
                        if outcome.jailed {
                            audit::provider_ineligible(s, t, provider);
                        }
                    });
                    Outcome::Done
                }
                Ok(Err(e)) => logged_done(rt, &format!("job {job_id}: slash refused: {e:?}")),
                Err(e) => retry(e),
            }
        }
        Effect::NotifyDeposit {
            ledger,
            beneficiary,
        } => {
            let args = NotifyDepositArgs {
                ledger,
                beneficiary,
            };
            match rt.notify_deposit(escrow, &args).await {
                Ok(Err(EscrowError::Busy)) => Outcome::Retry("escrow busy".into()),
                Ok(_) => Outcome::Done,
                Err(e) => retry(e),
            }
        }
        Effect::Callback { method } => {
            let job = read_state(|s| s.market.job(job_id).map(|r| (r.state.owner, notice(&r))));
            if let Some((owner, notice)) = job {
                // Delivered once: whatever the buyer's canister answers (or
                // if it traps), the step is done and nothing else changes.
                let _ = rt.deliver_notice(owner, &method, &notice).await;
            }
            Outcome::Done
        }
        Effect::ExtendLock {
            number,
            amount,
            intervals,
        } => {
            let args = ExtendLockArgs {
                job_key: lock_key(job_id),
                extension: number,
                amount,
            };
            match rt.extend_lock(escrow, &args).await {
                Ok(Ok(lock)) => {
                    let ext = ExtensionLocked {
                        reservation: job_id,
                        number,
                        amount,
                        intervals,
                        locked: lock.total,
                    };
                    let t = rt.now_ns();
                    mutate_state(|s| audit::extension_locked(s, t, ext));
                    Outcome::Done
                }
                Ok(Err(EscrowError::Busy)) => Outcome::Retry("escrow busy".into()),
                Ok(Err(e)) => {
                    rt.log(&format!(
                        "reservation {job_id}: extension {number} refused: {e:?}"
                    ));
                    mutate_state(|s| s.market.extension_refused(job_id, number));
                    Outcome::Refused(MatcherError::Escrow(e))
                }
                Err(e) => retry(e),
            }
        }
        Effect::DrawAudit { attempt } => match rt.raw_rand().await {
            Ok(randomness) => {
                let t = rt.now_ns();
                mutate_state(|s| {
                    let p = s.params();
                    s.market.audit_drawn(&p, t, job_id, attempt, &randomness);
                });
                Outcome::Done
            }
            Err(e) => retry(e),
        },
        Effect::Announce { note } => {
            let t = rt.now_ns();
            mutate_state(|s| audit::announce(s, t, job_id, note));
            Outcome::Done
        }
        Effect::Probe { attempt, url } => {
            let args = probe_request(rt.self_id(), url);
            let cycles = http_request_cycles(request_bytes(&args), PROBE_MAX_RESPONSE_BYTES);
            let healthy = match rt.http_request(&args, cycles).await {
                Ok(answer) => Some(answer.is_success()),
                // Unreachable, refused, too large, too slow: the replica
                // did not answer its health path.
                Err(CallError::Rejected { .. }) => Some(false),
                // Lost in the IC, not the replica's doing: counts neither way.
                Err(CallError::OutcomeUnknown | CallError::BadReply { .. }) => None,
            };
            let t = rt.now_ns();
            mutate_state(|s| audit::probed(s, t, job_id, attempt, healthy));
            Outcome::Done
        }
        Effect::Endpoint {
            slot,
            provider,
            endpoint,
            tcp_address,
        } => {
            let t = rt.now_ns();
            mutate_state(|s| {
                audit::service_endpoint(
                    s,
                    t,
                    job_id,
                    audit::ReplicaAddress {
                        slot,
                        provider,
                        endpoint,
                        tcp_address,
                    },
                )
            });
            Outcome::Done
        }
        Effect::ServiceNotice { method, notice } => {
            let owner = read_state(|s| s.market.job(job_id).map(|r| r.state.owner));
            if let Some(owner) = owner {
                // Delivered once, like a job's notice.
                let _ = rt.deliver_service_notice(owner, &method, &notice).await;
            }
            Outcome::Done
        }
        Effect::ProbeFee { amount } => {
            // The matcher pays itself from the lease's lock.
            let paid = audit::Paid {
                job_id,
                provider: rt.self_id(),
                seq: PROBE_FEE_SEQ,
                amount,
                fee: 0,
                fuel: None,
            };
            release(rt, escrow, paid, format!("lease {job_id}: probe fee")).await
        }
        Effect::ReadRate { ledger } => {
            read_rate(rt, &config, ledger).await;
            Outcome::Done
        }
        Effect::TopUp { number } => crate::top_up::perform(rt, number).await,
        Effect::FreeSlot { .. } | Effect::Requeue => Outcome::Done,
    }
}

/// Reads `ledger`'s rate from its source and records the valuation, or
/// why there is none. Done either way: the next refresh reads again.
async fn read_rate(
    rt: &impl Runtime,
    config: &market_api::matcher::MatcherInit,
    ledger: Principal,
) {
    use market_api::prices::{RateSource, Valuation, xrc};
    let Some(pricing) = config.pricing.as_ref() else {
        return;
    };
    let read = if ledger == config.stake_ledger {
        let Some(cmc) = pricing.cmc else { return };
        match rt.icp_xdr_rate(cmc).await {
            Ok(reply) => Valuation::from_cmc(&reply.data)
                .ok_or_else(|| "the cycles minting canister's rate is zero".to_string()),
            Err(e) => Err(format!("cycles minting canister: {e:?}")),
        }
    } else {
        match pricing.source(ledger) {
            None => return,
            Some(RateSource::Cycles) => Ok(Valuation::cycles()),
            Some(RateSource::ExchangeRate {
                canister,
                symbol,
                decimals,
            }) => match rt.exchange_rate(*canister, &xrc::xdr_rate_of(symbol)).await {
                Ok(xrc::GetExchangeRateResult::Ok(rate)) => Valuation::from_xrc(&rate, *decimals)
                    .ok_or_else(|| format!("exchange rate canister: unusable rate {rate:?}")),
                Ok(xrc::GetExchangeRateResult::Err(e)) => {
                    Err(format!("exchange rate canister: {e:?}"))
                }
                Err(e) => Err(format!("exchange rate canister: {e:?}")),
            },
        }
    };
    if let Err(e) = &read {
        rt.log(&format!("rate of {ledger}: {e}"));
    }
    let t = rt.now_ns();
    mutate_state(|s| s.record_rate(t, ledger, read));
}

/// Records a read of every ledger's rate that has none pending, marked
/// in flight, and makes them at once; the reads already pending are left
/// to the outbox.
pub async fn refresh_rates(rt: &impl Runtime) {
    let t = rt.now_ns();
    let seqs = mutate_state(|s| s.market.read_rates_in_flight(t));
    let runs = seqs.into_iter().map(|seq| perform_now(rt, seq));
    futures::future::join_all(runs).await;
}

/// The outcall probing `url`: a GET without headers or body, at most
/// [`PROBE_MAX_RESPONSE_BYTES`] back, reduced by the matcher's
/// `transform_probe` to its status so that every node agrees.
pub fn probe_request(matcher: Principal, url: String) -> HttpRequestArgs {
    HttpRequestArgs {
        url,
        max_response_bytes: Some(PROBE_MAX_RESPONSE_BYTES),
        method: HttpMethod::Get,
        headers: vec![],
        body: None,
        transform: Some(TransformContext {
            function: TransformFunc(candid::Func {
                principal: matcher,
                method: TRANSFORM_PROBE.into(),
            }),
            context: vec![],
        }),
        is_replicated: None,
    }
}

/// The matcher's query method that reduces a probe's answer to its status.
pub const TRANSFORM_PROBE: &str = "transform_probe";

async fn bond(
    rt: &impl Runtime,
    registry: Principal,
    job_id: JobId,
    key: StakeKey,
    provider: Principal,
    amount: Tokens,
) -> Outcome {
    let (min_stake, min_record) = read_state(|s| {
        s.market
            .job(job_id)
            .map(|r| (r.spec.min_provider_stake, r.spec.min_record))
    })
    .unwrap_or_default();
    let args = BondArgs {
        provider,
        amount,
        key: key.to_string(),
        min_stake: (min_stake > 0).then_some(min_stake),
        min_record,
    };
    match rt.bond(registry, &args).await {
        Ok(Ok(())) => {
            let t = rt.now_ns();
            mutate_state(|s| audit::job_assigned(s, t, job_id, provider, key.attempt));
            Outcome::Done
        }
        Ok(Err(RegistryError::Busy)) => Outcome::Retry("registry busy".into()),
        Ok(Err(e)) => {
            let t = rt.now_ns();
            let ineligible = matches!(e, RegistryError::Jailed | RegistryError::NotRegistered);
            mutate_state(|s| {
                if ineligible {
                    audit::provider_ineligible(s, t, provider);
                }
                let p = s.params();
                s.market.bond_refused(&p, t, job_id, key.attempt)
            });
            if matches!(e, RegistryError::InsufficientStake { .. }) {
                restake_offers(rt, provider).await;
            }
            Outcome::Done
        }
        Err(e) => retry(e),
    }
}

/// The registry found `provider`'s stake short of a bond: its offers' stake
/// was stale. Reads its standing again: a provider the registry no longer
/// deems eligible (below its minimum stake, say) leaves the book; another
/// keeps its offers with the stake it has now, so jobs asking for more
/// pass it by. If the registry can't be reached, the next refusal asks
/// again.
async fn restake_offers(rt: &impl Runtime, provider: Principal) {
    let standing = provider_standing(rt, provider).await;
    let t = rt.now_ns();
    mutate_state(|s| match standing {
        Ok(standing) => s.market.restake_offers(provider, standing.backing),
        Err(MatcherError::Unauthorized { .. }) => audit::provider_ineligible(s, t, provider),
        Err(_) => {}
    });
}

/// Whether the job's funds sit in a lock of its own (not so for the jobs
/// and slots of a reservation, whose lock is the reservation's).
fn has_lock(job_id: JobId) -> bool {
    read_state(|s| s.market.job(job_id).map(|r| r.kind))
        .is_none_or(|k| matches!(k, JobKind::OneOff | JobKind::Reservation))
}

/// Completes step `seq`, or schedules its retry. A done step that may
/// have paid the market (`may_pay`: [`Effect::may_pay_market`] of its
/// effect) has the watchdog read the matcher's balance soon.
fn finish(rt: &impl Runtime, seq: u64, may_pay: bool, outcome: &Outcome) {
    let t = rt.now_ns();
    let paid = may_pay && matches!(outcome, Outcome::Done);
    mutate_state(|s| match outcome {
        Outcome::Done | Outcome::Refused(_) => {
            if paid {
                crate::top_up::balance_may_have_grown(s);
            }
            s.market.outbox.complete(seq);
        }
        Outcome::Retry(error) => s.market.outbox.retry_later(t, seq, error.clone()),
    });
    if paid {
        rt.watchdog_soon();
    }
}

/// Performs step `seq`, recorded in flight by the caller a moment ago, at
/// once (so its caller learns the answer), and completes it or leaves it to
/// the outbox. If this message's callback is lost (an upgrade while the
/// call is out, a trap), the step goes stale and the outbox asks again.
async fn perform_now(rt: &impl Runtime, seq: u64) -> Outcome {
    let Some(Step { job_id, effect, .. }) = read_state(|s| s.market.outbox.get(seq)) else {
        return Outcome::Done;
    };
    rt.schedule();
    let may_pay = effect.may_pay_market();
    let outcome = perform(rt, job_id, effect).await;
    finish(rt, seq, may_pay, &outcome);
    rt.schedule();
    outcome
}

/// Runs the ready steps (up to [`STEPS_PER_RUN`]) concurrently.
pub async fn run_ready_steps(rt: &impl Runtime) {
    let t = rt.now_ns();
    let ready = mutate_state(|s| s.market.outbox.take_ready(t, STEPS_PER_RUN));
    let runs = ready.into_iter().map(|(seq, step)| async move {
        let may_pay = step.effect.may_pay_market();
        let outcome = perform(rt, step.job_id, step.effect).await;
        finish(rt, seq, may_pay, &outcome);
    });
    futures::future::join_all(runs).await;
}

/// Locks a new job's or reservation's maximum cost in the escrow; on
/// success the job enters the book (or the reservation's slots do).
///
/// The lock is in the outbox before the call: if the outcome is unknown, or
/// this message's callback traps after the escrow locked, the outbox asks
/// again with the same key and funds the job (or drops it if refused), so
/// the buyer's funds are never stranded. The job's id is returned then too.
pub async fn fund(rt: &impl Runtime, rec: JobRecord) -> Result<JobId, MatcherError> {
    let id = rec.state.id;
    let t = rt.now_ns();
    let Some(seq) = mutate_state(|s| s.market.lock_in_flight(t, id)) else {
        return Err(MatcherError::Busy);
    };
    match perform_now(rt, seq).await {
        Outcome::Refused(e) => Err(e),
        Outcome::Done | Outcome::Retry(_) => Ok(id),
    }
}

/// Locks the amount of a reservation's extension, recorded as outbox step
/// `seq` (see `Market::begin_extension`). An unknown outcome leaves it to
/// the outbox, which asks again with the same number and amount (applied at
/// most once) and applies the extension, or forgets it if refused.
pub async fn lock_extension(rt: &impl Runtime, seq: u64) -> Result<(), MatcherError> {
    match perform_now(rt, seq).await {
        Outcome::Refused(e) => Err(e),
        Outcome::Done | Outcome::Retry(_) => Ok(()),
    }
}

fn unreachable(canister: &str, e: CallError) -> MatcherError {
    MatcherError::Downstream {
        canister: canister.into(),
        message: format!("{e:?}"),
    }
}

/// Checks that `caller` holds a balance in the escrow (uploading modules
/// needs one, so storage can't be filled for free).
pub async fn require_escrow_balance(
    rt: &impl Runtime,
    caller: Principal,
) -> Result<(), MatcherError> {
    let escrow = read_state(|s| s.config().escrow);
    let balances = rt
        .balances_of(escrow, caller)
        .await
        .map_err(|e| unreachable("escrow", e))?;
    if !balances.iter().any(|b| b.free > 0 || b.locked > 0) {
        return Err(MatcherError::Unauthorized {
            reason: "uploading needs a balance in the escrow".into(),
        });
    }
    Ok(())
}

/// A provider's standing in the registry, as an offer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The provider's node principal.
    pub node: Principal,
    /// Free plus bonded stake, and the track record.
    pub backing: crate::market::Backing,
}

/// Asks the registry whether `caller` may offer: registered, not jailed or
/// deregistered, and eligible by the registry's own rule (its minimum stake
/// among others), so an offer never stands that no job could be bonded to.
pub async fn provider_standing(
    rt: &impl Runtime,
    caller: Principal,
) -> Result<Standing, MatcherError> {
    let registry = read_state(|s| s.config().registry);
    let provider = rt
        .get_provider(registry, caller)
        .await
        .map_err(|e| unreachable("registry", e))?;
    let Some(p) = provider else {
        return Err(MatcherError::Unauthorized {
            reason: "register as a provider first".into(),
        });
    };
    if p.jailed || p.deregistered {
        return Err(MatcherError::Unauthorized {
            reason: "jailed or deregistered providers can't offer".into(),
        });
    }
    let eligibility = rt
        .eligibility(registry, caller)
        .await
        .map_err(|e| unreachable("registry", e))?;
    if let Some(why) = eligibility.ineligible {
        return Err(MatcherError::Unauthorized {
            reason: format!("the registry says this provider can't take work: {why:?}"),
        });
    }
    Ok(Standing {
        node: p.profile.node,
        backing: crate::market::Backing {
            stake: p.stake.free.saturating_add(p.stake.bonded),
            record: p.record,
        },
    })
}

/// Withdraws from `owner`'s escrow balance on its behalf (a DAO's
/// withdrawal voted by proposal); returns the ledger block index.
pub async fn withdraw_for(
    rt: &impl Runtime,
    owner: Principal,
    args: WithdrawArgs,
) -> Result<Tokens, MatcherError> {
    let escrow = read_state(|s| s.config().escrow);
    let args = WithdrawForArgs { owner, args };
    match rt.withdraw_for(escrow, &args).await {
        Ok(Ok(block)) => Ok(block),
        Ok(Err(e)) => Err(MatcherError::Escrow(e)),
        Err(e) => Err(MatcherError::Downstream {
            canister: "escrow".into(),
            message: format!("outcome unknown (the escrow's pending operation resolves it): {e:?}"),
        }),
    }
}

/// The DAO `governance` (registered as `name`), with its escrow balance on
/// the action's ledger, as its proposals are checked.
pub async fn dao_context(
    rt: &impl Runtime,
    governance: Principal,
    name: String,
    action: &SnsAction,
) -> Result<DaoContext, String> {
    let reservation_ledger = |id| read_state(|s| s.market.job(id).map(|r| r.spec.ledger));
    let ledger = match action {
        SnsAction::Reserve(spec) => Some(spec.ledger),
        SnsAction::SubmitJob(spec) => Some(spec.ledger),
        SnsAction::Withdraw(args) => Some(args.ledger),
        SnsAction::Extend(args) => reservation_ledger(args.reservation),
        SnsAction::Cancel(args) => reservation_ledger(args.reservation),
        SnsAction::SetDelegates(args) => reservation_ledger(args.reservation),
    };
    let escrow = read_state(|s| s.config().escrow);
    let unreachable = |e| format!("the escrow could not be asked for the DAO's balance: {e:?}");
    let (balance, symbol, fee) = match ledger {
        Some(ledger) => {
            let balance = rt
                .balance_of(escrow, governance, ledger)
                .await
                .map_err(unreachable)?;
            let ledgers = rt.ledgers(escrow).await.map_err(unreachable)?;
            let info = ledgers.into_iter().find(|l| l.ledger == ledger);
            let fee = info.as_ref().and_then(|l| l.fee);
            (Some(balance), info.and_then(|l| l.symbol), fee)
        }
        None => (None, None, None),
    };
    Ok(DaoContext {
        governance,
        name,
        balance,
        symbol,
        fee,
        deposit_account: deposit_account(escrow, governance).to_string(),
    })
}

/// The vetKD key id of master key `name`.
fn vetkd_key_id(name: &str) -> ic_management_canister_types::VetKDKeyId {
    ic_management_canister_types::VetKDKeyId {
        curve: ic_management_canister_types::VetKDCurve::Bls12_381_G2,
        name: name.to_string(),
    }
}

/// Reads the matcher's public key for job keys (`vetkd_public_key` of
/// its own id under [`JOB_KEY_CONTEXT`]) and keeps it; nothing without
/// privacy configured. An error says why the read failed (to retry).
pub async fn read_privacy_key(rt: &impl Runtime) -> Result<(), String> {
    let Some(config) = read_state(|s| s.config().privacy) else {
        return Ok(());
    };
    let args = ic_management_canister_types::VetKDPublicKeyArgs {
        canister_id: None,
        context: JOB_KEY_CONTEXT.to_vec(),
        key_id: vetkd_key_id(&config.key_name),
    };
    let reply = rt
        .vetkd_public_key(&args)
        .await
        .map_err(|e| format!("vetkd_public_key: {e:?}"))?;
    if reply.public_key.len() != PUBLIC_KEY_BYTES {
        return Err(format!(
            "vetkd_public_key: a key of {} bytes, not {PUBLIC_KEY_BYTES}",
            reply.public_key.len()
        ));
    }
    mutate_state(|s| s.set_privacy_key(config.key_name, reply.public_key));
    Ok(())
}

/// Derives the job key `grant` (already checked and counted, the job's
/// counts before were `before`) encrypted to `transport_public_key`. A
/// reject (an invalid transport key, too few cycles) had no effect: its
/// count is taken back.
pub async fn derive_job_key(
    rt: &impl Runtime,
    grant: &KeyGrant,
    before: KeyCounts,
    transport_public_key: Vec<u8>,
    key: &PrivacyKey,
    cycles: u128,
) -> Result<JobKey, MatcherError> {
    let args = ic_management_canister_types::VetKDDeriveKeyArgs {
        input: grant.identity.clone(),
        context: key.context.clone(),
        transport_public_key,
        key_id: vetkd_key_id(&key.key_name),
    };
    let downstream = |message: String| MatcherError::Downstream {
        canister: "management".into(),
        message,
    };
    let answer = rt.vetkd_derive_key(&args, cycles).await;
    mutate_state(|s| s.count_derivation(answer.is_ok()));
    match answer {
        Ok(reply) => Ok(JobKey {
            identity: grant.identity.clone(),
            encrypted_key: reply.encrypted_key,
            public_key: key.public_key.clone(),
        }),
        Err(CallError::Rejected { message, .. }) => {
            mutate_state(|s| s.market.uncount_job_key(grant.job_id, before));
            Err(downstream(message))
        }
        Err(e) => Err(downstream(format!("vetkd_derive_key: {e:?}"))),
    }
}

/// Moves the oldest event-log blocks to the archive, if the log holds more
/// than it should (see `canister_common::event_log`): the local copies go
/// only once the archive confirmed it holds them.
pub async fn move_old_blocks(rt: &impl Runtime) -> canister_common::archiving::MoveReport {
    let report = canister_common::archiving::move_old_blocks(
        rt,
        || mutate_state(|s| s.events.next_batch(rt.now_ns())),
        |batch, answer| mutate_state(|s| s.events.batch_answered(batch, answer)),
    )
    .await;
    if let Some(reason) = &report.kept {
        rt.log(&format!("event log archiving: {reason}"));
    }
    report
}
