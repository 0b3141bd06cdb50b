//! What each entry point does, given the runtime and the caller the entry
//! point checked: the state changes (through [`crate::audit`] where the
//! event log records them), the calls (through [`crate::perform`]), and
//! arming the timer afterwards.

use crate::audit::{self, OfferPost};
use crate::governance;
use crate::modules::{ModuleMeta, StoreError};
use crate::perform;
use crate::runtime::Runtime;
use crate::state::{mutate_state, read_state};
use candid::Principal;
use canister_common::guard::{Guard, GuardError};
use market_api::matcher::{
    Assignment, AssignmentPage, BookDepth, CancelReservationArgs, DaoRegistration,
    ExtendReservationArgs, HeartbeatAck, HeartbeatItem, JobChunk, JobChunkRequest, JobKind,
    JobSpec, JobView, MAX_ASSIGNMENTS_PAGE, MAX_CHUNK_BYTES, MAX_OUTPUT_BYTES, MatcherError,
    MatcherEvent, ModuleInfo, ModuleUpload, OfferSpec, OutputChunk, PriceUnit, ReservationId,
    ReservationSpec, ReservedJobArgs, SetDelegatesArgs, Sha256, SubmitResultArgs, Trade, job_seed,
};
use market_api::prices::{Currency, RatesView};
use market_api::privacy::{JobKey, JobKeyRequest, TRANSPORT_KEY_BYTES};
use market_api::sns::SnsAction;
use market_api::{JobId, OfferId, PageRequest};
use std::cell::RefCell;
use std::collections::BTreeSet;

thread_local! {
    /// Principals with an update in flight (heap only: no call is in flight
    /// after an upgrade).
    static BUSY: RefCell<BTreeSet<Principal>> = const { RefCell::new(BTreeSet::new()) };
}

thread_local! {
    /// Jobs with a `job_key` derivation in flight (heap only).
    static KEYS_BUSY: RefCell<BTreeSet<JobId>> = const { RefCell::new(BTreeSet::new()) };
}

/// Keeps two updates of one principal from interleaving at an `.await`.
fn guard(p: Principal) -> Result<Guard<Principal>, MatcherError> {
    Guard::new(&BUSY, p).map_err(|GuardError::AlreadyProcessing| MatcherError::Busy)
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
        StoreError::TooManyModules => MatcherError::LimitReached {
            what: "modules stored".into(),
            limit: u64::from(market_api::matcher::MAX_MODULES_PER_UPLOADER),
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

/// Starts an upload; only principals holding a balance in the escrow may.
pub async fn begin_module_upload(
    rt: &impl Runtime,
    caller: Principal,
    args: ModuleUpload,
) -> Result<ModuleInfo, MatcherError> {
    perform::require_escrow_balance(rt, caller).await?;
    let t = rt.now_ns();
    mutate_state(|s| s.market.modules.begin(t, caller, args.sha256, args.size))
        .map(|m| module_info(args.sha256, &m))
        .map_err(|e| store_error(e, args.sha256))
}

/// Stores one chunk of an upload.
pub fn put_module_chunk(
    caller: Principal,
    sha256: Sha256,
    index: u32,
    bytes: Vec<u8>,
) -> Result<(), MatcherError> {
    if bytes.len() > MAX_CHUNK_BYTES {
        return Err(MatcherError::InvalidArgument {
            field: "bytes".into(),
            reason: "chunk too large".into(),
        });
    }
    mutate_state(|s| s.market.modules.put_chunk(caller, sha256, index, bytes))
        .map_err(|e| store_error(e, sha256))
}

/// Verifies an upload and makes the module usable.
pub fn commit_module(
    rt: &impl Runtime,
    caller: Principal,
    sha256: Sha256,
) -> Result<ModuleInfo, MatcherError> {
    let t = rt.now_ns();
    let m = mutate_state(|s| audit::commit_module(s, t, caller, sha256))
        .map_err(|e| store_error(e, sha256))?;
    rt.schedule();
    Ok(module_info(sha256, &m))
}

/// A module's metadata.
pub fn module_info_of(sha256: Sha256) -> Option<ModuleInfo> {
    read_state(|s| s.market.modules.meta(&sha256)).map(|m| module_info(sha256, &m))
}

/// One chunk of a committed module, for those who may read it (see
/// `Market::reads_module`).
pub fn module_chunk(
    caller: Principal,
    sha256: Sha256,
    index: u32,
) -> Result<Vec<u8>, MatcherError> {
    read_state(|s| {
        if s.market.modules.meta(&sha256).is_some() && !s.market.reads_module(caller, &sha256) {
            return Err(MatcherError::Unauthorized {
                reason: "only the module's uploader, the owner of a job running it and its \
                         provider read a module"
                    .into(),
            });
        }
        s.market
            .modules
            .chunk(&sha256, index)
            .map_err(|e| store_error(e, sha256))
    })
}

/// Posts (`offer_id` `None`) or changes an offer of a registered provider.
///
/// The caller is checked (the registry's standing) before anything else and
/// takes no guard: what follows the check changes the state in one step.
pub async fn offer(
    rt: &impl Runtime,
    caller: Principal,
    offer_id: Option<OfferId>,
    spec: OfferSpec,
) -> Result<OfferId, MatcherError> {
    let standing = perform::provider_standing(rt, caller).await?;
    let post = OfferPost {
        provider: caller,
        node: standing.node,
        backing: standing.backing,
        offer_id,
    };
    let t = rt.now_ns();
    let id = mutate_state(|s| audit::put_offer(s, t, post, spec))?;
    rt.schedule();
    Ok(id)
}

/// Withdraws one of the caller's offers.
pub fn withdraw_offer(
    rt: &impl Runtime,
    caller: Principal,
    offer_id: OfferId,
) -> Result<(), MatcherError> {
    let t = rt.now_ns();
    mutate_state(|s| audit::withdraw_offer(s, t, caller, offer_id))
}

/// Submits a job and locks its maximum cost.
pub async fn submit_job(
    rt: &impl Runtime,
    caller: Principal,
    spec: JobSpec,
) -> Result<JobId, MatcherError> {
    let _guard = guard(caller)?;
    let t = rt.now_ns();
    let rec = mutate_state(|s| {
        let p = s.params();
        s.market.create_job(&p, t, caller, spec)
    })?;
    perform::fund(rt, rec).await
}

/// Reserves capacity and locks its maximum cost.
pub async fn reserve(
    rt: &impl Runtime,
    caller: Principal,
    spec: ReservationSpec,
) -> Result<ReservationId, MatcherError> {
    let _guard = guard(caller)?;
    let t = rt.now_ns();
    let rec = mutate_state(|s| {
        let p = s.params();
        s.market.create_reservation(&p, t, caller, spec)
    })?;
    perform::fund(rt, rec).await
}

/// Extends one of the caller's reservations, locking the extension's cost.
pub async fn extend_reservation(
    rt: &impl Runtime,
    caller: Principal,
    args: ExtendReservationArgs,
) -> Result<(), MatcherError> {
    let _guard = guard(caller)?;
    let t = rt.now_ns();
    let seq = mutate_state(|s| {
        let ext = s.market.prepare_extension(caller, &args)?;
        Ok::<_, MatcherError>(s.market.begin_extension(t, args.reservation, ext))
    })?;
    perform::lock_extension(rt, seq).await
}

/// Changes the delegates of one of the caller's reservations.
pub fn set_delegates(
    rt: &impl Runtime,
    caller: Principal,
    args: SetDelegatesArgs,
) -> Result<Vec<Principal>, MatcherError> {
    let t = rt.now_ns();
    mutate_state(|s| audit::set_delegates(s, t, caller, &args))
}

/// Cancels one of the caller's reservations.
pub fn cancel_reservation(
    rt: &impl Runtime,
    caller: Principal,
    args: CancelReservationArgs,
) -> Result<(), MatcherError> {
    let t = rt.now_ns();
    mutate_state(|s| {
        let p = s.params();
        s.market.cancel_reservation(&p, t, caller, args.reservation)
    })?;
    rt.schedule();
    Ok(())
}

/// Submits a job into a reservation's slots.
pub fn submit_reserved_job(
    rt: &impl Runtime,
    caller: Principal,
    args: ReservedJobArgs,
) -> Result<JobId, MatcherError> {
    let t = rt.now_ns();
    let id = mutate_state(|s| {
        let p = s.params();
        s.market.submit_reserved_job(&p, t, caller, args)
    })?;
    rt.schedule();
    Ok(id)
}

/// Registers (`registered`) or removes a DAO; `is_controller` says whether
/// the caller controls the canister.
pub fn set_dao(
    rt: &impl Runtime,
    is_controller: bool,
    dao: DaoRegistration,
    registered: bool,
) -> Result<(), MatcherError> {
    if !is_controller {
        return Err(MatcherError::Unauthorized {
            reason: "only controllers or the SNS governance register DAOs".into(),
        });
    }
    let t = rt.now_ns();
    mutate_state(|s| audit::set_dao(s, t, dao, registered))
}

/// A controller sets the market's fee (see [`audit::set_market_fee`]).
pub fn set_market_fee(
    rt: &impl Runtime,
    is_controller: bool,
    caller: Principal,
    fee_ppm: u32,
) -> Result<(), MatcherError> {
    if !is_controller {
        return Err(MatcherError::Unauthorized {
            reason: "only controllers or the SNS governance set the market's fee".into(),
        });
    }
    let t = rt.now_ns();
    mutate_state(|s| audit::set_market_fee(s, t, caller, fee_ppm))
}

/// Whether `fee_ppm` may be the market's fee: at most
/// [`market_api::matcher::MAX_MARKET_FEE_PPM`].
pub fn check_market_fee(fee_ppm: u32) -> Result<(), MatcherError> {
    if fee_ppm > market_api::matcher::MAX_MARKET_FEE_PPM {
        return Err(MatcherError::InvalidArgument {
            field: "fee_ppm".into(),
            reason: format!(
                "at most {} parts per million",
                market_api::matcher::MAX_MARKET_FEE_PPM
            ),
        });
    }
    Ok(())
}

/// The caller disputes the result of one of its jobs: it is audited.
pub fn dispute_job(
    rt: &impl Runtime,
    caller: Principal,
    job_id: JobId,
) -> Result<(), MatcherError> {
    let t = rt.now_ns();
    mutate_state(|s| audit::dispute(s, t, caller, job_id))?;
    rt.schedule();
    Ok(())
}

/// Cancels one of the caller's jobs.
pub fn cancel_job(rt: &impl Runtime, caller: Principal, job_id: JobId) -> Result<(), MatcherError> {
    let t = rt.now_ns();
    mutate_state(|s| {
        let p = s.params();
        s.market.cancel(&p, t, caller, job_id)
    })?;
    rt.schedule();
    Ok(())
}

/// One page of the unfinished jobs assigned to a provider, light: terms
/// and sizes, no spec bytes.
pub fn assignments(provider: Principal, page: PageRequest) -> AssignmentPage {
    let limit = page.effective_limit().min(MAX_ASSIGNMENTS_PAGE as usize);
    read_state(|s| {
        let p = s.params();
        let (held, next) = s
            .market
            .assignments_page(provider, page.start.unwrap_or(0), limit);
        let assignments = held
            .into_iter()
            .filter_map(|r| {
                let a = r.state.assignment.clone()?;
                Some(Assignment {
                    job_id: r.state.id,
                    attempt: a.attempt,
                    price: a.price,
                    next_deadline_ns: s.market.deadline_of(&p, &r.state).unwrap_or(0),
                    result_deadline_ns: a.result_due_ns,
                    fuel_reported: a.fuel_reported,
                    fuel_per_sec: a.fuel_per_sec,
                    counting_from_ns: a.counting_from_ns,
                    acknowledged: a.started_at_ns.is_some(),
                    kind: r.public_kind(),
                    interval_secs: r.spec.interval_secs,
                    intervals_paid: r.state.intervals_paid,
                    input_bytes: r.spec.input.len() as u64,
                    seed: job_seed(match r.kind {
                        JobKind::Audit { of } => of,
                        _ => r.state.id,
                    }),
                })
            })
            .collect();
        AssignmentPage { assignments, next }
    })
}

/// A job without its input and output bytes, as `caller` may see it.
pub fn job_view(caller: Principal, job_id: JobId) -> Option<JobView> {
    read_state(|s| s.market.job_view(caller, job_id))
}

/// One chunk of a job's input or output, for its readers.
pub fn job_chunk(caller: Principal, req: JobChunkRequest) -> Result<JobChunk, MatcherError> {
    read_state(|s| s.market.job_chunk(caller, &req))
}

/// One batched heartbeat of a provider or its node.
pub fn heartbeat(
    rt: &impl Runtime,
    caller: Principal,
    items: Vec<HeartbeatItem>,
) -> Result<Vec<HeartbeatAck>, MatcherError> {
    let t = rt.now_ns();
    let acks = mutate_state(|s| {
        s.market.observe_run(t);
        let p = s.params();
        s.market.heartbeat(&p, t, caller, &items)
    })?;
    rt.schedule();
    Ok(acks)
}

/// A provider's result for a job.
pub fn submit_result(
    rt: &impl Runtime,
    caller: Principal,
    args: SubmitResultArgs,
) -> Result<(), MatcherError> {
    if args.result.output.len() > MAX_OUTPUT_BYTES {
        return Err(MatcherError::InvalidArgument {
            field: "output".into(),
            reason: "too large".into(),
        });
    }
    let t = rt.now_ns();
    mutate_state(|s| {
        s.market.observe_run(t);
        audit::submit_result(s, t, caller, args)
    })?;
    rt.schedule();
    Ok(())
}

/// Up to [`MAX_CHUNK_BYTES`] of a job's output from byte `offset` on, for
/// the job's owner only (a job's contents are its owner's business).
pub fn job_output(
    caller: Principal,
    job_id: JobId,
    offset: u64,
) -> Result<OutputChunk, MatcherError> {
    let rec = read_state(|s| s.market.job(job_id)).ok_or(MatcherError::UnknownJob { job_id })?;
    if rec.state.owner != caller {
        return Err(MatcherError::Unauthorized {
            reason: "only the job's owner may read its output".into(),
        });
    }
    let output = rec.to_job().result.map(|r| r.output).unwrap_or_default();
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(output.len());
    let end = start.saturating_add(MAX_CHUNK_BYTES).min(output.len());
    Ok(OutputChunk {
        bytes: output[start..end].to_vec(),
        total_len: output.len() as u64,
    })
}

/// The job's vetKey for `caller`, encrypted to its transport key: for
/// the provider (or node) holding the job's assignment for `req.attempt`
/// while it runs, and for the job's owner. Who the caller is, is checked
/// before the job's guard; the derivation is counted before the call.
pub async fn job_key(
    rt: &impl Runtime,
    caller: Principal,
    req: JobKeyRequest,
) -> Result<JobKey, MatcherError> {
    let (grant, key, config) = read_state(|s| {
        let grant = s.market.check_job_key(caller, &req)?;
        Ok::<_, MatcherError>((grant, s.privacy_key(), s.config().privacy))
    })?;
    if req.transport_public_key.len() != TRANSPORT_KEY_BYTES {
        return Err(MatcherError::InvalidArgument {
            field: "transport_public_key".into(),
            reason: format!("must be {TRANSPORT_KEY_BYTES} bytes"),
        });
    }
    let (Some(key), Some(config)) = (key, config) else {
        return Err(MatcherError::Downstream {
            canister: "management".into(),
            message: "the matcher has not read its public key yet: try again shortly".into(),
        });
    };
    let _guard = Guard::new(&KEYS_BUSY, req.job_id)
        .map_err(|GuardError::AlreadyProcessing| MatcherError::Busy)?;
    let before = mutate_state(|s| s.market.count_job_key(&grant))?;
    perform::derive_job_key(
        rt,
        &grant,
        before,
        req.transport_public_key,
        &key,
        config.derive_cycles(),
    )
    .await
}

/// Reads the matcher's public key for job keys (see
/// [`perform::read_privacy_key`]).
pub async fn read_privacy_key(rt: &impl Runtime) -> Result<(), String> {
    perform::read_privacy_key(rt).await
}

/// The holder gives a job back before its deadline.
pub fn hand_back(
    rt: &impl Runtime,
    caller: Principal,
    job_id: JobId,
    attempt: u32,
) -> Result<(), MatcherError> {
    let t = rt.now_ns();
    mutate_state(|s| {
        s.market.observe_run(t);
        audit::hand_back(s, t, caller, job_id, attempt)
    })?;
    rt.schedule();
    Ok(())
}

/// Resting bids and free offer slots per price on a ledger, in `currency`
/// (`None`: the ledger's token).
pub fn book_depth(ledger: Principal, currency: Option<Currency>) -> BookDepth {
    let currency = currency.unwrap_or_default();
    read_state(|s| {
        let jobs = s
            .market
            .book
            .depth_in(ledger, PriceUnit::Gfuel, currency, 50);
        let slots = s
            .market
            .book
            .depth_in(ledger, PriceUnit::Interval, currency, 50);
        BookDepth {
            bids: jobs.bids,
            asks: jobs.asks,
            slot_bids: slots.bids,
            slot_asks: slots.asks,
        }
    })
}

/// Most trades `recent_prices` returns.
const RECENT_TRADES: usize = 50;
/// Most events `recent_prices` looks back through.
const RECENT_SCAN: u64 = 2_000;

/// The latest matches on a ledger, newest first.
pub fn recent_prices(ledger: Principal) -> Vec<Trade> {
    read_state(|s| {
        s.events
            .newest(RECENT_SCAN)
            .filter_map(|e| match e.event {
                MatcherEvent::JobAssigned { job_id, price, .. } => s
                    .market
                    .job(job_id)
                    .filter(|r| r.spec.ledger == ledger)
                    .map(|r| Trade {
                        job_id,
                        price,
                        unit: if r.state.fuel.is_some() {
                            PriceUnit::Gfuel
                        } else {
                            PriceUnit::Interval
                        },
                        time_ns: e.time_ns,
                    }),
                _ => None,
            })
            .take(RECENT_TRADES)
            .collect()
    })
}

/// The DAO behind `governance`, with its escrow balance on the action's ledger.
async fn dao_context(
    rt: &impl Runtime,
    governance: Principal,
    action: &SnsAction,
) -> Result<governance::DaoContext, String> {
    let name = read_state(|s| s.market.dao_name(governance)).ok_or_else(|| {
        format!(
            "{governance} is not a registered SNS governance canister: the marketplace's \
             controllers register DAOs (register_dao)"
        )
    })?;
    perform::dao_context(rt, governance, name, action).await
}

/// An SNS validator: checks `action` of the DAO `governance` and says what
/// it would do; changes nothing.
pub async fn sns_validate(
    rt: &impl Runtime,
    governance: Principal,
    action: SnsAction,
) -> Result<String, String> {
    let ctx = dao_context(rt, governance, &action).await?;
    read_state(|s| governance::validate(&s.market, &s.params(), &ctx, &action))
}

/// An SNS target: checks `action` again and does it as the DAO's own
/// principal; returns what was done, or why it could not be done.
pub async fn sns_execute(
    rt: &impl Runtime,
    governance: Principal,
    action: SnsAction,
) -> Result<String, String> {
    let ctx = dao_context(rt, governance, &action).await?;
    let summary = read_state(|s| governance::validate(&s.market, &s.params(), &ctx, &action))?;
    let dao = ctx.governance;
    let done = match action {
        SnsAction::Reserve(spec) => reserve(rt, dao, spec)
            .await
            .map(|id| format!("Reservation {id} made. {summary}")),
        SnsAction::Extend(args) => extend_reservation(rt, dao, args).await.map(|()| summary),
        SnsAction::SetDelegates(args) => set_delegates(rt, dao, args).map(|_| summary),
        SnsAction::Cancel(args) => cancel_reservation(rt, dao, args).map(|()| summary),
        SnsAction::SubmitJob(spec) => submit_job(rt, dao, spec)
            .await
            .map(|id| format!("Job {id} submitted. {summary}")),
        SnsAction::Withdraw(args) => perform::withdraw_for(rt, dao, args)
            .await
            .map(|block| format!("Withdrawn in ledger block {block}. {summary}")),
    };
    done.map_err(|e| governance::reason(&e))
}

/// Reads every ledger's rate now (controllers only, `is_controller` says
/// whether the caller is one): the reads are outbox steps like the
/// timer's, made at once.
pub async fn refresh_rates(rt: &impl Runtime, is_controller: bool) -> Result<(), MatcherError> {
    if !is_controller {
        return Err(MatcherError::Unauthorized {
            reason: "only controllers or the SNS governance refresh the rates".into(),
        });
    }
    perform::refresh_rates(rt).await;
    rt.schedule();
    Ok(())
}

/// Queues a read of every ledger's rate (the refresh timer's work).
pub fn queue_rate_reads(rt: &impl Runtime) {
    mutate_state(|s| s.market.read_rates());
    rt.schedule();
}

/// The rates prices convert at now.
pub fn get_rates() -> RatesView {
    read_state(|s| s.market.pricing.view(&s.rates()))
}

/// A probe's answer reduced to its status (see `perform::probe_request`).
pub fn transform_probe(
    args: market_api::outcall::TransformArgs,
) -> market_api::outcall::HttpRequestResult {
    market_api::outcall::HttpRequestResult {
        status: args.response.status,
        headers: vec![],
        body: vec![],
    }
}
