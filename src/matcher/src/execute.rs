//! Performs the outbox's steps: calls to the escrow, the registry and
//! buyers' callbacks, and what their answers mean for the job.
//!
//! Every call is bounded-wait. A reject or an unknown outcome leaves the step
//! pending, to be retried with the same idempotency key; a definite answer
//! completes it.

use crate::lifecycle::{Effect, lock_key};
use crate::state::{mutate_state, read_state};
use candid::Principal;
use market_api::client::{CallError, call};
use market_api::escrow::{
    EscrowError, ExtendLockArgs, JobLock, LockArgs, NotifyDepositArgs, ReleaseArgs, SettleArgs,
};
use market_api::matcher::{Job, JobKind, MatcherEvent};
use market_api::registry::{BondArgs, RegistryError, SlashArgs, SlashOutcome};
use market_api::{Account, JobId, Tokens};

/// Most steps started by one run.
pub const STEPS_PER_RUN: usize = 50;

/// What a step's call came to.
enum Outcome {
    /// Done; the step is removed.
    Done,
    /// Try again later.
    Retry(String),
}

fn retry(e: CallError) -> Outcome {
    Outcome::Retry(format!("{e:?}"))
}

fn now() -> u64 {
    ic_cdk::api::time()
}

fn record(event: MatcherEvent) {
    let t = now();
    mutate_state(|s| s.events.append(t, event));
}

/// The escrow's deposit account of `owner`, where a slash payout is sent
/// before `notify_deposit` credits it.
fn deposit_account(escrow: Principal, owner: Principal) -> Account {
    Account {
        owner: escrow,
        subaccount: market_api::escrow::deposit_subaccount(owner),
    }
}

async fn perform(job_id: JobId, effect: Effect) -> Outcome {
    let config = read_state(|s| s.config());
    let key = lock_key(job_id);
    match effect {
        Effect::Lock {
            buyer,
            ledger,
            amount,
        } => {
            let args = LockArgs {
                job_key: key,
                buyer,
                ledger,
                amount,
            };
            match call::<_, Result<JobLock, EscrowError>>(config.escrow, "lock", &(args,)).await {
                Ok(Ok(_)) => {
                    let t = now();
                    mutate_state(|s| {
                        if let Some(rec) = s.market.job(job_id).filter(|r| !r.funded) {
                            let event = funded_event(&s.market, &rec, amount);
                            s.events.append(t, event);
                        }
                        let p = s.params();
                        s.market.job_funded(&p, t, job_id)
                    });
                    Outcome::Done
                }
                Ok(Err(EscrowError::Busy)) => Outcome::Retry("escrow busy".into()),
                Ok(Err(_)) => {
                    let t = now();
                    mutate_state(|s| s.market.drop_unfunded(t, job_id));
                    Outcome::Done
                }
                Err(e) => retry(e),
            }
        }
        Effect::Bond {
            key,
            provider,
            amount,
        } => {
            let attempt = key
                .rsplit('/')
                .next()
                .and_then(|a| a.parse::<u32>().ok())
                .unwrap_or(0);
            let min_stake = read_state(|s| s.market.job(job_id).map(|r| r.spec.min_provider_stake))
                .filter(|m| *m > 0);
            let args = BondArgs {
                provider,
                amount,
                key,
                min_stake,
            };
            match call::<_, Result<(), RegistryError>>(config.registry, "bond", &(args,)).await {
                Ok(Ok(())) => {
                    // The assignment holds once the stake backing it is bonded.
                    let price = read_state(|s| {
                        s.market
                            .job(job_id)
                            .and_then(|r| r.state.assignment)
                            .filter(|a| a.attempt == attempt)
                            .map(|a| a.price)
                    });
                    if let Some(price_per_interval) = price {
                        record(MatcherEvent::JobAssigned {
                            job_id,
                            provider,
                            attempt,
                            price_per_interval,
                        });
                    }
                    Outcome::Done
                }
                Ok(Err(RegistryError::Busy)) => Outcome::Retry("registry busy".into()),
                Ok(Err(_)) => {
                    let t = now();
                    mutate_state(|s| {
                        let p = s.params();
                        s.market.bond_refused(&p, t, job_id, attempt)
                    });
                    Outcome::Done
                }
                Err(e) => retry(e),
            }
        }
        Effect::Unbond { key } => {
            match call::<_, Result<Tokens, RegistryError>>(config.registry, "unbond", &(key,)).await
            {
                Ok(Err(RegistryError::Busy)) => Outcome::Retry("registry busy".into()),
                Ok(_) => Outcome::Done,
                Err(e) => retry(e),
            }
        }
        Effect::Release {
            seq,
            provider,
            amount,
        } => {
            let args = ReleaseArgs {
                job_key: key,
                seq,
                provider,
                amount,
            };
            match call::<_, Result<JobLock, EscrowError>>(config.escrow, "release", &(args,)).await
            {
                Ok(Err(EscrowError::Busy)) => Outcome::Retry("escrow busy".into()),
                Ok(Ok(_)) => {
                    record(MatcherEvent::IntervalPaid {
                        job_id,
                        provider,
                        seq,
                        amount,
                    });
                    Outcome::Done
                }
                Ok(Err(e)) => {
                    ic_cdk::println!("job {job_id}: release {seq} refused: {e:?}");
                    Outcome::Done
                }
                Err(e) => retry(e),
            }
        }
        Effect::Settle if !has_lock(job_id) => {
            // A job run in a reservation's slot has no lock of its own.
            let status = read_state(|s| s.market.job(job_id).map(|r| r.state.status));
            if let Some(status) = status {
                record(MatcherEvent::JobFinished {
                    job_id,
                    status,
                    refunded: 0,
                });
            }
            Outcome::Done
        }
        Effect::Settle => {
            let args = SettleArgs { job_key: key };
            match call::<_, Result<JobLock, EscrowError>>(config.escrow, "settle", &(args,)).await {
                Ok(Err(EscrowError::Busy)) => Outcome::Retry("escrow busy".into()),
                Ok(result) => {
                    let status = read_state(|s| s.market.job(job_id).map(|r| r.state.status));
                    if let Some(status) = status {
                        let refunded = match &result {
                            Ok(lock) => lock.total.saturating_sub(lock.released),
                            Err(_) => 0,
                        };
                        record(MatcherEvent::JobFinished {
                            job_id,
                            status,
                            refunded,
                        });
                    }
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
            let args = SlashArgs {
                provider,
                amount,
                beneficiary: deposit_account(config.escrow, owner),
                reason: format!("missed heartbeat deadline of job {job_id}"),
                key: key.clone(),
            };
            match call::<_, Result<SlashOutcome, RegistryError>>(config.registry, "slash", &(args,))
                .await
            {
                // Busy, or the ledger failed (its fee or the payout): nothing
                // was taken, or the payout is pending in the registry; asking
                // again with the same key settles it and never slashes twice.
                Ok(Err(e @ (RegistryError::Busy | RegistryError::Ledger(_)))) => {
                    Outcome::Retry(format!("slash: {e:?}"))
                }
                Ok(Ok(outcome)) => {
                    let attempt = key
                        .rsplit('/')
                        .next()
                        .and_then(|a| a.parse::<u32>().ok())
                        .unwrap_or(0);
                    record(MatcherEvent::DeadlineMissed {
                        job_id,
                        provider,
                        attempt,
                        slashed: outcome.slashed,
                    });
                    if outcome.paid_out > 0 {
                        let effect = Effect::NotifyDeposit {
                            ledger: config.stake_ledger,
                            beneficiary: owner,
                        };
                        mutate_state(|s| s.market.outbox.push(job_id, effect));
                    }
                    Outcome::Done
                }
                Ok(Err(e)) => {
                    ic_cdk::println!("job {job_id}: slash refused: {e:?}");
                    Outcome::Done
                }
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
            match call::<_, Result<Tokens, EscrowError>>(config.escrow, "notify_deposit", &(args,))
                .await
            {
                Ok(Err(EscrowError::Busy)) => Outcome::Retry("escrow busy".into()),
                Ok(_) => Outcome::Done,
                Err(e) => retry(e),
            }
        }
        Effect::Callback { method } => {
            let job: Option<Job> = read_state(|s| s.market.job(job_id).map(|r| r.to_job()));
            if let Some(job) = job {
                // Delivered once: whatever the buyer's canister answers (or
                // if it traps), the step is done and nothing else changes.
                let owner = job.owner;
                let _ = ic_cdk::call::Call::bounded_wait(owner, &method)
                    .with_arg(&job)
                    .await;
            }
            Outcome::Done
        }
        Effect::ExtendLock {
            number,
            amount,
            intervals,
        } => {
            let args = ExtendLockArgs {
                job_key: key,
                extension: number,
                amount,
            };
            match call::<_, Result<JobLock, EscrowError>>(config.escrow, "extend_lock", &(args,))
                .await
            {
                Ok(Ok(lock)) => {
                    let t = now();
                    mutate_state(|s| {
                        s.market.apply_extension(job_id, number, amount, intervals);
                        s.events.append(
                            t,
                            MatcherEvent::ReservationExtended {
                                reservation: job_id,
                                intervals,
                                locked: lock.total,
                            },
                        );
                    });
                    Outcome::Done
                }
                Ok(Err(EscrowError::Busy)) => Outcome::Retry("escrow busy".into()),
                Ok(Err(e)) => {
                    ic_cdk::println!("reservation {job_id}: extension {number} refused: {e:?}");
                    mutate_state(|s| s.market.extension_refused(job_id, number));
                    Outcome::Done
                }
                Err(e) => retry(e),
            }
        }
        Effect::FreeSlot { .. } | Effect::Requeue => Outcome::Done,
    }
}

/// The event recording that a job's (or a reservation's) lock of `amount`
/// was confirmed.
pub fn funded_event<M: ic_stable_structures::Memory>(
    market: &crate::market::Market<M>,
    rec: &crate::market::JobRecord,
    amount: Tokens,
) -> MatcherEvent {
    let id = rec.state.id;
    if rec.kind == JobKind::Reservation {
        return MatcherEvent::ReservationMade {
            reservation: id,
            owner: rec.state.owner,
            slots: market.reservation_record(id).map_or(0, |r| r.spec.slots),
            locked: amount,
            ledger: rec.spec.ledger,
        };
    }
    MatcherEvent::JobSubmitted {
        job_id: id,
        owner: rec.state.owner,
        max_cost: amount,
        ledger: rec.spec.ledger,
    }
}

/// Whether the job's funds sit in a lock of its own (not so for the jobs
/// and slots of a reservation, whose lock is the reservation's).
fn has_lock(job_id: JobId) -> bool {
    read_state(|s| s.market.job(job_id).map(|r| r.kind))
        .is_none_or(|k| matches!(k, JobKind::OneOff | JobKind::Reservation))
}

/// Runs the ready steps (up to [`STEPS_PER_RUN`]) concurrently.
pub async fn run_ready_steps() {
    let t = now();
    let ready = mutate_state(|s| s.market.outbox.take_ready(t, STEPS_PER_RUN));
    let runs = ready.into_iter().map(|(seq, step)| async move {
        let outcome = perform(step.job_id, step.effect).await;
        let t = now();
        mutate_state(|s| match outcome {
            Outcome::Done => s.market.outbox.complete(seq),
            Outcome::Retry(error) => s.market.outbox.retry_later(t, seq, error),
        });
    });
    futures::future::join_all(runs).await;
}
