//! The typed client: one method per canister call the node and buyers make.
//!
//! [`MarketClient`] encodes arguments with Candid, calls through any
//! [`Transport`], decodes the answer and turns every failure into a
//! [`ClientError`] whose message says what to do about it.

mod error;
pub mod prices;
pub mod time;
pub mod tokens;

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Principal};
use icrc_ledger_types::icrc1::transfer::TransferArg;
use icrc_ledger_types::icrc2::approve::ApproveArgs;
use market_api::escrow::{Balance, DepositArgs, NotifyDepositArgs, WithdrawArgs};
use market_api::matcher::{
    Assignment, AssignmentPage, CancelReservationArgs, ExtendReservationArgs, HeartbeatAck,
    HeartbeatItem, Job, JobChunk, JobChunkRequest, JobSpec, JobView, MAX_ASSIGNMENTS_PAGE,
    MatcherError, MatcherInit, ModuleInfo, ModuleUpload, Offer, OfferSpec, Reservation,
    ReservationId, ReservationSpec, ReservedJobArgs, ServiceView, SetDelegatesArgs, Sha256,
    SubmitResultArgs,
};
use market_api::prices::RatesView;
use market_api::registry::{
    Eligibility, ListProvidersArgs, Provider, ProviderPage, ProviderProfile, RegistryConfig,
    StakeAccount, TrackRecord, Unbonding,
};
use market_api::{Account, JobId, OfferId, PageRequest, Tokens};
use serde::de::DeserializeOwned;

pub use error::{
    ClientError, describe_approve, describe_escrow, describe_matcher, describe_registry,
    describe_transfer,
};

use crate::transport::{Call, Transport};

/// The marketplace's canisters on one network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanisterIds {
    /// The ICP (or test) ledger stakes and payments are in.
    pub ledger: Principal,
    /// The registry canister.
    pub registry: Principal,
    /// The escrow canister.
    pub escrow: Principal,
    /// The matcher canister.
    pub matcher: Principal,
}

/// Which canister a call goes to (for routing and for error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Ledger,
    Registry,
    Escrow,
    Matcher,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Ledger => "ledger",
            Target::Registry => "registry",
            Target::Escrow => "escrow",
            Target::Matcher => "matcher",
        }
    }
}

/// Typed calls to the marketplace's canisters through a [`Transport`].
#[derive(Clone)]
pub struct MarketClient<T> {
    transport: T,
    ids: CanisterIds,
}

impl<T: Transport> MarketClient<T> {
    /// A client for the canisters `ids`, calling through `transport`.
    pub fn new(transport: T, ids: CanisterIds) -> Self {
        Self { transport, ids }
    }

    /// The canisters called.
    pub fn ids(&self) -> &CanisterIds {
        &self.ids
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The principal calls are made as.
    pub fn sender(&self) -> Principal {
        self.transport.sender()
    }

    /// The IC's current time in nanoseconds.
    pub async fn time_ns(&self) -> Result<u64, ClientError> {
        self.transport
            .time_ns()
            .await
            .map_err(|source| ClientError::Call {
                canister: "ic",
                method: "read_state /time".into(),
                source,
            })
    }

    fn id(&self, target: Target) -> Principal {
        match target {
            Target::Ledger => self.ids.ledger,
            Target::Registry => self.ids.registry,
            Target::Escrow => self.ids.escrow,
            Target::Matcher => self.ids.matcher,
        }
    }

    async fn call<A, R>(
        &self,
        target: Target,
        method: &str,
        args: A,
        update: bool,
    ) -> Result<R, ClientError>
    where
        A: ArgumentEncoder,
        R: for<'a> ArgumentDecoder<'a>,
    {
        let candid_err = |e: candid::Error| ClientError::Candid {
            canister: target.name(),
            method: method.to_string(),
            message: e.to_string(),
        };
        let arg = candid::encode_args(args).map_err(candid_err)?;
        let call = Call {
            canister: self.id(target),
            method,
            arg,
        };
        let reply = if update {
            self.transport.update(call).await
        } else {
            self.transport.query(call).await
        }
        .map_err(|source| ClientError::Call {
            canister: target.name(),
            method: method.to_string(),
            source,
        })?;
        candid::decode_args(&reply).map_err(candid_err)
    }

    async fn update1<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &self,
        target: Target,
        method: &str,
        args: A,
    ) -> Result<R, ClientError> {
        let (r,): (R,) = self.call(target, method, args, true).await?;
        Ok(r)
    }

    async fn query1<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &self,
        target: Target,
        method: &str,
        args: A,
    ) -> Result<R, ClientError> {
        let (r,): (R,) = self.call(target, method, args, false).await?;
        Ok(r)
    }

    /// An update whose reply is `Result<R, E>`; `E` becomes a
    /// [`ClientError`] through `refused`.
    async fn update_or<A, R, E>(
        &self,
        target: Target,
        method: &str,
        args: A,
        refused: fn(E) -> ClientError,
    ) -> Result<R, ClientError>
    where
        A: ArgumentEncoder,
        R: CandidType + DeserializeOwned,
        E: CandidType + DeserializeOwned,
    {
        self.update1::<_, Result<R, E>>(target, method, args)
            .await?
            .map_err(refused)
    }

    /// An update of the registry whose reply is `Result<R, RegistryError>`.
    async fn registry_update<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &self,
        method: &str,
        args: A,
    ) -> Result<R, ClientError> {
        self.update_or(Target::Registry, method, args, ClientError::Registry)
            .await
    }

    /// An update of the escrow whose reply is `Result<R, EscrowError>`.
    async fn escrow_update<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &self,
        method: &str,
        args: A,
    ) -> Result<R, ClientError> {
        self.update_or(Target::Escrow, method, args, ClientError::Escrow)
            .await
    }

    /// An update of the matcher whose reply is `Result<R, MatcherError>`.
    async fn matcher_update<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &self,
        method: &str,
        args: A,
    ) -> Result<R, ClientError> {
        self.update_or(Target::Matcher, method, args, ClientError::Matcher)
            .await
    }

    // --- ledger -----------------------------------------------------------

    /// `icrc1_balance_of`.
    pub async fn balance_of(&self, account: Account) -> Result<Tokens, ClientError> {
        self.query1(Target::Ledger, "icrc1_balance_of", (account,))
            .await
    }

    /// `icrc1_fee`.
    pub async fn ledger_fee(&self) -> Result<Tokens, ClientError> {
        self.query1(Target::Ledger, "icrc1_fee", ()).await
    }

    /// `icrc1_transfer`; returns the block index.
    pub async fn transfer(&self, arg: TransferArg) -> Result<Tokens, ClientError> {
        self.update_or(
            Target::Ledger,
            "icrc1_transfer",
            (arg,),
            ClientError::Transfer,
        )
        .await
    }

    /// `icrc2_approve`; returns the block index.
    pub async fn approve(&self, arg: ApproveArgs) -> Result<Tokens, ClientError> {
        self.update_or(
            Target::Ledger,
            "icrc2_approve",
            (arg,),
            ClientError::Approve,
        )
        .await
    }

    /// `icrc2_approve` of `amount` for `spender` to pull from the caller's
    /// default account (the approve before a `deposit` or a `stake`);
    /// returns the block index.
    pub async fn approve_for(
        &self,
        spender: Principal,
        amount: Tokens,
    ) -> Result<Tokens, ClientError> {
        self.approve(ApproveArgs {
            from_subaccount: None,
            spender: Account::from(spender),
            amount: candid::Nat::from(amount),
            expected_allowance: None,
            expires_at: None,
            fee: None,
            memo: None,
            created_at_time: None,
        })
        .await
    }

    // --- registry ---------------------------------------------------------

    /// `register_provider`.
    pub async fn register_provider(&self, profile: ProviderProfile) -> Result<(), ClientError> {
        self.registry_update("register_provider", (profile,)).await
    }

    /// `update_profile`.
    pub async fn update_profile(&self, profile: ProviderProfile) -> Result<(), ClientError> {
        self.registry_update("update_profile", (profile,)).await
    }

    /// `get_provider`.
    pub async fn get_provider(&self, provider: Principal) -> Result<Option<Provider>, ClientError> {
        self.query1(Target::Registry, "get_provider", (provider,))
            .await
    }

    /// `list_providers`: one page of providers in principal order.
    pub async fn list_providers(
        &self,
        args: ListProvidersArgs,
    ) -> Result<ProviderPage, ClientError> {
        self.query1(Target::Registry, "list_providers", (args,))
            .await
    }

    /// `track_record`: a provider's jobs, audits, missed deadlines and
    /// slashes, if registered.
    pub async fn track_record(
        &self,
        provider: Principal,
    ) -> Result<Option<TrackRecord>, ClientError> {
        self.query1(Target::Registry, "track_record", (provider,))
            .await
    }

    /// `eligibility`.
    pub async fn eligibility(&self, provider: Principal) -> Result<Eligibility, ClientError> {
        self.query1(Target::Registry, "eligibility", (provider,))
            .await
    }

    /// `get_config` of the registry.
    pub async fn registry_config(&self) -> Result<RegistryConfig, ClientError> {
        self.query1(Target::Registry, "get_config", ()).await
    }

    /// `stake_account`.
    pub async fn stake_account(&self, provider: Principal) -> Result<StakeAccount, ClientError> {
        self.query1(Target::Registry, "stake_account", (provider,))
            .await
    }

    /// `stake`: pulls `amount` into the caller's stake (approve `amount` +
    /// fee for the registry first); returns the ledger block.
    pub async fn stake(&self, amount: Tokens) -> Result<Tokens, ClientError> {
        self.registry_update("stake", (amount,)).await
    }

    /// `unstake`: starts unbonding `amount` of free stake.
    pub async fn unstake(&self, amount: Tokens) -> Result<Unbonding, ClientError> {
        self.registry_update("unstake", (amount,)).await
    }

    /// `withdraw_unbonded`; returns the ledger block.
    pub async fn withdraw_unbonded(&self) -> Result<Tokens, ClientError> {
        self.registry_update("withdraw_unbonded", ()).await
    }

    /// `unjail`.
    pub async fn unjail(&self) -> Result<(), ClientError> {
        self.registry_update("unjail", ()).await
    }

    // --- escrow -----------------------------------------------------------

    /// `deposit` (pull: approve the escrow for amount + fee first);
    /// returns the amount credited.
    pub async fn deposit(&self, args: DepositArgs) -> Result<Tokens, ClientError> {
        self.escrow_update("deposit", (args,)).await
    }

    /// `notify_deposit` (push); returns the amount credited.
    pub async fn notify_deposit(&self, args: NotifyDepositArgs) -> Result<Tokens, ClientError> {
        self.escrow_update("notify_deposit", (args,)).await
    }

    /// `deposit_account`: where to transfer so that `owner` is credited.
    pub async fn deposit_account(&self, owner: Principal) -> Result<Account, ClientError> {
        self.query1(Target::Escrow, "deposit_account", (owner,))
            .await
    }

    /// `balances_of`.
    pub async fn balances_of(&self, owner: Principal) -> Result<Vec<Balance>, ClientError> {
        self.query1(Target::Escrow, "balances_of", (owner,)).await
    }

    /// `balance_of` on the configured ledger.
    pub async fn escrow_balance(&self, owner: Principal) -> Result<Balance, ClientError> {
        self.query1(Target::Escrow, "balance_of", (owner, self.ids.ledger))
            .await
    }

    /// `withdraw`; returns the ledger block.
    pub async fn escrow_withdraw(&self, args: WithdrawArgs) -> Result<Tokens, ClientError> {
        self.escrow_update("withdraw", (args,)).await
    }

    // --- matcher ----------------------------------------------------------

    /// `get_config` of the matcher (its grace period, among others).
    pub async fn matcher_config(&self) -> Result<MatcherInit, ClientError> {
        self.query1(Target::Matcher, "get_config", ()).await
    }

    /// `get_rates`: the rate each ledger's token was last read at, the
    /// oldest a lock may convert at and the buffer XDR locks hold.
    pub async fn rates(&self) -> Result<RatesView, ClientError> {
        self.query1(Target::Matcher, "get_rates", ()).await
    }

    /// `post_offer`; returns the offer id.
    pub async fn post_offer(&self, spec: OfferSpec) -> Result<OfferId, ClientError> {
        self.matcher_update("post_offer", (spec,)).await
    }

    /// `update_offer`; returns the offer id.
    pub async fn update_offer(&self, id: OfferId, spec: OfferSpec) -> Result<OfferId, ClientError> {
        self.matcher_update("update_offer", (id, spec)).await
    }

    /// `withdraw_offer`.
    pub async fn withdraw_offer(&self, id: OfferId) -> Result<(), ClientError> {
        self.matcher_update("withdraw_offer", (id,)).await
    }

    /// `offers_of`.
    pub async fn offers_of(&self, provider: Principal) -> Result<Vec<Offer>, ClientError> {
        self.query1(Target::Matcher, "offers_of", (provider,)).await
    }

    /// `assignments`: one page of the unfinished jobs assigned to `provider`.
    pub async fn assignments_page(
        &self,
        provider: Principal,
        page: PageRequest,
    ) -> Result<AssignmentPage, ClientError> {
        self.query1(Target::Matcher, "assignments", (provider, page))
            .await
    }

    /// Every unfinished job assigned to `provider`, read page by page; an
    /// error if any page can't be read (so a partial list is never taken
    /// for the whole).
    pub async fn assignments(&self, provider: Principal) -> Result<Vec<Assignment>, ClientError> {
        let mut all = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .assignments_page(
                    provider,
                    PageRequest {
                        start,
                        limit: Some(MAX_ASSIGNMENTS_PAGE),
                    },
                )
                .await?;
            all.extend(page.assignments);
            match page.next {
                // Job ids only grow along the pages; one that does not is
                // a broken answer, not a reason to loop for ever.
                Some(next) if start.is_none_or(|s| next > s) => start = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// `job_view`: a job without its input and output bytes.
    pub async fn job_view(&self, job_id: JobId) -> Result<Option<JobView>, ClientError> {
        self.query1(Target::Matcher, "job_view", (job_id,)).await
    }

    /// `job_chunk`: up to 1 MiB of a job's input or output from `offset`.
    pub async fn job_chunk(&self, req: JobChunkRequest) -> Result<JobChunk, ClientError> {
        self.query1::<_, Result<JobChunk, MatcherError>>(Target::Matcher, "job_chunk", (req,))
            .await?
            .map_err(ClientError::Matcher)
    }

    /// `privacy_key`: the matcher's public key for sealing jobs (`None`
    /// when the market takes no sealed jobs, or has not read it yet).
    pub async fn privacy_key(
        &self,
    ) -> Result<Option<market_api::privacy::PrivacyKey>, ClientError> {
        self.query1(Target::Matcher, "privacy_key", ()).await
    }

    /// `job_key`: a sealed job's vetKey, encrypted to a transport key (for
    /// the provider holding its assignment, or its owner).
    pub async fn job_key(
        &self,
        req: market_api::privacy::JobKeyRequest,
    ) -> Result<market_api::privacy::JobKey, ClientError> {
        self.matcher_update("job_key", (req,)).await
    }

    /// `heartbeat`: one batch for all of the provider's jobs.
    pub async fn heartbeat(
        &self,
        items: Vec<HeartbeatItem>,
    ) -> Result<Vec<HeartbeatAck>, ClientError> {
        self.matcher_update("heartbeat", (items,)).await
    }

    /// `submit_result`.
    pub async fn submit_result(&self, args: SubmitResultArgs) -> Result<(), ClientError> {
        self.matcher_update("submit_result", (args,)).await
    }

    /// `hand_back`: returns a job this provider cannot finish, before its
    /// deadline, so that it is matched again without a slash.
    pub async fn hand_back(&self, job_id: JobId, attempt: u32) -> Result<(), ClientError> {
        self.matcher_update("hand_back", (job_id, attempt)).await
    }

    /// `module_info_of`.
    pub async fn module_info(&self, sha256: Sha256) -> Result<Option<ModuleInfo>, ClientError> {
        self.query1(
            Target::Matcher,
            "module_info_of",
            (serde_bytes::ByteBuf::from(sha256),),
        )
        .await
    }

    /// `module_chunk`: chunk `index` of a committed module.
    pub async fn module_chunk(&self, sha256: Sha256, index: u32) -> Result<Vec<u8>, ClientError> {
        self.query1::<_, Result<serde_bytes::ByteBuf, MatcherError>>(
            Target::Matcher,
            "module_chunk",
            (serde_bytes::ByteBuf::from(sha256), index),
        )
        .await?
        .map(serde_bytes::ByteBuf::into_vec)
        .map_err(ClientError::Matcher)
    }

    /// `begin_module_upload`.
    pub async fn begin_module_upload(
        &self,
        upload: ModuleUpload,
    ) -> Result<ModuleInfo, ClientError> {
        self.matcher_update("begin_module_upload", (upload,)).await
    }

    /// `put_module_chunk`.
    pub async fn put_module_chunk(
        &self,
        sha256: Sha256,
        index: u32,
        bytes: Vec<u8>,
    ) -> Result<(), ClientError> {
        self.matcher_update(
            "put_module_chunk",
            (
                serde_bytes::ByteBuf::from(sha256),
                index,
                serde_bytes::ByteBuf::from(bytes),
            ),
        )
        .await
    }

    /// `commit_module`.
    pub async fn commit_module(&self, sha256: Sha256) -> Result<ModuleInfo, ClientError> {
        self.matcher_update("commit_module", (serde_bytes::ByteBuf::from(sha256),))
            .await
    }

    /// `submit_job`; returns the job id.
    pub async fn submit_job(&self, spec: JobSpec) -> Result<JobId, ClientError> {
        self.matcher_update("submit_job", (spec,)).await
    }

    /// `get_job`.
    pub async fn get_job(&self, id: JobId) -> Result<Option<Job>, ClientError> {
        self.query1(Target::Matcher, "get_job", (id,)).await
    }

    /// `dispute_job`: the owner asks for the result of job `id` to be
    /// audited (run again on another provider, paid from the job's lock)
    /// while its challenge window is open.
    pub async fn dispute_job(&self, id: JobId) -> Result<(), ClientError> {
        self.matcher_update("dispute_job", (id,)).await
    }

    /// `cancel_job`.
    pub async fn cancel_job(&self, id: JobId) -> Result<(), ClientError> {
        self.matcher_update("cancel_job", (id,)).await
    }

    /// `list_jobs`: `owner`'s jobs from `page.start` on.
    pub async fn list_jobs(
        &self,
        owner: Principal,
        page: PageRequest,
    ) -> Result<Vec<Job>, ClientError> {
        self.query1(Target::Matcher, "list_jobs", (owner, page))
            .await
    }

    // --- reservations -----------------------------------------------------

    /// `reserve`: locks slots × intervals × max price from the caller's
    /// escrow balance; returns the reservation id.
    pub async fn reserve(&self, spec: ReservationSpec) -> Result<ReservationId, ClientError> {
        self.matcher_update("reserve", (spec,)).await
    }

    /// `extend_reservation`: adds intervals to every live slot (and locks
    /// what they cost).
    pub async fn extend_reservation(&self, args: ExtendReservationArgs) -> Result<(), ClientError> {
        self.matcher_update("extend_reservation", (args,)).await
    }

    /// `set_delegates`; returns the delegates afterwards.
    pub async fn set_delegates(
        &self,
        args: SetDelegatesArgs,
    ) -> Result<Vec<Principal>, ClientError> {
        self.matcher_update("set_delegates", (args,)).await
    }

    /// `cancel_reservation`: what was not yet paid returns to the owner.
    pub async fn cancel_reservation(&self, args: CancelReservationArgs) -> Result<(), ClientError> {
        self.matcher_update("cancel_reservation", (args,)).await
    }

    /// `submit_reserved_job`: a job run in a reservation's slots, paid by
    /// the slot; returns the job id.
    pub async fn submit_reserved_job(&self, args: ReservedJobArgs) -> Result<JobId, ClientError> {
        self.matcher_update("submit_reserved_job", (args,)).await
    }

    /// `get_reservation`.
    pub async fn get_reservation(
        &self,
        id: ReservationId,
    ) -> Result<Option<Reservation>, ClientError> {
        self.query1(Target::Matcher, "get_reservation", (id,)).await
    }

    /// `get_service`: a service lease's replicas, their endpoints and health.
    pub async fn get_service(&self, id: ReservationId) -> Result<Option<ServiceView>, ClientError> {
        self.query1(Target::Matcher, "get_service", (id,)).await
    }

    /// `list_reservations`: `owner`'s reservations from `page.start` on.
    pub async fn list_reservations(
        &self,
        owner: Principal,
        page: PageRequest,
    ) -> Result<Vec<Reservation>, ClientError> {
        self.query1(Target::Matcher, "list_reservations", (owner, page))
            .await
    }
}

#[cfg(test)]
mod tests;
