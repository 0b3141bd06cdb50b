//! ic-cdk entry points: each reads the caller, checks it, calls one
//! function of [`crate::endpoints`] and returns its result. No rules and no
//! calls to other canisters live here.

use crate::endpoints;
use crate::runtime::{IcRuntime, Runtime};
use crate::state::{mutate_state, read_state};
use crate::timers;
use candid::Principal;
use canister_common::admin;
// `export_service!` names the types of every entry point, the SNS ones too.
use market_api::escrow::WithdrawArgs;
use market_api::matcher::{
    AssignmentPage, BookDepth, CancelReservationArgs, DaoRegistration, ExtendReservationArgs,
    HeartbeatAck, HeartbeatItem, Job, JobChunk, JobChunkRequest, JobSpec, JobView, MatcherError,
    MatcherEvent, MatcherInit, ModuleInfo, ModuleUpload, Offer, OfferSpec, OutputChunk,
    Reservation, ReservationId, ReservationSpec, ReservedJobArgs, ServiceView, SetDelegatesArgs,
    Sha256, SubmitResultArgs, Trade,
};
use market_api::outcall::{HttpRequestResult, TransformArgs};
use market_api::prices::{Currency, RatesView};
use market_api::privacy::{JobKey, JobKeyRequest, PrivacyKey};
use market_api::{HttpRequest, HttpResponse, JobId, OfferId, PageRequest};

mod sns;

/// The caller, unless anonymous.
fn caller() -> Result<Principal, MatcherError> {
    let c = ic_cdk::api::msg_caller();
    if c == Principal::anonymous() {
        return Err(MatcherError::AnonymousCaller);
    }
    Ok(c)
}

#[ic_cdk::init]
fn init(arg: MatcherInit) {
    if let Err(e) = arg.check() {
        ic_cdk::trap(format!("invalid configuration: {e}"));
    }
    mutate_state(|s| {
        s.set_config(arg);
        s.set_fresh_layout();
    });
    timers::start_watchdog();
    timers::start_audit();
    timers::start_rates();
    timers::start_privacy_key();
    read_state(|s| s.events.certify());
}

/// Work bounded by the pending outbox steps, not by the jobs ever made
/// (the rule is `canister_common::audit`'s): the argument is applied and
/// the configuration read here, trapping (so rolling back) if it is
/// missing; steps left in flight are made ready again; the indexes are
/// built once for a state saved before they existed. The indexes are
/// checked afterwards by the audit timer, which logs and counts what it
/// finds.
#[ic_cdk::post_upgrade]
fn post_upgrade(arg: Option<MatcherInit>) {
    mutate_state(|s| {
        match arg.map(|c| c.check().map(|()| c)) {
            Some(Ok(config)) => s.set_config(config),
            Some(Err(e)) => IcRuntime.log(&format!("kept the configuration: {e}")),
            None => {}
        }
        s.params();
        s.market.outbox.reset_in_flight();
        if s.migrate_layout() {
            IcRuntime.log("built the indexes missing from an older layout");
        }
        for problem in s.rate_problems() {
            IcRuntime.log(&format!("rates: {problem}"));
        }
    });
    timers::start_watchdog();
    timers::start_audit();
    timers::start_rates();
    timers::start_privacy_key();
    timers::schedule();
    read_state(|s| s.events.certify());
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
    endpoints::begin_module_upload(&IcRuntime, caller()?, args).await
}

/// Stores one chunk (of [`market_api::matcher::MAX_CHUNK_BYTES`], the last
/// one shorter) of an upload.
#[ic_cdk::update]
fn put_module_chunk(
    sha256: Sha256,
    index: u32,
    bytes: serde_bytes::ByteBuf,
) -> Result<(), MatcherError> {
    endpoints::put_module_chunk(caller()?, sha256, index, bytes.into_vec())
}

/// Verifies an upload's sha256 and makes the module usable by jobs.
#[ic_cdk::update]
fn commit_module(sha256: Sha256) -> Result<ModuleInfo, MatcherError> {
    endpoints::commit_module(&IcRuntime, caller()?, sha256)
}

/// A module's metadata.
#[ic_cdk::query]
fn module_info_of(sha256: Sha256) -> Option<ModuleInfo> {
    endpoints::module_info_of(sha256)
}

/// One chunk of a committed module, for its uploader, the owner of a live
/// job or lease running it, and the provider (or node) holding an
/// assignment of one.
#[ic_cdk::query]
fn module_chunk(sha256: Sha256, index: u32) -> Result<serde_bytes::ByteBuf, MatcherError> {
    endpoints::module_chunk(ic_cdk::api::msg_caller(), sha256, index)
        .map(serde_bytes::ByteBuf::from)
}

/// Posts a standing offer (registered, unjailed providers only); resting
/// bids it can serve are matched at once.
#[ic_cdk::update]
async fn post_offer(spec: OfferSpec) -> Result<OfferId, MatcherError> {
    endpoints::offer(&IcRuntime, caller()?, None, spec).await
}

/// Changes one of the caller's offers.
#[ic_cdk::update]
async fn update_offer(offer_id: OfferId, spec: OfferSpec) -> Result<OfferId, MatcherError> {
    endpoints::offer(&IcRuntime, caller()?, Some(offer_id), spec).await
}

/// Withdraws one of the caller's offers; jobs running on it go on.
#[ic_cdk::update]
fn withdraw_offer(offer_id: OfferId) -> Result<(), MatcherError> {
    endpoints::withdraw_offer(&IcRuntime, caller()?, offer_id)
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
    endpoints::submit_job(&IcRuntime, caller()?, spec).await
}

/// Reserves capacity (see `ReservationSpec`): locks slots x intervals x
/// max price from the caller's escrow balance, then matches each slot.
/// Returns the reservation's id.
#[ic_cdk::update]
async fn reserve(spec: ReservationSpec) -> Result<ReservationId, MatcherError> {
    endpoints::reserve(&IcRuntime, caller()?, spec).await
}

/// Adds intervals to each live slot of one of the caller's reservations,
/// locking their cost from the caller's escrow balance.
#[ic_cdk::update]
async fn extend_reservation(args: ExtendReservationArgs) -> Result<(), MatcherError> {
    endpoints::extend_reservation(&IcRuntime, caller()?, args).await
}

/// Adds and removes principals that may run jobs in one of the caller's
/// reservations. Returns the delegates afterwards.
#[ic_cdk::update]
fn set_delegates(args: SetDelegatesArgs) -> Result<Vec<Principal>, MatcherError> {
    endpoints::set_delegates(&IcRuntime, caller()?, args)
}

/// Cancels one of the caller's reservations: intervals already heartbeated
/// stay paid; the rest of the lock returns to the caller's balance.
#[ic_cdk::update]
fn cancel_reservation(args: CancelReservationArgs) -> Result<(), MatcherError> {
    endpoints::cancel_reservation(&IcRuntime, caller()?, args)
}

/// Submits a job to run in a reservation's slots, at no further cost; the
/// caller must be the reservation's owner or one of its delegates.
#[ic_cdk::update]
fn submit_reserved_job(args: ReservedJobArgs) -> Result<JobId, MatcherError> {
    endpoints::submit_reserved_job(&IcRuntime, caller()?, args)
}

/// A reservation, if it exists; a service's env (plain and sealed) only
/// for its owner, its delegates and the providers holding its slots.
#[ic_cdk::query]
fn get_reservation(reservation: ReservationId) -> Option<Reservation> {
    let caller = ic_cdk::api::msg_caller();
    read_state(|s| s.market.reservation_for(caller, reservation))
}

/// A service lease (a reservation with a service) as anyone may read it:
/// its component's hash, health path, allowed hosts and limits, and each
/// replica's provider, endpoint and probe health (never its env).
#[ic_cdk::query]
fn get_service(service: ReservationId) -> Option<ServiceView> {
    read_state(|s| s.market.service(service))
}

/// The transform of the matcher's probes (HTTPS outcalls): keeps only the
/// status of a replica's answer, no headers and no body, so every node of
/// the subnet sees the same response.
#[ic_cdk::query]
fn transform_probe(args: TransformArgs) -> HttpRequestResult {
    endpoints::transform_probe(args)
}

/// An owner's reservations, from `page.start` (a reservation id) on; a
/// service's env only for those `get_reservation` shows it to.
#[ic_cdk::query]
fn list_reservations(owner: Principal, page: PageRequest) -> Vec<Reservation> {
    let caller = ic_cdk::api::msg_caller();
    read_state(|s| {
        s.market.reservations_of(
            caller,
            owner,
            page.start.unwrap_or(0),
            page.effective_limit(),
        )
    })
}

/// Registers (or renames) a DAO whose SNS governance canister may call the
/// `sns_*` methods. Controllers or the market's SNS governance only.
#[ic_cdk::update]
fn register_dao(dao: DaoRegistration) -> Result<(), MatcherError> {
    endpoints::set_dao(&IcRuntime, may_administer(&caller()?), dao, true)
}

/// Validator of `register_dao` for a proposal of the market's SNS.
#[ic_cdk::query]
fn validate_register_dao(dao: DaoRegistration) -> Result<String, String> {
    let check = read_state(|s| s.market.check_dao(&dao));
    admin::validation("register_dao", &dao, check)
}

/// Sets the market's fee, in parts per million of the provider's pay
/// (at most `MAX_MARKET_FEE_PPM`), for jobs and reservations submitted
/// from now on; recorded as a `MarketFeeSet` event. Controllers or the market's SNS
/// governance only.
#[ic_cdk::update]
fn set_market_fee(fee_ppm: u32) -> Result<(), MatcherError> {
    let caller = caller()?;
    endpoints::set_market_fee(&IcRuntime, may_administer(&caller), caller, fee_ppm)
}

/// Validator of `set_market_fee` for a proposal of the market's SNS.
#[ic_cdk::query]
fn validate_set_market_fee(fee_ppm: u32) -> Result<String, String> {
    let check = endpoints::check_market_fee(fee_ppm);
    admin::validation("set_market_fee", &fee_ppm, check)
}

/// Removes a DAO's registration. Controllers or the market's SNS
/// governance only.
#[ic_cdk::update]
fn deregister_dao(dao: DaoRegistration) -> Result<(), MatcherError> {
    endpoints::set_dao(&IcRuntime, may_administer(&caller()?), dao, false)
}

/// Validator of `deregister_dao` for a proposal of the market's SNS.
#[ic_cdk::query]
fn validate_deregister_dao(dao: DaoRegistration) -> Result<String, String> {
    let registered = read_state(|s| s.market.dao_name(dao.governance).is_some());
    let check = if registered {
        Ok(())
    } else {
        Err("not registered")
    };
    admin::validation("deregister_dao", &dao, check)
}

/// Whether `caller` is a controller or the market's SNS governance (the
/// `governance` of the configuration).
fn may_administer(caller: &Principal) -> bool {
    let governance = read_state(|s| s.config().governance);
    admin::caller_may_administer(caller, governance)
}

/// The registered DAOs.
#[ic_cdk::query]
fn list_daos(page: PageRequest) -> Vec<DaoRegistration> {
    read_state(|s| s.market.daos(page.effective_limit()))
}

/// A job, if it exists. Its input, args, env, sealed env and output are
/// shown only to its readers: its owner, the owner and delegates of the
/// reservation it runs in, and the provider (or node) holding its
/// assignment. Others see them empty (sizes and hashes are in `job_view`).
#[ic_cdk::query]
fn get_job(job_id: JobId) -> Option<Job> {
    let caller = ic_cdk::api::msg_caller();
    read_state(|s| s.market.job_for(caller, job_id))
}

/// An owner's jobs, from `page.start` (a job id) on: at most `page.limit`
/// of them, fewer when their contents pass 1 MiB (at least one). Ask for
/// the next page from the last job's id + 1. Contents as `get_job` shows
/// them to the caller.
#[ic_cdk::query]
fn list_jobs(owner: Principal, page: PageRequest) -> Vec<Job> {
    let caller = ic_cdk::api::msg_caller();
    read_state(|s| {
        s.market.jobs_of(
            caller,
            owner,
            page.start.unwrap_or(0),
            page.effective_limit(),
        )
    })
}

/// Up to 1 MiB of a job's output from byte `offset` on, for the job's owner
/// only: how a buyer's canister reads the output its callback's notice
/// announced (the notice carries its length and sha256).
#[ic_cdk::query]
fn job_output(job_id: JobId, offset: u64) -> Result<OutputChunk, MatcherError> {
    endpoints::job_output(caller()?, job_id, offset)
}

/// Disputes the result of one of the caller's jobs while its challenge
/// window is open: the job runs again on another provider, paid from its
/// lock like any audit. If the majority of runs disagree with the result,
/// its provider is slashed in the caller's favour and forfeits its pay, and
/// the job's result becomes the majority's. A result already audited
/// can't be disputed.
#[ic_cdk::update]
fn dispute_job(job_id: JobId) -> Result<(), MatcherError> {
    endpoints::dispute_job(&IcRuntime, caller()?, job_id)
}

/// Cancels one of the caller's jobs: intervals already paid stay paid, the
/// rest of the lock returns to the caller's balance.
#[ic_cdk::update]
fn cancel_job(job_id: JobId) -> Result<(), MatcherError> {
    endpoints::cancel_job(&IcRuntime, caller()?, job_id)
}

/// One page of the jobs assigned to a provider that are not finished, in
/// job id order from `page.start` (at most 100 a page): the terms each is
/// heartbeated and paid by and the size of its input, never its bytes.
/// Read each job's spec with `job_view` and its input with `job_chunk`.
#[ic_cdk::query]
fn assignments(provider: Principal, page: PageRequest) -> AssignmentPage {
    endpoints::assignments(provider, page)
}

/// A job without its input and output bytes (their sizes, and the input's
/// sha256, instead): always small enough for a reply, where `get_job` of
/// the largest job is not. Its args and env are left out too
/// (`contents_hidden`) unless the caller is one of the job's readers (see
/// `get_job`).
#[ic_cdk::query]
fn job_view(job_id: JobId) -> Option<JobView> {
    endpoints::job_view(ic_cdk::api::msg_caller(), job_id)
}

/// Up to 1 MiB of a job's input or output from an offset, with the whole
/// part's size and sha256; for the job's readers only (see `get_job`).
#[ic_cdk::query]
fn job_chunk(req: JobChunkRequest) -> Result<JobChunk, MatcherError> {
    endpoints::job_chunk(ic_cdk::api::msg_caller(), req)
}

/// One batched heartbeat for all of a provider's jobs, from the provider or
/// its node principal. The first heartbeat of a job acknowledges it; later
/// ones each pay the interval just completed.
#[ic_cdk::update]
fn heartbeat(items: Vec<HeartbeatItem>) -> Result<Vec<HeartbeatAck>, MatcherError> {
    endpoints::heartbeat(&IcRuntime, caller()?, items)
}

/// A provider's result for a job: pays what is due and settles the rest.
#[ic_cdk::update]
fn submit_result(args: SubmitResultArgs) -> Result<(), MatcherError> {
    endpoints::submit_result(&IcRuntime, caller()?, args)
}

/// The matcher's key that job contents are sealed under (see
/// `market_api::privacy`): `None` without privacy configured, or until
/// the matcher has read it after install or upgrade.
#[ic_cdk::query]
fn privacy_key() -> Option<PrivacyKey> {
    read_state(|s| s.privacy_key())
}

/// A sealed job's vetKey encrypted to the caller's transport key: for the
/// provider (or its node) holding the job's assignment for `attempt` while
/// it runs (to open its input and env and seal its output), and for the
/// job's owner (to open a sealed output). At most
/// `market_api::privacy::MAX_KEYS_PER_HOLDER` per attempt and per owner.
#[ic_cdk::update]
async fn job_key(req: JobKeyRequest) -> Result<JobKey, MatcherError> {
    endpoints::job_key(&IcRuntime, caller()?, req).await
}

/// The provider (or its node) gives back a job it cannot finish, before its
/// deadline: the intervals it heartbeated stay paid, it is not slashed, and
/// the job is matched again with its remaining budget (never with this
/// provider). For nodes going down for maintenance.
#[ic_cdk::update]
fn hand_back(job_id: JobId, attempt: u32) -> Result<(), MatcherError> {
    endpoints::hand_back(&IcRuntime, caller()?, job_id, attempt)
}

/// Resting bids and free offer slots per price on a ledger, in `currency`
/// (none: the ledger's own token; XDR: prices in cycles).
#[ic_cdk::query]
fn book_depth(ledger: Principal, currency: Option<Currency>) -> BookDepth {
    endpoints::book_depth(ledger, currency)
}

/// Reads every ledger's rate now (the cycles minting canister's ICP/XDR
/// rate, the exchange rate canister's for other tokens), as the refresh
/// timer does. Controllers or the market's SNS governance only.
#[ic_cdk::update]
async fn refresh_rates() {
    let is_admin = caller().is_ok_and(|c| may_administer(&c));
    if let Err(e) = endpoints::refresh_rates(&IcRuntime, is_admin).await {
        ic_cdk::trap(format!("{e:?}"));
    }
}

/// Validator of `refresh_rates` for a proposal of the market's SNS.
#[ic_cdk::query]
fn validate_refresh_rates() -> Result<String, String> {
    admin::validation("refresh_rates", &(), Ok::<(), ()>(()))
}

/// The rates prices convert at: each valued ledger's last valuation (in
/// cycles per smallest unit) or why its last read failed, the oldest rate
/// a lock may use and the lock's buffer.
#[ic_cdk::query]
fn get_rates() -> RatesView {
    endpoints::get_rates()
}

/// The latest matches on a ledger, newest first (at most 50, from the last
/// 2,000 events): what providers were recently paid per interval.
#[ic_cdk::query]
fn recent_prices(ledger: Principal) -> Vec<Trade> {
    endpoints::recent_prices(ledger)
}

canister_common::public_log_endpoints!(MatcherEvent);

/// `/metrics` in the Prometheus text format.
#[ic_cdk::query]
fn http_request(req: HttpRequest) -> HttpResponse {
    if req.url.split('?').next() != Some("/metrics") {
        return HttpResponse::text(404, "text/plain", "not found");
    }
    let cycles = canister_common::cycles::report(&IcRuntime);
    let body = read_state(|s| crate::metrics::encode(s, ic_cdk::api::time(), &cycles));
    HttpResponse::text(200, canister_common::metrics::CONTENT_TYPE, body)
}

candid::export_service!();

/// The Candid interface generated from the entry points above, compared in
/// tests with the checked-in `matcher.did`.
pub fn candid_interface() -> String {
    __export_service()
}
