//! ic-cdk entry points: each reads the caller and the time, calls the logic
//! and maps its result. No rules live here.

use crate::runtime::IcRuntime;
use crate::state::{mutate_state, read_state};
use crate::{jobs, metrics, payments, timers};
use canister_common::admin;
use ic_cdk::api::{canister_self, msg_caller, time};
use market_api::escrow::{
    Balance, DepositArgs, EscrowError, EscrowEvent, EscrowInit, ExtendLockArgs, ForfeitArgs,
    JobLock, LedgerInfo, LockArgs, NotifyDepositArgs, PendingOperation, ReconcileArgs, ReleaseArgs,
    ResolveOperationArgs, SettleArgs, WithdrawArgs, WithdrawForArgs,
};
use market_api::{Account, HttpRequest, HttpResponse, PageRequest, Principal, Tokens};

#[ic_cdk::init]
fn init(arg: EscrowInit) {
    mutate_state(|s| s.apply_config(arg, time()));
    timers::start_upkeep();
    read_state(|s| s.events.certify());
}

/// O(1) work whatever the books hold (the rule is
/// `canister_common::audit`'s): the configuration is applied and checked
/// here, trapping (so rolling back) if it is broken; every record is
/// checked afterwards by the audit timer.
#[ic_cdk::post_upgrade]
fn post_upgrade(arg: Option<EscrowInit>) {
    if let Some(config) = arg {
        mutate_state(|s| s.apply_config(config, time()));
    }
    if let Err(e) = read_state(|s| s.check_config()) {
        ic_cdk::trap(format!("escrow configuration is broken after upgrade: {e}"));
    }
    timers::start_upkeep();
    read_state(|s| s.events.certify());
}

/// Whitelists an ICRC-2 ledger, or refreshes the fee and symbol of a
/// whitelisted one, reading them from the ledger. Controllers or the SNS
/// governance only.
#[ic_cdk::update]
async fn add_ledger(ledger: Principal) -> Result<LedgerInfo, EscrowError> {
    payments::add_ledger(&IcRuntime, may_administer(&msg_caller()), ledger).await
}

/// Validator of `add_ledger` for an SNS proposal: refused if the whitelist
/// is full and the ledger not on it (its ICRC-2 support is read when the
/// proposal executes).
#[ic_cdk::query]
fn validate_add_ledger(ledger: Principal) -> Result<String, String> {
    admin::validation("add_ledger", &ledger, payments::ledger_room(ledger))
}

/// Whether `caller` is a controller or the configured SNS governance.
fn may_administer(caller: &Principal) -> bool {
    admin::caller_may_administer(caller, read_state(|s| s.governance()))
}

/// Pull deposit: the escrow takes `amount` from the caller's account with
/// `icrc2_transfer_from` (approve amount + fee first) and credits the
/// caller's free balance. Returns the amount credited.
#[ic_cdk::update]
async fn deposit(args: DepositArgs) -> Result<Tokens, EscrowError> {
    payments::deposit(&IcRuntime, msg_caller(), args).await
}

/// Push deposit: credits the beneficiary with what arrived in its deposit
/// account (see `deposit_account`) since the last notify, minus the ledger
/// fee of sweeping it into the escrow's main account. Callable by anyone.
/// Returns the amount credited (0 if nothing arrived).
#[ic_cdk::update]
async fn notify_deposit(args: NotifyDepositArgs) -> Result<Tokens, EscrowError> {
    payments::notify_deposit(&IcRuntime, msg_caller(), args).await
}

/// Moves `amount` of the caller's balance (claimable first, then free) out
/// with an ICRC-1 transfer; `to` receives `amount` minus the ledger fee.
/// On a definite failure the balance is restored. Returns the block index.
#[ic_cdk::update]
async fn withdraw(args: WithdrawArgs) -> Result<Tokens, EscrowError> {
    payments::withdraw(&IcRuntime, msg_caller(), args).await
}

/// `withdraw` on behalf of `owner`, from its free balance only (never
/// claimable earnings). Matcher only (a DAO acting by proposal through the
/// matcher).
#[ic_cdk::update]
async fn withdraw_for(args: WithdrawForArgs) -> Result<Tokens, EscrowError> {
    payments::withdraw_for(&IcRuntime, msg_caller(), args).await
}

/// Retries, with identical arguments, a ledger call of (owner, ledger) whose
/// outcome was unknown; past the ledger's 24 h deduplication window, looks
/// it up in the ledger's ICRC-3 blocks instead (a bounded part of the log
/// per call: call again while it answers `PendingOperation`). Callable by
/// anyone. `true` if an operation was resolved, `false` if none was pending.
#[ic_cdk::update]
async fn reconcile(args: ReconcileArgs) -> Result<bool, EscrowError> {
    payments::reconcile(&IcRuntime, msg_caller(), args).await
}

/// Settles a pending ledger call past its deduplication window by the
/// controllers' ruling of how it ended (for a ledger that does not serve
/// ICRC-3 blocks, such as the ICP ledger); recorded as an event.
/// Controllers or the SNS governance only.
#[ic_cdk::update]
async fn resolve_operation(args: ResolveOperationArgs) -> Result<(), EscrowError> {
    let caller = msg_caller();
    payments::resolve_operation(&IcRuntime, caller, may_administer(&caller), args).await
}

/// Validator of `resolve_operation` for an SNS proposal: refused unless
/// that operation is pending.
#[ic_cdk::query]
fn validate_resolve_operation(args: ResolveOperationArgs) -> Result<String, String> {
    let pending =
        read_state(|s| s.pending(args.owner, args.ledger)).is_some_and(|p| p.id == args.operation);
    let check = if pending {
        Ok(())
    } else {
        Err("no such operation is pending")
    };
    admin::validation("resolve_operation", &args, check)
}

/// Locks a job's maximum cost from the buyer's free balance. Matcher only;
/// idempotent on `job_key`.
#[ic_cdk::update]
fn lock(args: LockArgs) -> Result<JobLock, EscrowError> {
    mutate_state(|s| jobs::lock(s, msg_caller(), args, time()))
}

/// Adds `amount` from the buyer's free balance to an unsettled lock.
/// Matcher only; extensions are numbered from 1 and applied in order;
/// idempotent on (`job_key`, `extension`).
#[ic_cdk::update]
fn extend_lock(args: ExtendLockArgs) -> Result<JobLock, EscrowError> {
    mutate_state(|s| jobs::extend_lock(s, msg_caller(), args, time()))
}

/// Pays `amount` from a job's lock to the provider's claimable balance or,
/// with `hold`, to its pending pay within the lock (claimable at settle
/// unless forfeited; at most 32 providers per lock). Matcher only;
/// idempotent on (`job_key`, `seq`).
#[ic_cdk::update]
fn release(args: ReleaseArgs) -> Result<JobLock, EscrowError> {
    mutate_state(|s| jobs::release(s, msg_caller(), args, time()))
}

/// Takes all of a provider's pending pay in an unsettled lock back into
/// the lock's remaining. Matcher only; a repeat moves nothing.
#[ic_cdk::update]
fn forfeit(args: ForfeitArgs) -> Result<JobLock, EscrowError> {
    mutate_state(|s| jobs::forfeit(s, msg_caller(), args, time()))
}

/// Pays a job's pending pay to its providers' claimable balances, returns
/// what remains of its lock to the buyer and closes it. Matcher only;
/// idempotent on `job_key`.
#[ic_cdk::update]
fn settle(args: SettleArgs) -> Result<JobLock, EscrowError> {
    mutate_state(|s| jobs::settle(s, msg_caller(), args, time()))
}

/// The escrow's configuration: the matcher and the whitelisted ledgers.
#[ic_cdk::query]
fn get_config() -> EscrowInit {
    read_state(|s| s.config())
}

/// The whitelisted ledgers with their fees and symbols.
#[ic_cdk::query]
fn ledgers() -> Vec<LedgerInfo> {
    read_state(|s| s.ledger_infos())
}

/// `owner`'s balance on `ledger` (zeros if it has none).
#[ic_cdk::query]
fn balance_of(owner: Principal, ledger: Principal) -> Balance {
    read_state(|s| s.balance(owner, ledger).view(ledger))
}

/// `owner`'s balances on every ledger where it has one.
#[ic_cdk::query]
fn balances_of(owner: Principal) -> Vec<Balance> {
    read_state(|s| s.balances_of(owner))
}

/// A job's lock: total, released, pending, remaining, refunded.
#[ic_cdk::query]
fn get_lock(job_key: String) -> Option<JobLock> {
    read_state(|s| s.lock(&job_key).map(|l| l.view(&job_key)))
}

/// The ledger account to transfer to so that `owner` is credited by
/// `notify_deposit`: the escrow's subaccount derived from `owner`.
#[ic_cdk::query]
fn deposit_account(owner: Principal) -> Account {
    match payments::deposit_account(canister_self(), owner) {
        Ok(a) => a,
        Err(e) => ic_cdk::trap(format!("{e:?}")),
    }
}

/// Ledger calls whose outcome is not booked yet, ordered by operation id,
/// from `start` (an operation id).
#[ic_cdk::query]
fn pending_operations(page: PageRequest) -> Vec<PendingOperation> {
    let mut ops = read_state(|s| s.pending_operations());
    ops.sort_by_key(|o| o.id);
    ops.into_iter()
        .filter(|o| o.id >= page.start.unwrap_or(0))
        .take(page.effective_limit())
        .collect()
}

canister_common::public_log_endpoints!(EscrowEvent);

/// `GET /metrics`: Prometheus metrics (liabilities and pending pay per
/// ledger, locks, pending ledger calls, events, cycles).
#[ic_cdk::query]
fn http_request(req: HttpRequest) -> HttpResponse {
    let cycles = canister_common::cycles::report(&IcRuntime);
    read_state(|s| metrics::http_request(s, &req, time(), &cycles))
}

candid::export_service!();

/// The Candid interface generated from the entry points above, compared in
/// tests with the checked-in `escrow.did`.
pub fn candid_interface() -> String {
    __export_service()
}
