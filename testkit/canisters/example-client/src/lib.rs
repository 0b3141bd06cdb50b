//! An example client canister of the marketplace, written the way a dapp
//! team would: it funds its escrow balance from its own ICP, submits jobs
//! with a callback, and when the matcher's notice of a finished job
//! arrives, records it and reads the job's output from the matcher.
//!
//! The notice is small whatever the job (ids, outcome, cost, the output's
//! length and sha256); the output, up to 1 MiB, is read with the matcher's
//! `job_output` query and checked against the notice's hash.
//!
//! It also leases a service (`lease_service`) and keeps each replica's
//! endpoint as the matcher's `service_changed` notices tell it, which is
//! how a dapp learns where its gateway answers after a provider fails.
//!
//! Its controllers drive it (`fund`, `submit`, `lease_service`,
//! `cancel_lease`); only the
//! matcher may call `job_finished` and `service_changed`. The demo and the matcher's devnet tests use it, the
//! latter with [`CallbackMode::Trap`] to show that a failing callback harms
//! nothing.

use candid::{CandidType, Nat, Principal};
use canister_common::codec::Cbor;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::{Cell, DefaultMemoryImpl, StableBTreeMap};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use market_api::client::{EscrowClient, MatcherClient, call};
use market_api::escrow::DepositArgs;
use market_api::matcher::{
    CancelReservationArgs, JobNotice, JobSpec, MAX_OUTPUT_BYTES, MatcherError, OutputChunk,
    ReservationId, ReservationSpec, ReservedJobArgs, ServiceNotice,
};
use market_api::{JobId, PageRequest};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::cell::RefCell;

/// The callback method this canister names in its jobs.
pub const CALLBACK_METHOD: &str = "job_finished";
/// The callback method this canister names in its service leases.
pub const SERVICE_CALLBACK_METHOD: &str = "service_changed";
/// Most replicas whose endpoints it keeps (the matcher's most slots per
/// lease times a few leases): the map never grows past it.
const MAX_REPLICAS_KEPT: u64 = 256;

/// Init argument: the marketplace's canisters.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClientInit {
    /// The ledger to pay with.
    pub ledger: Principal,
    /// The marketplace's escrow.
    pub escrow: Principal,
    /// The marketplace's matcher.
    pub matcher: Principal,
}

/// What `job_finished` does with a delivery.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CallbackMode {
    /// Record the result (the normal case).
    #[default]
    Record,
    /// Trap, as a buggy client would; the matcher must not care.
    Trap,
}

/// A finished job as this canister learned of it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// What the matcher's callback said.
    pub notice: JobNotice,
    /// The job's stdout, as read from the matcher after the notice.
    #[serde(with = "serde_bytes")]
    pub output: Vec<u8>,
    /// Whether `output` has the length and sha256 the notice announced.
    pub output_verified: bool,
    /// Why reading the output failed, if it did.
    pub read_error: Option<String>,
    /// When the notice arrived (IC time, ns).
    pub received_at_ns: u64,
}

/// A replica's endpoint as the matcher last told it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReplicaEndpoint {
    /// The last notice about the replica.
    pub notice: ServiceNotice,
    /// Notices received about it in all.
    pub notices: u64,
    /// When the last one arrived (IC time, ns).
    pub received_at_ns: u64,
}

type Memory = VirtualMemory<DefaultMemoryImpl>;
const CONFIG: MemoryId = MemoryId::new(0);
// Memory 1 held deliveries of whole jobs, before callbacks carried notices;
// it is left unused.
const MODE: MemoryId = MemoryId::new(2);
const DELIVERIES: MemoryId = MemoryId::new(3);
const ENDPOINTS: MemoryId = MemoryId::new(4);
/// Most deliveries returned by one `deliveries` call.
const MAX_PAGE: usize = 100;
/// Most output bytes in one `deliveries` reply (a page ends before the
/// delivery that would pass it, unless that delivery is the first), so the
/// reply stays under the IC's 2 MiB limit.
const MAX_PAGE_OUTPUT_BYTES: usize = 1024 * 1024;

struct State {
    config: Cell<Cbor<Option<ClientInit>>, Memory>,
    deliveries: StableBTreeMap<u64, Cbor<Delivery>, Memory>,
    mode: Cell<Cbor<CallbackMode>, Memory>,
    /// Keyed by service id and slot.
    endpoints: StableBTreeMap<(u64, u32), Cbor<ReplicaEndpoint>, Memory>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new({
        let mm = MemoryManager::init(DefaultMemoryImpl::default());
        State {
            config: Cell::init(mm.get(CONFIG), Cbor(None)),
            deliveries: StableBTreeMap::init(mm.get(DELIVERIES)),
            mode: Cell::init(mm.get(MODE), Cbor(CallbackMode::Record)),
            endpoints: StableBTreeMap::init(mm.get(ENDPOINTS)),
        }
    });
}

fn config() -> Result<ClientInit, String> {
    STATE
        .with_borrow(|s| s.config.get().0.clone())
        .ok_or_else(|| "not configured".into())
}

fn require_controller() -> Result<(), String> {
    if ic_cdk::api::is_controller(&ic_cdk::api::msg_caller()) {
        Ok(())
    } else {
        Err("only a controller may do this".into())
    }
}

#[ic_cdk::init]
fn init(arg: ClientInit) {
    STATE.with_borrow_mut(|s| s.config.set(Cbor(Some(arg))));
}

#[ic_cdk::post_upgrade]
fn post_upgrade(arg: Option<ClientInit>) {
    if let Some(arg) = arg {
        STATE.with_borrow_mut(|s| s.config.set(Cbor(Some(arg))));
    }
}

/// Controllers only: approves the escrow for `amount` plus the ledger fee
/// and deposits `amount` from this canister's ledger account into its
/// escrow balance. Returns the amount credited.
#[ic_cdk::update]
async fn fund(amount: Nat) -> Result<Nat, String> {
    require_controller()?;
    let c = config()?;
    let amount = u128::try_from(&amount.0).map_err(|_| "amount too large".to_string())?;
    let fee: Nat = call(c.ledger, "icrc1_fee", &())
        .await
        .map_err(|e| format!("ledger: {e:?}"))?;
    let fee = u128::try_from(&fee.0).map_err(|_| "fee too large".to_string())?;
    let allowance = amount.checked_add(fee).ok_or("amount too large")?;
    let approve = ApproveArgs {
        from_subaccount: None,
        spender: Account {
            owner: c.escrow,
            subaccount: None,
        },
        amount: Nat::from(allowance),
        expected_allowance: None,
        expires_at: None,
        fee: None,
        memo: None,
        created_at_time: None,
    };
    let approved: Result<Nat, ApproveError> = call(c.ledger, "icrc2_approve", &(approve,))
        .await
        .map_err(|e| format!("ledger: {e:?}"))?;
    approved.map_err(|e| format!("approve refused: {e:?}"))?;
    let args = DepositArgs {
        ledger: c.ledger,
        amount,
        from_subaccount: None,
    };
    EscrowClient(c.escrow)
        .deposit(&args)
        .await
        .map_err(|e| format!("escrow: {e:?}"))?
        .map(Nat::from)
        .map_err(|e| format!("deposit refused: {e:?}"))
}

/// Controllers only: submits a job paid from this canister's escrow
/// balance, asking for the result to be delivered to `job_finished`.
#[ic_cdk::update]
async fn submit(spec: JobSpec) -> Result<JobId, String> {
    require_controller()?;
    let mut spec = spec;
    let c = config()?;
    spec.callback = Some(CALLBACK_METHOD.into());
    MatcherClient(c.matcher)
        .submit_job(&spec)
        .await
        .map_err(|e| format!("matcher: {e:?}"))?
        .map_err(|e| format!("submit refused: {e:?}"))
}

/// Controllers only: submits a job to run in a reservation's slots, as a
/// delegate of the reservation's owner (a DAO naming its app canister, say):
/// it costs this canister nothing; the result is delivered to `job_finished`.
#[ic_cdk::update]
async fn submit_reserved(reservation: u64, spec: JobSpec) -> Result<JobId, String> {
    require_controller()?;
    let mut spec = spec;
    let c = config()?;
    spec.callback = Some(CALLBACK_METHOD.into());
    MatcherClient(c.matcher)
        .submit_reserved_job(&ReservedJobArgs { reservation, spec })
        .await
        .map_err(|e| format!("matcher: {e:?}"))?
        .map_err(|e| format!("submit refused: {e:?}"))
}

/// The matcher's notice that a job finished. Only the matcher may call it.
///
/// The notice is recorded before the first call out, so it is kept even if
/// reading the output fails; the output is then read in chunks with the
/// matcher's `job_output` and checked against the notice's length and hash.
#[ic_cdk::update]
async fn job_finished(notice: JobNotice) {
    let matcher = config().map(|c| c.matcher).ok();
    let Some(matcher) = matcher.filter(|m| *m == ic_cdk::api::msg_caller()) else {
        ic_cdk::trap("job_finished: only the matcher may deliver results");
    };
    if STATE.with_borrow(|s| s.mode.get().0) == CallbackMode::Trap {
        ic_cdk::trap("job_finished: this client is set to fail its callbacks");
    }
    let job_id = notice.job_id;
    let mut delivery = Delivery {
        notice,
        output: vec![],
        output_verified: false,
        read_error: None,
        received_at_ns: ic_cdk::api::time(),
    };
    STATE.with_borrow_mut(|s| s.deliveries.insert(job_id, Cbor(delivery.clone())));
    if delivery.notice.output_len == 0 {
        delivery.output_verified = delivery.notice.output_sha256.is_none()
            || delivery.notice.output_sha256 == Some(sha2::Sha256::digest([]).into());
    } else {
        match read_output(matcher, job_id).await {
            Ok(output) => {
                let sha: [u8; 32] = sha2::Sha256::digest(&output).into();
                delivery.output_verified = output.len() as u64 == delivery.notice.output_len
                    && delivery.notice.output_sha256 == Some(sha);
                delivery.output = output;
            }
            Err(e) => delivery.read_error = Some(e),
        }
    }
    STATE.with_borrow_mut(|s| s.deliveries.insert(job_id, Cbor(delivery)));
}

/// Controllers only: leases the service `spec` names, paid from this
/// canister's escrow balance, asking the matcher to tell
/// `service_changed` of every endpoint change.
#[ic_cdk::update]
async fn lease_service(spec: ReservationSpec) -> Result<ReservationId, String> {
    require_controller()?;
    let mut spec = spec;
    let c = config()?;
    let Some(service) = spec.service.as_mut() else {
        return Err("the reservation names no service".into());
    };
    service.callback = Some(SERVICE_CALLBACK_METHOD.into());
    MatcherClient(c.matcher)
        .reserve(&spec)
        .await
        .map_err(|e| format!("matcher: {e:?}"))?
        .map_err(|e| format!("lease refused: {e:?}"))
}

/// Controllers only: cancels one of this canister's service leases; the
/// intervals already paid stay paid, the rest of the lock returns to its
/// escrow balance.
#[ic_cdk::update]
async fn cancel_lease(reservation: ReservationId) -> Result<(), String> {
    require_controller()?;
    let c = config()?;
    let r: Result<(), MatcherError> = call(
        c.matcher,
        "cancel_reservation",
        &(CancelReservationArgs { reservation },),
    )
    .await
    .map_err(|e| format!("matcher: {e:?}"))?;
    r.map_err(|e| format!("cancel refused: {e:?}"))
}

/// The matcher's notice that a replica of one of this canister's services
/// got a new endpoint or lost its provider. Only the matcher may call it.
#[ic_cdk::update]
fn service_changed(notice: ServiceNotice) {
    let matcher = config().map(|c| c.matcher).ok();
    if matcher != Some(ic_cdk::api::msg_caller()) {
        ic_cdk::trap("service_changed: only the matcher may call it");
    }
    let key = (notice.service, notice.slot);
    STATE.with_borrow_mut(|s| {
        let notices = s.endpoints.get(&key).map_or(0, |e| e.0.notices);
        if notices == 0 && s.endpoints.len() >= MAX_REPLICAS_KEPT {
            // Full: forget the oldest service's first replica.
            if let Some(first) = s.endpoints.first_key_value().map(|(k, _)| k) {
                s.endpoints.remove(&first);
            }
        }
        s.endpoints.insert(
            key,
            Cbor(ReplicaEndpoint {
                notice,
                notices: notices + 1,
                received_at_ns: ic_cdk::api::time(),
            }),
        );
    });
}

/// What the matcher last told of each replica of service `service`, in
/// slot order.
#[ic_cdk::query]
fn service_endpoints(service: ReservationId) -> Vec<ReplicaEndpoint> {
    STATE.with_borrow(|s| {
        s.endpoints
            .range((service, 0)..=(service, u32::MAX))
            .map(|e| e.value().0)
            .collect()
    })
}

/// Reads a job's whole output from the matcher, a chunk at a time.
async fn read_output(matcher: Principal, job_id: JobId) -> Result<Vec<u8>, String> {
    let mut output = Vec::new();
    loop {
        let offset = output.len() as u64;
        let chunk: Result<OutputChunk, MatcherError> =
            call(matcher, "job_output", &(job_id, offset))
                .await
                .map_err(|e| format!("matcher: {e:?}"))?;
        let chunk = chunk.map_err(|e| format!("job_output refused: {e:?}"))?;
        if chunk.bytes.is_empty() || output.len() + chunk.bytes.len() > MAX_OUTPUT_BYTES {
            return Err(format!(
                "job_output gave {} bytes at offset {offset} of {}",
                chunk.bytes.len(),
                chunk.total_len
            ));
        }
        output.extend_from_slice(&chunk.bytes);
        if output.len() as u64 >= chunk.total_len {
            return Ok(output);
        }
    }
}

/// Controllers only: sets what `job_finished` does.
#[ic_cdk::update]
fn set_callback_mode(mode: CallbackMode) -> Result<(), String> {
    require_controller()?;
    STATE.with_borrow_mut(|s| s.mode.set(Cbor(mode)));
    Ok(())
}

/// Delivered results in job id order, from `page.start` on; a page holds
/// at most 1 MiB of output (and always at least one delivery).
#[ic_cdk::query]
fn deliveries(page: PageRequest) -> Vec<Delivery> {
    let limit = page.effective_limit().min(MAX_PAGE);
    STATE.with_borrow(|s| {
        let mut page_bytes = 0usize;
        let mut out: Vec<Delivery> = Vec::new();
        for e in s.deliveries.range(page.start.unwrap_or(0)..).take(limit) {
            let d = e.value().0;
            page_bytes = page_bytes.saturating_add(d.output.len());
            if !out.is_empty() && page_bytes > MAX_PAGE_OUTPUT_BYTES {
                break;
            }
            out.push(d);
        }
        out
    })
}

/// The canister's configuration.
#[ic_cdk::query]
fn get_config() -> Option<ClientInit> {
    STATE.with_borrow(|s| s.config.get().0.clone())
}

candid::export_service!();

/// The Candid interface generated from the entry points above, compared in
/// tests with the checked-in `example-client.did`.
pub fn candid_interface() -> String {
    __export_service()
}
