//! ic-cdk entry points: each reads the caller and the time, calls the logic
//! and maps its result. No rules live here.

use crate::providers;
use crate::records;
use crate::runtime::IcRuntime;
use crate::staking;
use crate::state::{mutate_state, read_state};
use crate::timers;
use canister_common::admin;
use market_api::registry::{
    BondArgs, Eligibility, ListProvidersArgs, Provider, ProviderPage, ProviderProfile, RecordArgs,
    RegistryConfig, RegistryConfigUpdate, RegistryError, RegistryEvent, RegistryInit,
    ResolveTransferArgs, SlashArgs, SlashOutcome, StakeAccount, TrackRecord, Unbonding,
};
use market_api::{HttpRequest, HttpResponse, Principal, Tokens};

fn caller() -> Principal {
    ic_cdk::api::msg_caller()
}

fn now() -> u64 {
    ic_cdk::api::time()
}

#[ic_cdk::init]
fn init(arg: RegistryInit) {
    if let Err(e) = mutate_state(|s| s.init(now(), arg)) {
        ic_cdk::trap(format!("invalid init argument: {e:?}"));
    }
    timers::start_upkeep();
    read_state(|s| s.events.certify());
}

/// O(1) work whatever the registry holds (the rule is
/// `canister_common::audit`'s): the argument is applied and the
/// configuration checked here, trapping (so rolling back) if it is broken;
/// every record is checked afterwards by the audit timer. The node index
/// is built here only for a state saved before it existed (it is empty
/// then, and so is never rebuilt twice).
#[ic_cdk::post_upgrade]
fn post_upgrade(arg: Option<RegistryConfigUpdate>) {
    if let Some(update) = arg
        && let Err(e) = mutate_state(|s| s.update_config(now(), update))
    {
        ic_cdk::trap(format!("invalid upgrade argument: {e:?}"));
    }
    mutate_state(|s| s.index_nodes_if_missing());
    if let Err(e) = read_state(|s| crate::state::validate_config(&s.config())) {
        ic_cdk::trap(format!("BUG: configuration broken after upgrade: {e:?}"));
    }
    timers::start_upkeep();
    read_state(|s| s.events.certify());
}

/// Registers the caller as a provider with this profile (staking is a
/// separate step). A deregistered provider registers again this way.
#[ic_cdk::update]
fn register_provider(profile: ProviderProfile) -> Result<(), RegistryError> {
    mutate_state(|s| providers::register(s, caller(), now(), profile))
}

/// Replaces the caller's profile.
#[ic_cdk::update]
fn update_profile(profile: ProviderProfile) -> Result<(), RegistryError> {
    mutate_state(|s| providers::update_profile(s, caller(), now(), profile))
}

/// Deregisters the caller; refused while stake is bonded to work. Free
/// stake starts unbonding and is withdrawn with `withdraw_unbonded`.
#[ic_cdk::update]
fn deregister() -> Result<(), RegistryError> {
    let caller = caller();
    let _guard = staking::guard(caller)?;
    mutate_state(|s| providers::deregister(s, caller, now()))
}

/// Pulls `amount` e8s from the caller's ledger account into its stake (the
/// caller approves the registry for `amount` plus the ledger fee first).
/// Returns the ledger block.
#[ic_cdk::update]
async fn stake(amount: Tokens) -> Result<u128, RegistryError> {
    staking::stake(&IcRuntime, caller(), amount).await
}

/// Starts unbonding `amount` of the caller's free stake; returns the entry.
#[ic_cdk::update]
fn unstake(amount: Tokens) -> Result<Unbonding, RegistryError> {
    mutate_state(|s| providers::unstake(s, caller(), now(), amount))
}

/// Sends the caller's unbonded stake (period passed) back to its default
/// ledger account, minus the ledger fee. Returns the ledger block.
#[ic_cdk::update]
async fn withdraw_unbonded() -> Result<u128, RegistryError> {
    staking::withdraw_unbonded(&IcRuntime, caller()).await
}

/// Matcher only: bonds part of a provider's free stake to work; idempotent on the key.
#[ic_cdk::update]
fn bond(args: BondArgs) -> Result<(), RegistryError> {
    mutate_state(|s| providers::bond(s, caller(), now(), args))
}

/// Matcher only: frees the stake bonded under the key; returns the amount
/// freed (0 on a repeat).
#[ic_cdk::update]
fn unbond(key: String) -> Result<Tokens, RegistryError> {
    mutate_state(|s| providers::unbond(s, caller(), now(), key))
}

/// Matcher only: slashes a provider and pays the beneficiary; idempotent on the key.
#[ic_cdk::update]
async fn slash(args: SlashArgs) -> Result<SlashOutcome, RegistryError> {
    staking::slash(&IcRuntime, caller(), args).await
}

/// Matcher only: counts one thing a provider did (a job completed, an
/// audit passed or failed, a deadline missed) in its track record;
/// idempotent on the key, which is remembered for 30 days.
#[ic_cdk::update]
fn record(args: RecordArgs) -> Result<(), RegistryError> {
    mutate_state(|s| records::record(s, caller(), now(), args))
}

/// Releases the caller from jail once its stake is back at the minimum.
#[ic_cdk::update]
fn unjail() -> Result<(), RegistryError> {
    mutate_state(|s| providers::unjail(s, caller(), now()))
}

/// Settles the caller's (or, for the matcher, any provider's) ledger
/// transfer whose outcome was unknown, by resending it unchanged (past the
/// ledger's 24 h deduplication window, by reading the ledger's ICRC-3
/// blocks, a bounded part per call), then makes any slash the provider owes.
#[ic_cdk::update]
async fn settle_pending(provider: Principal) -> Result<(), RegistryError> {
    let caller = caller();
    providers::require_authenticated(&caller)?;
    if caller != provider {
        read_state(|s| providers::require_matcher(s, &caller))?;
    }
    let _guard = staking::guard(provider)?;
    staking::settle(&IcRuntime, provider).await
}

/// Controllers or the SNS governance only: settles a provider's pending ledger transfer past its
/// deduplication window by the controllers' ruling of how it ended, for a
/// ledger that does not serve ICRC-3 blocks (the ICP ledger); recorded as
/// an event.
#[ic_cdk::update]
async fn resolve_transfer(args: ResolveTransferArgs) -> Result<(), RegistryError> {
    let caller = caller();
    providers::require_authenticated(&caller)?;
    staking::resolve_transfer(&IcRuntime, caller, may_administer(&caller), args).await
}

/// Validator of `resolve_transfer` for an SNS proposal.
#[ic_cdk::query]
fn validate_resolve_transfer(args: ResolveTransferArgs) -> Result<String, String> {
    let pending = read_state(|s| s.pending(&args.provider)).filter(|p| p.op_id == args.operation);
    let check = pending
        .map(|_| ())
        .ok_or("no such transfer is pending for this provider");
    admin::validation("resolve_transfer", &args, check)
}

/// Controllers or the SNS governance only: changes the configuration.
#[ic_cdk::update]
fn update_config(update: RegistryConfigUpdate) -> Result<RegistryConfig, RegistryError> {
    let caller = caller();
    providers::require_authenticated(&caller)?;
    if !may_administer(&caller) {
        return Err(RegistryError::Unauthorized {
            reason: "only controllers or the SNS governance may change the configuration"
                .to_string(),
        });
    }
    mutate_state(|s| s.update_config(now(), update))
}

/// Validator of `update_config` for an SNS proposal: the configuration it
/// would make, checked.
#[ic_cdk::query]
fn validate_update_config(update: RegistryConfigUpdate) -> Result<String, String> {
    let check = read_state(|s| s.updated_config(update.clone())).map(|_| ());
    admin::validation("update_config", &update, check)
}

/// Whether `caller` is a controller or the configured SNS governance.
fn may_administer(caller: &Principal) -> bool {
    let governance = read_state(|s| s.config().governance);
    admin::caller_may_administer(caller, governance)
}

/// A provider's record, with its pending ledger transfer if any.
#[ic_cdk::query]
fn get_provider(provider: Principal) -> Option<Provider> {
    read_state(|s| providers::get_provider(s, &provider))
}

/// A provider's track record: jobs completed, audits passed and failed,
/// deadlines missed, slashes.
#[ic_cdk::query]
fn track_record(provider: Principal) -> Option<TrackRecord> {
    read_state(|s| records::track_record(s, &provider))
}

/// One page of providers in principal order, filtered.
#[ic_cdk::query]
fn list_providers(args: ListProvidersArgs) -> ProviderPage {
    read_state(|s| providers::list_providers(s, &args))
}

/// Whether a provider may take on new work, and its free stake.
#[ic_cdk::query]
fn eligibility(provider: Principal) -> Eligibility {
    read_state(|s| providers::eligibility(s, &provider))
}

/// The ledger account holding a provider's stake.
#[ic_cdk::query]
fn stake_account(provider: Principal) -> StakeAccount {
    providers::stake_account(ic_cdk::api::canister_self(), &provider)
}

/// The registry's configuration.
#[ic_cdk::query]
fn get_config() -> RegistryConfig {
    read_state(|s| s.config())
}

canister_common::public_log_endpoints!(RegistryEvent);

/// `/metrics` in the Prometheus text format.
#[ic_cdk::query]
fn http_request(req: HttpRequest) -> HttpResponse {
    let cycles = canister_common::cycles::report(&IcRuntime);
    read_state(|s| crate::metrics::http_request(s, &req, now(), &cycles))
}

candid::export_service!();

/// The Candid interface generated from the entry points above, compared in
/// tests with the checked-in `registry.did`.
pub fn candid_interface() -> String {
    __export_service()
}
