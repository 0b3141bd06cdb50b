//! Side effects of the matcher's logic: the clock and its own id (the shared
//! [`SystemApi`]), its timer, and its calls to the escrow, the registry,
//! buyers' callbacks, the management canister (randomness, probes, vetKD) and the
//! rate sources (the cycles minting and exchange rate canisters), and the
//! moves of old event-log blocks to its archive (the shared
//! [`ArchiveCalls`]).
//!
//! Only [`crate::perform`] uses the calls. The deployed canister passes
//! [`IcRuntime`], which makes them with `market_api::client`'s typed
//! clients (bounded-wait); native tests pass a fake that answers, refuses,
//! rejects or loses the answer.

use candid::Nat;
use candid::Principal;
use ic_management_canister_types::{
    VetKDDeriveKeyArgs, VetKDDeriveKeyResult, VetKDPublicKeyArgs, VetKDPublicKeyResult,
};
use icrc_ledger_types::icrc1::account::Account as IcrcAccount;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use market_api::Tokens;
use market_api::client::{CallError, EscrowClient, RegistryClient};
use market_api::escrow::WithdrawArgs;
use market_api::escrow::{
    Balance, EscrowError, ExtendLockArgs, ForfeitArgs, JobLock, LedgerInfo, LockArgs,
    NotifyDepositArgs, ReleaseArgs, SettleArgs, WithdrawForArgs,
};
use market_api::matcher::{JobNotice, ServiceNotice};
use market_api::outcall::{HttpRequestArgs, HttpRequestResult};
use market_api::prices::cmc::{IcpXdrConversionRateResponse, NotifyTopUpArg, NotifyTopUpResult};
use market_api::prices::xrc::{GetExchangeRateRequest, GetExchangeRateResult};
use market_api::registry::{
    BondArgs, Eligibility, Provider, RecordArgs, RegistryError, SlashArgs, SlashOutcome,
};

pub use canister_common::archiving::ArchiveCalls;
pub use canister_common::runtime::{IcRuntime, SystemApi};

/// An answer of the escrow or the registry: the outer error says the call
/// failed (and whether its outcome is unknown), the inner one that the
/// callee refused.
pub type Answer<T, E> = Result<Result<T, E>, CallError>;

/// What the matcher's logic needs from the outside world.
///
/// Canisters run one message at a time, so the futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Runtime: SystemApi + ArchiveCalls {
    /// Arms the timer for the earliest deadline or outbox step (a step
    /// recorded before a call must be retried even if the call's callback
    /// is lost).
    fn schedule(&self);
    /// Arms a run of the watchdog soon (see `timers::start_watchdog`): a
    /// step may have paid the market, so its top-up reads the balance.
    fn watchdog_soon(&self);
    /// Writes a line to the canister's log.
    fn log(&self, line: &str);

    /// Escrow `lock`.
    async fn lock(&self, escrow: Principal, args: &LockArgs) -> Answer<JobLock, EscrowError>;
    /// Escrow `extend_lock`.
    async fn extend_lock(
        &self,
        escrow: Principal,
        args: &ExtendLockArgs,
    ) -> Answer<JobLock, EscrowError>;
    /// Escrow `release`.
    async fn release(&self, escrow: Principal, args: &ReleaseArgs) -> Answer<JobLock, EscrowError>;
    /// Escrow `forfeit`.
    async fn forfeit(&self, escrow: Principal, args: &ForfeitArgs) -> Answer<JobLock, EscrowError>;
    /// Escrow `settle`.
    async fn settle(&self, escrow: Principal, args: &SettleArgs) -> Answer<JobLock, EscrowError>;
    /// Escrow `notify_deposit`.
    async fn notify_deposit(
        &self,
        escrow: Principal,
        args: &NotifyDepositArgs,
    ) -> Answer<Tokens, EscrowError>;
    /// Escrow `withdraw_for`.
    async fn withdraw_for(
        &self,
        escrow: Principal,
        args: &WithdrawForArgs,
    ) -> Answer<Tokens, EscrowError>;
    /// Escrow `withdraw` of the matcher's own balance.
    async fn withdraw(&self, escrow: Principal, args: &WithdrawArgs) -> Answer<u128, EscrowError>;
    /// Escrow `balances_of`.
    async fn balances_of(
        &self,
        escrow: Principal,
        owner: Principal,
    ) -> Result<Vec<Balance>, CallError>;
    /// Escrow `balance_of`.
    async fn balance_of(
        &self,
        escrow: Principal,
        owner: Principal,
        ledger: Principal,
    ) -> Result<Balance, CallError>;
    /// Escrow `ledgers`.
    async fn ledgers(&self, escrow: Principal) -> Result<Vec<LedgerInfo>, CallError>;

    /// `icrc1_balance_of` of `account` on `ledger`.
    async fn icrc1_balance(
        &self,
        ledger: Principal,
        account: &IcrcAccount,
    ) -> Result<Tokens, CallError>;
    /// `icrc1_transfer` on `ledger` from the matcher's own account.
    async fn icrc1_transfer(
        &self,
        ledger: Principal,
        arg: &TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallError>;
    /// The cycles minting canister's `notify_top_up`.
    async fn notify_top_up(
        &self,
        cmc: Principal,
        arg: &NotifyTopUpArg,
    ) -> Result<NotifyTopUpResult, CallError>;

    /// Registry `get_provider`.
    async fn get_provider(
        &self,
        registry: Principal,
        provider: Principal,
    ) -> Result<Option<Provider>, CallError>;
    /// Registry `eligibility`.
    async fn eligibility(
        &self,
        registry: Principal,
        provider: Principal,
    ) -> Result<Eligibility, CallError>;
    /// Registry `bond`.
    async fn bond(&self, registry: Principal, args: &BondArgs) -> Answer<(), RegistryError>;
    /// Registry `unbond`.
    async fn unbond(&self, registry: Principal, key: &str) -> Answer<Tokens, RegistryError>;
    /// Registry `record`.
    async fn record(&self, registry: Principal, args: &RecordArgs) -> Answer<(), RegistryError>;
    /// Registry `slash`.
    async fn slash(
        &self,
        registry: Principal,
        args: &SlashArgs,
    ) -> Answer<SlashOutcome, RegistryError>;

    /// 32 random bytes (management canister `raw_rand`).
    async fn raw_rand(&self) -> Result<Vec<u8>, CallError>;

    /// Tells a buyer's callback `method` that its job finished; the reply
    /// does not matter.
    async fn deliver_notice(
        &self,
        buyer: Principal,
        method: &str,
        notice: &JobNotice,
    ) -> Result<(), CallError>;

    /// Tells a service owner's callback `method` of a replica's endpoint
    /// change; the reply does not matter.
    async fn deliver_service_notice(
        &self,
        owner: Principal,
        method: &str,
        notice: &ServiceNotice,
    ) -> Result<(), CallError>;

    /// An HTTPS outcall (management canister `http_request`) with `cycles`
    /// attached.
    async fn http_request(
        &self,
        args: &HttpRequestArgs,
        cycles: u128,
    ) -> Result<HttpRequestResult, CallError>;

    /// The cycles minting canister's ICP/XDR rate.
    async fn icp_xdr_rate(&self, cmc: Principal)
    -> Result<IcpXdrConversionRateResponse, CallError>;

    /// The exchange rate canister's rate for `request`.
    async fn exchange_rate(
        &self,
        xrc: Principal,
        request: &GetExchangeRateRequest,
    ) -> Result<GetExchangeRateResult, CallError>;
    /// Management canister `vetkd_public_key`.
    async fn vetkd_public_key(
        &self,
        args: &VetKDPublicKeyArgs,
    ) -> Result<VetKDPublicKeyResult, CallError>;
    /// Management canister `vetkd_derive_key` with `cycles` attached.
    async fn vetkd_derive_key(
        &self,
        args: &VetKDDeriveKeyArgs,
        cycles: u128,
    ) -> Result<VetKDDeriveKeyResult, CallError>;
}

/// The deployed canister's runtime: ic-cdk's timers, and bounded-wait calls
/// through the typed clients.
impl Runtime for IcRuntime {
    fn schedule(&self) {
        crate::timers::schedule();
    }

    fn watchdog_soon(&self) {
        crate::timers::watchdog_soon();
    }

    fn log(&self, line: &str) {
        ic_cdk::api::debug_print(line);
    }

    async fn lock(&self, escrow: Principal, args: &LockArgs) -> Answer<JobLock, EscrowError> {
        EscrowClient(escrow).lock(args).await
    }

    async fn extend_lock(
        &self,
        escrow: Principal,
        args: &ExtendLockArgs,
    ) -> Answer<JobLock, EscrowError> {
        EscrowClient(escrow).extend_lock(args).await
    }

    async fn release(&self, escrow: Principal, args: &ReleaseArgs) -> Answer<JobLock, EscrowError> {
        EscrowClient(escrow).release(args).await
    }

    async fn forfeit(&self, escrow: Principal, args: &ForfeitArgs) -> Answer<JobLock, EscrowError> {
        EscrowClient(escrow).forfeit(args).await
    }

    async fn settle(&self, escrow: Principal, args: &SettleArgs) -> Answer<JobLock, EscrowError> {
        EscrowClient(escrow).settle(args).await
    }

    async fn notify_deposit(
        &self,
        escrow: Principal,
        args: &NotifyDepositArgs,
    ) -> Answer<Tokens, EscrowError> {
        EscrowClient(escrow).notify_deposit(args).await
    }

    async fn withdraw_for(
        &self,
        escrow: Principal,
        args: &WithdrawForArgs,
    ) -> Answer<Tokens, EscrowError> {
        EscrowClient(escrow).withdraw_for(args).await
    }

    async fn withdraw(&self, escrow: Principal, args: &WithdrawArgs) -> Answer<u128, EscrowError> {
        EscrowClient(escrow).withdraw(args).await
    }

    async fn balances_of(
        &self,
        escrow: Principal,
        owner: Principal,
    ) -> Result<Vec<Balance>, CallError> {
        EscrowClient(escrow).balances_of(owner).await
    }

    async fn icrc1_balance(
        &self,
        ledger: Principal,
        account: &IcrcAccount,
    ) -> Result<Tokens, CallError> {
        let n = market_api::client::icrc1_balance_of(ledger, account).await?;
        Tokens::try_from(n.0).map_err(|_| CallError::BadReply {
            message: "a balance beyond u128".into(),
        })
    }

    async fn icrc1_transfer(
        &self,
        ledger: Principal,
        arg: &TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallError> {
        market_api::client::icrc1_transfer(ledger, arg).await
    }

    async fn notify_top_up(
        &self,
        cmc: Principal,
        arg: &NotifyTopUpArg,
    ) -> Result<NotifyTopUpResult, CallError> {
        market_api::client::notify_top_up(cmc, arg).await
    }

    async fn balance_of(
        &self,
        escrow: Principal,
        owner: Principal,
        ledger: Principal,
    ) -> Result<Balance, CallError> {
        EscrowClient(escrow).balance_of(owner, ledger).await
    }

    async fn ledgers(&self, escrow: Principal) -> Result<Vec<LedgerInfo>, CallError> {
        EscrowClient(escrow).ledgers().await
    }

    async fn get_provider(
        &self,
        registry: Principal,
        provider: Principal,
    ) -> Result<Option<Provider>, CallError> {
        RegistryClient(registry).get_provider(provider).await
    }

    async fn eligibility(
        &self,
        registry: Principal,
        provider: Principal,
    ) -> Result<Eligibility, CallError> {
        RegistryClient(registry).eligibility(provider).await
    }

    async fn bond(&self, registry: Principal, args: &BondArgs) -> Answer<(), RegistryError> {
        RegistryClient(registry).bond(args).await
    }

    async fn unbond(&self, registry: Principal, key: &str) -> Answer<Tokens, RegistryError> {
        RegistryClient(registry).unbond(key).await
    }

    async fn record(&self, registry: Principal, args: &RecordArgs) -> Answer<(), RegistryError> {
        RegistryClient(registry).record(args).await
    }

    async fn slash(
        &self,
        registry: Principal,
        args: &SlashArgs,
    ) -> Answer<SlashOutcome, RegistryError> {
        RegistryClient(registry).slash(args).await
    }

    async fn raw_rand(&self) -> Result<Vec<u8>, CallError> {
        market_api::client::raw_rand().await
    }

    async fn deliver_notice(
        &self,
        buyer: Principal,
        method: &str,
        notice: &JobNotice,
    ) -> Result<(), CallError> {
        market_api::client::deliver(buyer, method, notice).await
    }

    async fn deliver_service_notice(
        &self,
        owner: Principal,
        method: &str,
        notice: &ServiceNotice,
    ) -> Result<(), CallError> {
        market_api::client::deliver(owner, method, notice).await
    }

    async fn http_request(
        &self,
        args: &HttpRequestArgs,
        cycles: u128,
    ) -> Result<HttpRequestResult, CallError> {
        market_api::client::http_request(args, cycles).await
    }

    async fn icp_xdr_rate(
        &self,
        cmc: Principal,
    ) -> Result<IcpXdrConversionRateResponse, CallError> {
        market_api::client::icp_xdr_rate(cmc).await
    }

    async fn exchange_rate(
        &self,
        xrc: Principal,
        request: &GetExchangeRateRequest,
    ) -> Result<GetExchangeRateResult, CallError> {
        market_api::client::exchange_rate(xrc, request).await
    }

    async fn vetkd_public_key(
        &self,
        args: &VetKDPublicKeyArgs,
    ) -> Result<VetKDPublicKeyResult, CallError> {
        market_api::client::vetkd_public_key(args).await
    }

    async fn vetkd_derive_key(
        &self,
        args: &VetKDDeriveKeyArgs,
        cycles: u128,
    ) -> Result<VetKDDeriveKeyResult, CallError> {
        market_api::client::vetkd_derive_key(args, cycles).await
    }
}
