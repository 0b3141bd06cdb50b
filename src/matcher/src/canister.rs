//! ic-cdk entry points: each reads the caller and the time, calls the logic
//! and maps its result. No rules live here.

use crate::execute;
use crate::lifecycle::lock_key;
use crate::market::JobRecord;
use crate::modules::{ModuleMeta, StoreError};
use crate::state::{mutate_state, read_state};
use candid::Principal;
use canister_common::guard::{Guard, GuardError};
use market_api::client::call;
use market_api::escrow::{Balance, EscrowError, ExtendLockArgs, JobLock, LockArgs, WithdrawArgs};
use market_api::matcher::{
    Assignment, BookDepth, CancelReservationArgs, DaoRegistration, ExtendReservationArgs,
    HeartbeatAck, HeartbeatItem, Job, JobSpec, MAX_CHUNK_BYTES, MatcherError, MatcherEvent,
    MatcherInit, ModuleInfo, ModuleUpload, Offer, OfferSpec, Reservation, ReservationId,
    ReservationSpec, ReservedJobArgs, SetDelegatesArgs, Sha256, SubmitResultArgs, Trade,
};
use market_api::registry::Provider;
use market_api::{
    EventPage, HttpRequest, HttpResponse, JobId, OfferId, PageRequest, StandardRecord,
};
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::Duration;

/// Deadlines handled by one timer run.
const DEADLINES_PER_RUN: usize = 100;
/// A timer this overdue is taken as lost: its run never started or trapped
/// before re-arming (ic-cdk-timers drops a one-shot timer whose run traps).
const LOST_TIMER_NS: u64 = 60_000_000_000;
/// How often the watchdog checks that a timer is armed when work is due.
const WATCHDOG_PERIOD: Duration = Duration::from_secs(60);

thread_local! {
    static BUSY: RefCell<BTreeSet<Principal>> = const { RefCell::new(BTreeSet::new()) };
    /// The armed timer and when it fires (heap only: timers do not survive
    /// upgrades, so post_upgrade arms a new one from stable state).
    static TIMER: Cell<Option<(ic_cdk_timers::TimerId, u64)>> = const { Cell::new(None) };
    /// Where the sweep of resting bids goes on (heap only: after an upgrade
    /// it starts again from the best bid, which only repeats some work).
    static SWEEP: Cell<Option<crate::book::BidKey>> = const { Cell::new(None) };
}

/// Resting bids the watchdog's sweep looks at per run (see
/// `Market::sweep_resting_bids`): about 0.7-1.4 M instructions each.
const SWEEP_BIDS_PER_RUN: usize = 500;

fn now() -> u64 {
    ic_cdk::api::time()
}

fn caller() -> Result<Principal, MatcherError> {
    let c = ic_cdk::api::msg_caller();
    if c == Principal::anonymous() {
        return Err(MatcherError::AnonymousCaller);
    }
    Ok(c)
}

fn guard(p: Principal) -> Result<Guard<Principal>, MatcherError> {
    Guard::new(&BUSY, p).map_err(|e| match e {
        GuardError::AlreadyProcessing => MatcherError::Busy,
        GuardError::TooManyConcurrentRequests => MatcherError::Busy,
    })
}

fn store_error(e: StoreError, sha256: Sha256) -> MatcherError {
    match e {
        StoreError::Unknown | StoreError::NotCommitted => MatcherError::UnknownModule { sha256 },
        StoreError::NotUploader => MatcherError::Unauthorized {
            reason: "only the uploader may do this".into(),
        },
        StoreError::TooManyUploads => MatcherError::LimitReached {
            what: "uploads in progress".into(),
            limit: crate::modules::MAX_PENDING_UPLOADS_PER_PRINCIPAL as u64,
        },
        StoreError::IdleQuota { limit } => MatcherError::LimitReached {
            what: "bytes of uploaded modules no job uses (submit jobs with them, or wait an hour for them to be collected)".into(),
            limit,
        },
        other => MatcherError::InvalidArgument {
            field: "module".into(),
            reason: format!("{other:?}"),
        },
    }
}

fn module_info(sha256: Sha256, m: &ModuleMeta) -> ModuleInfo {
    ModuleInfo {
        sha256,
        size: m.size,
        chunks: m.chunk_count(),
        committed: m.committed,
        refs: m.refs,
    }
}

/// Arms the timer for the earliest deadline or outbox step, if it is not
/// armed for an earlier time already.
fn schedule() {
    let wake = read_state(|s| {
        [s.market.next_deadline_ns(), s.market.outbox.next_wake_ns()]
            .into_iter()
            .flatten()
            .min()
    });
    let Some(wake) = wake else { return };
    if let Some((_, at)) = TIMER.get()
        && at <= wake
        && now() < at.saturating_add(LOST_TIMER_NS)
    {
        return;
    }
    if let Some((id, _)) = TIMER.take() {
        ic_cdk_timers::clear_timer(id);
    }
    let delay = Duration::from_nanos(wake.saturating_sub(now()));
    let id = ic_cdk_timers::set_timer(delay, run());
    TIMER.set(Some((id, wake)));
}

/// One timer run: handle due deadlines, perform ready outbox steps, re-arm.
async fn run() {
    TIMER.set(None);
    let t = now();
    mutate_state(|s| {
        let p = s.params();
        s.market.process_deadlines(&p, t, DEADLINES_PER_RUN);
        s.market.modules.collect_garbage(t, 10);
    });
    schedule();
    execute::run_ready_steps().await;
    schedule();
}

/// A repeating timer (which, unlike a one-shot one, survives a trapping
/// run) that re-arms the deadline timer if it was lost, so deadlines and
/// outbox steps are never stranded, collects abandoned module uploads even
/// when no deadline wakes the canister, and sweeps the resting bids.
fn start_watchdog() {
    ic_cdk_timers::set_timer_interval(WATCHDOG_PERIOD, || async {
        let t = now();
        mutate_state(|s| {
            s.market.modules.collect_garbage(t, 10);
            let p = s.params();
            let next = s
                .market
                .sweep_resting_bids(&p, t, SWEEP.get(), SWEEP_BIDS_PER_RUN);
            SWEEP.set(next);
        });
        schedule();
    });
}

#[ic_cdk::init]
fn init(arg: MatcherInit) {
    mutate_state(|s| s.set_config(arg));
    start_watchdog();
}

#[ic_cdk::post_upgrade]
fn post_upgrade(arg: Option<MatcherInit>) {
    mutate_state(|s| {
        if let Some(config) = arg {
            s.set_config(config);
        }
        s.market.outbox.reset_in_flight();
        s.market.index_active_jobs_if_missing();
        s.market.index_assignments_if_missing();
    });
    start_watchdog();
    schedule();
}

/// The matcher's configuration.
#[ic_cdk::query]
fn get_config() -> MatcherInit {
    read_state(|s| s.config())
}

/// Starts uploading a job module. Only principals holding a balance in the
/// escrow may upload, so storage can't be filled for free.
#[ic_cdk::update]
async fn begin_module_upload(args: ModuleUpload) -> Result<ModuleInfo, MatcherError> {
    let caller = caller()?;
    let escrow = read_state(|s| s.config().escrow);
    let balances: Vec<Balance> =
        call(escrow, "balances_of", &(caller,))
            .await
            .map_err(|e| MatcherError::Downstream {
                canister: "escrow".into(),
                message: format!("{e:?}"),
            })?;
    if !balances.iter().any(|b| b.free > 0 || b.locked > 0) {
        return Err(MatcherError::Unauthorized {
            reason: "uploading needs a balance in the escrow".into(),
        });
    }
    let t = now();
    mutate_state(|s| s.market.modules.begin(t, caller, args.sha256, args.size))
        .map(|m| module_info(args.sha256, &m))
        .map_err(|e| store_error(e, args.sha256))
}

/// Stores one chunk (of [`MAX_CHUNK_BYTES`], the last one shorter) of an upload.
#[ic_cdk::update]
fn put_module_chunk(
    sha256: Sha256,
    index: u32,
    bytes: serde_bytes::ByteBuf,
) -> Result<(), MatcherError> {
    let caller = caller()?;
    if bytes.len() > MAX_CHUNK_BYTES {
        return Err(MatcherError::InvalidArgument {
            field: "bytes".into(),
            reason: "chunk too large".into(),
        });
    }
    mutate_state(|s| {
        s.market
            .modules
            .put_chunk(caller, sha256, index, bytes.into_vec())
    })
    .map_err(|e| store_error(e, sha256))
}

/// Verifies an upload's sha256 and makes the module usable by jobs.
#[ic_cdk::update]
fn commit_module(sha256: Sha256) -> Result<ModuleInfo, MatcherError> {
    let caller = caller()?;
    let t = now();
    let m = mutate_state(|s| s.market.modules.commit(t, caller, sha256))
        .map_err(|e| store_error(e, sha256))?;
    mutate_state(|s| {
        s.events.append(
            t,
            MatcherEvent::ModuleStored {
                sha256,
                size: m.size,
                uploader: caller,
            },
        )
    });
    schedule();
    Ok(module_info(sha256, &m))
}

/// A module's metadata.
#[ic_cdk::query]
fn module_info_of(sha256: Sha256) -> Option<ModuleInfo> {
    read_state(|s| {
        s.market
            .modules
            .meta(&sha256)
            .map(|m| module_info(sha256, &m))
    })
}

/// One chunk of a committed module.
#[ic_cdk::query]
fn module_chunk(sha256: Sha256, index: u32) -> Result<serde_bytes::ByteBuf, MatcherError> {
    read_state(|s| s.market.modules.chunk(&sha256, index))
        .map(serde_bytes::ByteBuf::from)
        .map_err(|e| store_error(e, sha256))
}

async fn offer(offer_id: Option<OfferId>, spec: OfferSpec) -> Result<OfferId, MatcherError> {
    let caller = caller()?;
    let _guard = guard(caller)?;
    let registry = read_state(|s| s.config().registry);
    let provider: Option<Provider> =
        call(registry, "get_provider", &(caller,))
            .await
            .map_err(|e| MatcherError::Downstream {
                canister: "registry".into(),
                message: format!("{e:?}"),
            })?;
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
    // The registry's own rule (its minimum stake among others), so an
    // offer never stands that no job could be bonded to.
    let eligibility: market_api::registry::Eligibility = call(registry, "eligibility", &(caller,))
        .await
        .map_err(|e| MatcherError::Downstream {
            canister: "registry".into(),
            message: format!("{e:?}"),
        })?;
    if let Some(why) = eligibility.ineligible {
        return Err(MatcherError::Unauthorized {
            reason: format!("the registry says this provider can't take work: {why:?}"),
        });
    }
    let stake = p.stake.free.saturating_add(p.stake.bonded);
    let t = now();
    let id = mutate_state(|s| {
        let params = s.params();
        let id = s
            .market
            .put_offer(&params, t, caller, p.profile.node, stake, offer_id, spec)?;
        s.events.append(
            t,
            MatcherEvent::OfferChanged {
                offer_id: id,
                provider: caller,
                withdrawn: false,
            },
        );
        Ok::<_, MatcherError>(id)
    })?;
    schedule();
    Ok(id)
}

/// Posts a standing offer (registered, unjailed providers only); resting
/// bids it can serve are matched at once.
#[ic_cdk::update]
async fn post_offer(spec: OfferSpec) -> Result<OfferId, MatcherError> {
    offer(None, spec).await
}

/// Changes one of the caller's offers.
#[ic_cdk::update]
async fn update_offer(offer_id: OfferId, spec: OfferSpec) -> Result<OfferId, MatcherError> {
    offer(Some(offer_id), spec).await
}

/// Withdraws one of the caller's offers; jobs running on it go on.
#[ic_cdk::update]
fn withdraw_offer(offer_id: OfferId) -> Result<(), MatcherError> {
    let caller = caller()?;
    let t = now();
    mutate_state(|s| {
        s.market.withdraw_offer(caller, offer_id)?;
        s.events.append(
            t,
            MatcherEvent::OfferChanged {
                offer_id,
                provider: caller,
                withdrawn: true,
            },
        );
        Ok(())
    })
}

/// A provider's offers.
#[ic_cdk::query]
fn offers_of(provider: Principal) -> Vec<Offer> {
    read_state(|s| s.market.offers_of(provider))
}

/// Submits a job: locks its maximum cost from the caller's escrow balance,
/// then matches it with the cheapest eligible offer or rests it in the book.
#[ic_cdk::update]
async fn submit_job(spec: JobSpec) -> Result<JobId, MatcherError> {
    submit_job_as(caller()?, spec).await
}

async fn submit_job_as(caller: Principal, spec: JobSpec) -> Result<JobId, MatcherError> {
    let _guard = guard(caller)?;
    let t = now();
    let rec = mutate_state(|s| s.market.create_job(t, caller, spec))?;
    fund(rec).await
}

/// Reserves capacity (see `ReservationSpec`): locks slots x intervals x
/// max price from the caller's escrow balance, then matches each slot.
/// Returns the reservation's id.
#[ic_cdk::update]
async fn reserve(spec: ReservationSpec) -> Result<ReservationId, MatcherError> {
    reserve_as(caller()?, spec).await
}

async fn reserve_as(
    caller: Principal,
    spec: ReservationSpec,
) -> Result<ReservationId, MatcherError> {
    let _guard = guard(caller)?;
    let t = now();
    let rec = mutate_state(|s| s.market.create_reservation(t, caller, spec))?;
    fund(rec).await
}

/// Adds intervals to each live slot of one of the caller's reservations,
/// locking their cost from the caller's escrow balance.
#[ic_cdk::update]
async fn extend_reservation(args: ExtendReservationArgs) -> Result<(), MatcherError> {
    extend_as(caller()?, args).await
}

async fn extend_as(caller: Principal, args: ExtendReservationArgs) -> Result<(), MatcherError> {
    let _guard = guard(caller)?;
    let t0 = now();
    let (ext, seq) = mutate_state(|s| {
        let ext = s.market.prepare_extension(caller, &args)?;
        let seq = s.market.begin_extension(t0, args.reservation, ext);
        Ok::<_, MatcherError>((ext, seq))
    })?;
    // If this message's callback is lost (an upgrade while the call is out,
    // a trap), the step recorded above goes stale and the outbox asks again.
    schedule();
    let escrow = read_state(|s| s.config().escrow);
    let lock = ExtendLockArgs {
        job_key: lock_key(args.reservation),
        extension: ext.number,
        amount: ext.amount,
    };
    match call::<_, Result<JobLock, EscrowError>>(escrow, "extend_lock", &(lock,)).await {
        Ok(Ok(lock)) => {
            let t = now();
            mutate_state(|s| {
                s.market.outbox.complete(seq);
                s.market
                    .apply_extension(args.reservation, ext.number, ext.amount, args.intervals);
                s.events.append(
                    t,
                    MatcherEvent::ReservationExtended {
                        reservation: args.reservation,
                        intervals: args.intervals,
                        locked: lock.total,
                    },
                );
            });
            Ok(())
        }
        Ok(Err(e)) => {
            mutate_state(|s| {
                s.market.outbox.complete(seq);
                s.market.extension_refused(args.reservation, ext.number);
            });
            Err(MatcherError::Downstream {
                canister: "escrow".into(),
                message: format!("{e:?}"),
            })
        }
        // Unknown outcome: the escrow may have locked the amount. The outbox
        // asks again with the same number and amount (applied at most once)
        // and applies the extension, or forgets it if refused.
        Err(e) => {
            let t = now();
            mutate_state(|s| s.market.outbox.retry_later(t, seq, format!("{e:?}")));
            schedule();
            Ok(())
        }
    }
}

/// Adds and removes principals that may run jobs in one of the caller's
/// reservations. Returns the delegates afterwards.
#[ic_cdk::update]
fn set_delegates(args: SetDelegatesArgs) -> Result<Vec<Principal>, MatcherError> {
    set_delegates_as(caller()?, args)
}

fn set_delegates_as(
    caller: Principal,
    args: SetDelegatesArgs,
) -> Result<Vec<Principal>, MatcherError> {
    let t = now();
    mutate_state(|s| {
        let delegates = s.market.set_delegates(caller, &args)?;
        s.events.append(
            t,
            MatcherEvent::DelegatesChanged {
                reservation: args.reservation,
                delegates: delegates.clone(),
            },
        );
        Ok(delegates)
    })
}

/// Cancels one of the caller's reservations: intervals already heartbeated
/// stay paid; the rest of the lock returns to the caller's balance.
#[ic_cdk::update]
fn cancel_reservation(args: CancelReservationArgs) -> Result<(), MatcherError> {
    cancel_reservation_as(caller()?, args)
}

fn cancel_reservation_as(
    caller: Principal,
    args: CancelReservationArgs,
) -> Result<(), MatcherError> {
    let t = now();
    mutate_state(|s| {
        let p = s.params();
        s.market.cancel_reservation(&p, t, caller, args.reservation)
    })?;
    schedule();
    Ok(())
}

/// Submits a job to run in a reservation's slots, at no further cost; the
/// caller must be the reservation's owner or one of its delegates.
#[ic_cdk::update]
fn submit_reserved_job(args: ReservedJobArgs) -> Result<JobId, MatcherError> {
    let caller = caller()?;
    let t = now();
    let id = mutate_state(|s| {
        let p = s.params();
        s.market.submit_reserved_job(&p, t, caller, args)
    })?;
    schedule();
    Ok(id)
}

/// A reservation, if it exists.
#[ic_cdk::query]
fn get_reservation(reservation: ReservationId) -> Option<Reservation> {
    read_state(|s| s.market.reservation(reservation))
}

/// An owner's reservations, from `page.start` (a reservation id) on.
#[ic_cdk::query]
fn list_reservations(owner: Principal, page: PageRequest) -> Vec<Reservation> {
    read_state(|s| {
        s.market
            .reservations_of(owner, page.start.unwrap_or(0), page.effective_limit())
    })
}

/// Registers (or renames) a DAO whose SNS governance canister may call the
/// `sns_*` methods. Controllers only.
#[ic_cdk::update]
fn register_dao(dao: DaoRegistration) -> Result<(), MatcherError> {
    set_dao(dao, true)
}

/// Removes a DAO's registration. Controllers only.
#[ic_cdk::update]
fn deregister_dao(dao: DaoRegistration) -> Result<(), MatcherError> {
    set_dao(dao, false)
}

fn set_dao(dao: DaoRegistration, registered: bool) -> Result<(), MatcherError> {
    let caller = caller()?;
    if !ic_cdk::api::is_controller(&caller) {
        return Err(MatcherError::Unauthorized {
            reason: "only controllers register DAOs".into(),
        });
    }
    let t = now();
    mutate_state(|s| {
        if registered {
            s.market.register_dao(dao.clone())?;
        } else if !s.market.deregister_dao(dao.governance) {
            return Err(MatcherError::InvalidArgument {
                field: "governance".into(),
                reason: "not registered".into(),
            });
        }
        s.events.append(
            t,
            MatcherEvent::DaoChanged {
                governance: dao.governance,
                name: dao.name,
                registered,
            },
        );
        Ok(())
    })
}

/// The registered DAOs.
#[ic_cdk::query]
fn list_daos(page: PageRequest) -> Vec<DaoRegistration> {
    read_state(|s| s.market.daos(page.effective_limit()))
}

/// Locks a new job's or reservation's maximum cost in the escrow; on
/// success the job enters the book (or the reservation's slots do).
async fn fund(rec: JobRecord) -> Result<JobId, MatcherError> {
    let caller = rec.state.owner;
    let id = rec.state.id;
    let amount = rec.state.max_cost().unwrap_or(u128::MAX);
    let escrow = read_state(|s| s.config().escrow);
    let args = LockArgs {
        job_key: lock_key(id),
        buyer: caller,
        ledger: rec.spec.ledger,
        amount,
    };
    // The lock is in the outbox before the call: if this message's callback
    // traps after the escrow locked, the step goes stale and the outbox asks
    // again with the same key, so the buyer's funds are never stranded.
    let Some(seq) = mutate_state(|s| s.market.lock_in_flight(now(), id)) else {
        return Err(MatcherError::Busy);
    };
    schedule();
    let answer = call::<_, Result<JobLock, EscrowError>>(escrow, "lock", &(args,)).await;
    let t = now();
    match answer {
        Ok(Ok(_)) => {
            mutate_state(|s| {
                s.market.outbox.complete(seq);
                let event = execute::funded_event(&s.market, &rec, amount);
                s.events.append(t, event);
                let p = s.params();
                s.market.job_funded(&p, t, id);
            });
            schedule();
            Ok(id)
        }
        Ok(Err(e)) => {
            mutate_state(|s| {
                s.market.outbox.complete(seq);
                s.market.drop_unfunded(t, id);
            });
            Err(MatcherError::Downstream {
                canister: "escrow".into(),
                message: format!("{e:?}"),
            })
        }
        Err(e) => {
            // Unknown outcome: the lock may exist. The outbox retries it with
            // the same key and funds the job, or drops it if refused.
            mutate_state(|s| s.market.outbox.retry_later(t, seq, format!("{e:?}")));
            schedule();
            Ok(id)
        }
    }
}

/// A job, if it exists.
#[ic_cdk::query]
fn get_job(job_id: JobId) -> Option<Job> {
    read_state(|s| s.market.job(job_id).map(|r| r.to_job()))
}

/// An owner's jobs, from `page.start` (a job id) on.
#[ic_cdk::query]
fn list_jobs(owner: Principal, page: PageRequest) -> Vec<Job> {
    read_state(|s| {
        s.market
            .jobs_of(owner, page.start.unwrap_or(0), page.effective_limit())
    })
}

/// Cancels one of the caller's jobs: intervals already paid stay paid, the
/// rest of the lock returns to the caller's balance.
#[ic_cdk::update]
fn cancel_job(job_id: JobId) -> Result<(), MatcherError> {
    let caller = caller()?;
    let t = now();
    mutate_state(|s| {
        let p = s.params();
        s.market.cancel(&p, t, caller, job_id)
    })?;
    schedule();
    Ok(())
}

/// Jobs assigned to a provider that are not finished, with everything
/// needed to run them.
#[ic_cdk::query]
fn assignments(provider: Principal) -> Vec<Assignment> {
    read_state(|s| {
        let p = s.params();
        s.market
            .assignments_of(provider)
            .into_iter()
            .filter_map(|r| {
                let a = r.state.assignment.clone()?;
                Some(Assignment {
                    job_id: r.state.id,
                    attempt: a.attempt,
                    spec: r.spec.clone(),
                    price_per_interval: a.price,
                    next_deadline_ns: r.state.deadline_ns(&p).unwrap_or(0),
                    acknowledged: a.started_at_ns.is_some(),
                    kind: r.kind,
                })
            })
            .collect()
    })
}

/// One batched heartbeat for all of a provider's jobs, from the provider or
/// its node principal. The first heartbeat of a job acknowledges it; later
/// ones each pay the interval just completed.
#[ic_cdk::update]
fn heartbeat(items: Vec<HeartbeatItem>) -> Result<Vec<HeartbeatAck>, MatcherError> {
    let caller = caller()?;
    let t = now();
    let acks = mutate_state(|s| {
        let p = s.params();
        s.market.heartbeat(&p, t, caller, &items)
    })?;
    schedule();
    Ok(acks)
}

/// A provider's result for a job: pays what is due and settles the rest.
#[ic_cdk::update]
fn submit_result(args: SubmitResultArgs) -> Result<(), MatcherError> {
    let caller = caller()?;
    if args.result.output.len() > market_api::matcher::MAX_OUTPUT_BYTES {
        return Err(MatcherError::InvalidArgument {
            field: "output".into(),
            reason: "too large".into(),
        });
    }
    let t = now();
    mutate_state(|s| {
        let p = s.params();
        s.market.submit_result(&p, t, caller, args)
    })?;
    schedule();
    Ok(())
}

/// The provider (or its node) gives back a job it cannot finish, before its
/// deadline: the intervals it heartbeated stay paid, it is not slashed, and
/// the job is matched again with its remaining budget (never with this
/// provider). For nodes going down for maintenance.
#[ic_cdk::update]
fn hand_back(job_id: JobId, attempt: u32) -> Result<(), MatcherError> {
    let caller = caller()?;
    let t = now();
    mutate_state(|s| {
        let p = s.params();
        let provider = s.market.hand_back(&p, t, caller, job_id, attempt)?;
        s.events.append(
            t,
            MatcherEvent::JobHandedBack {
                job_id,
                provider,
                attempt,
            },
        );
        Ok::<_, MatcherError>(())
    })?;
    schedule();
    Ok(())
}

/// Resting bids and free offer slots per price on a ledger.
#[ic_cdk::query]
fn book_depth(ledger: Principal) -> BookDepth {
    read_state(|s| {
        let d = s.market.book.depth(ledger, 50);
        BookDepth {
            bids: d.bids,
            asks: d.asks,
        }
    })
}

/// Most trades `recent_prices` returns.
const RECENT_TRADES: usize = 50;
/// Most events `recent_prices` looks back through.
const RECENT_SCAN: u64 = 2_000;

/// The latest matches on a ledger, newest first (at most 50, from the last
/// 2,000 events): what providers were recently paid per interval.
#[ic_cdk::query]
fn recent_prices(ledger: Principal) -> Vec<Trade> {
    read_state(|s| {
        s.events
            .newest(RECENT_SCAN)
            .filter_map(|e| match e.event {
                MatcherEvent::JobAssigned {
                    job_id,
                    price_per_interval,
                    ..
                } => s
                    .market
                    .job(job_id)
                    .filter(|r| r.spec.ledger == ledger)
                    .map(|_| Trade {
                        job_id,
                        price_per_interval,
                        time_ns: e.time_ns,
                    }),
                _ => None,
            })
            .take(RECENT_TRADES)
            .collect()
    })
}

/// One page of the public event log.
#[ic_cdk::query]
fn get_events(page: PageRequest) -> EventPage<MatcherEvent> {
    read_state(|s| s.events.page(&page))
}

/// `/metrics` in the Prometheus text format.
#[ic_cdk::query]
fn http_request(req: HttpRequest) -> HttpResponse {
    if req.url.split('?').next() != Some("/metrics") {
        return HttpResponse::text(404, "text/plain", "not found");
    }
    let body = read_state(|s| {
        let (active, held) = s.market.reservation_gauges();
        format!(
            "# HELP matcher_offers Offers in the book.\n# TYPE matcher_offers gauge\nmatcher_offers {}\n\
             # HELP matcher_resting_bids Bids waiting for capacity.\n# TYPE matcher_resting_bids gauge\nmatcher_resting_bids {}\n\
             # HELP matcher_outbox_steps Cross-canister steps pending.\n# TYPE matcher_outbox_steps gauge\nmatcher_outbox_steps {}\n\
             # HELP matcher_events Events recorded.\n# TYPE matcher_events counter\nmatcher_events {}\n\
             # HELP matcher_reservations Active reservations.\n# TYPE matcher_reservations gauge\nmatcher_reservations {}\n\
             # HELP matcher_reserved_slots_held Slots of active reservations held by a provider.\n# TYPE matcher_reserved_slots_held gauge\nmatcher_reserved_slots_held {}\n",
            s.market.book.offer_count(),
            s.market.book.bid_count(),
            s.market.outbox.len(),
            s.events.len(),
            active,
            held,
        )
    });
    HttpResponse::text(200, "text/plain; version=0.0.4", body)
}

/// ICRC-10: the standards this canister supports.
#[ic_cdk::query]
fn icrc10_supported_standards() -> Vec<StandardRecord> {
    vec![market_api::icrc10_standard()]
}

#[path = "canister_sns.rs"]
mod sns;

candid::export_service!();

/// The Candid interface generated from the entry points above, compared in
/// tests with the checked-in `matcher.did`.
pub fn candid_interface() -> String {
    __export_service()
}
