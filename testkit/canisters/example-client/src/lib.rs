//! An example client canister of the marketplace, written the way a dapp
//! team would: it funds its escrow balance from its own ICP, submits jobs
//! with a callback, and records each result the matcher delivers.
//!
//! Its controllers drive it (`fund`, `submit`); only the matcher may call
//! `job_finished`. The demo and the matcher's devnet tests use it, the
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
use market_api::matcher::{Job, JobSpec, JobStatus, ReservedJobArgs, RunOutcome};
use market_api::{JobId, PageRequest};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// The callback method this canister names in its jobs.
pub const CALLBACK_METHOD: &str = "job_finished";

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

/// A finished job as delivered to this canister.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The job.
    pub job_id: JobId,
    /// Its final status.
    pub status: JobStatus,
    /// How the run ended, if it ran.
    pub outcome: Option<RunOutcome>,
    /// The job's stdout.
    #[serde(with = "serde_bytes")]
    pub output: Vec<u8>,
    /// When the callback arrived (IC time, ns).
    pub received_at_ns: u64,
}

type Memory = VirtualMemory<DefaultMemoryImpl>;
const CONFIG: MemoryId = MemoryId::new(0);
const DELIVERIES: MemoryId = MemoryId::new(1);
const MODE: MemoryId = MemoryId::new(2);
/// Most deliveries returned by one `deliveries` call.
const MAX_PAGE: usize = 100;

struct State {
    config: Cell<Cbor<Option<ClientInit>>, Memory>,
    deliveries: StableBTreeMap<u64, Cbor<Delivery>, Memory>,
    mode: Cell<Cbor<CallbackMode>, Memory>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new({
        let mm = MemoryManager::init(DefaultMemoryImpl::default());
        State {
            config: Cell::init(mm.get(CONFIG), Cbor(None)),
            deliveries: StableBTreeMap::init(mm.get(DELIVERIES)),
            mode: Cell::init(mm.get(MODE), Cbor(CallbackMode::Record)),
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

/// The matcher's delivery of a finished job. Only the matcher may call it.
#[ic_cdk::update]
fn job_finished(job: Job) {
    let matcher = config().map(|c| c.matcher).ok();
    if matcher != Some(ic_cdk::api::msg_caller()) {
        ic_cdk::trap("job_finished: only the matcher may deliver results");
    }
    if STATE.with_borrow(|s| s.mode.get().0) == CallbackMode::Trap {
        ic_cdk::trap("job_finished: this client is set to fail its callbacks");
    }
    let (outcome, output) = match job.result {
        Some(r) => (Some(r.outcome), r.output),
        None => (None, vec![]),
    };
    let delivery = Delivery {
        job_id: job.id,
        status: job.status,
        outcome,
        output,
        received_at_ns: ic_cdk::api::time(),
    };
    STATE.with_borrow_mut(|s| s.deliveries.insert(job.id, Cbor(delivery)));
}

/// Controllers only: sets what `job_finished` does.
#[ic_cdk::update]
fn set_callback_mode(mode: CallbackMode) -> Result<(), String> {
    require_controller()?;
    STATE.with_borrow_mut(|s| s.mode.set(Cbor(mode)));
    Ok(())
}

/// Delivered results in job id order, from `page.start` on.
#[ic_cdk::query]
fn deliveries(page: PageRequest) -> Vec<Delivery> {
    let limit = page.effective_limit().min(MAX_PAGE);
    STATE.with_borrow(|s| {
        s.deliveries
            .range(page.start.unwrap_or(0)..)
            .take(limit)
            .map(|e| e.value().0)
            .collect()
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
