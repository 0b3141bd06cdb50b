//! Types of the registry canister: providers, their profiles and stakes.

use crate::{Account, OpKey, Principal, Tokens};
use candid::{CandidType, Deserialize};
use serde::Serialize;

/// Longest display name, region, tag or endpoint, in bytes.
pub const MAX_PROFILE_TEXT_LEN: usize = 128;
/// Most tags a profile may carry.
pub const MAX_PROFILE_TAGS: usize = 16;
/// Longest slash reason, in bytes.
pub const MAX_SLASH_REASON_LEN: usize = 256;

/// Init and upgrade argument of the registry canister.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct RegistryInit {
    /// The ledger stakes are held on (ICP).
    pub ledger: Principal,
    /// The matcher canister, the only caller allowed to bond and slash.
    pub matcher: Option<Principal>,
    /// Smallest stake, in e8s, that keeps a provider eligible for work.
    pub min_stake: Tokens,
    /// How long unstaked tokens stay slashable before they can be withdrawn.
    pub unbonding_period_secs: u64,
}

/// Changes to the registry's configuration; controllers only. `None` keeps a value.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RegistryConfigUpdate {
    /// New matcher principal.
    pub matcher: Option<Principal>,
    /// New minimum stake.
    pub min_stake: Option<Tokens>,
    /// New unbonding period.
    pub unbonding_period_secs: Option<u64>,
}

/// The registry's configuration as stored.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct RegistryConfig {
    /// The ledger stakes are held on.
    pub ledger: Principal,
    /// The matcher canister, if set.
    pub matcher: Option<Principal>,
    /// Smallest stake that keeps a provider eligible for work.
    pub min_stake: Tokens,
    /// Unbonding period in seconds.
    pub unbonding_period_secs: u64,
}

/// What a provider tells the market about itself.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ProviderProfile {
    /// Human-readable name.
    pub display_name: String,
    /// Where the machines are, e.g. `eu-west`.
    pub region: String,
    /// The principal the provider's daemon signs heartbeats with (may equal the provider).
    pub node: Principal,
    /// How many jobs the provider runs at once.
    pub total_slots: u32,
    /// Memory available to each slot, in MiB.
    pub memory_per_slot_mib: u32,
    /// Free-form capability tags, e.g. `avx2`, `gpu`.
    pub tags: Vec<String>,
    /// An optional public URL of the provider (status page, service endpoint).
    pub endpoint: Option<String>,
}

/// Stake not yet withdrawable: it stays slashable until `release_at_ns`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Unbonding {
    /// Amount unbonding.
    pub amount: Tokens,
    /// When it may be withdrawn.
    pub release_at_ns: u64,
}

/// A provider's stake, split by what it may be used for.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Stake {
    /// Staked and not backing any work.
    pub free: Tokens,
    /// Backing running work; cannot be unstaked.
    pub bonded: Tokens,
    /// Unstaked and waiting for the unbonding period to pass.
    pub unbonding: Vec<Unbonding>,
}

/// A provider as the registry knows it.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    /// The provider's principal.
    pub id: Principal,
    /// Its profile.
    pub profile: ProviderProfile,
    /// When it registered.
    pub registered_at_ns: u64,
    /// Its stake.
    pub stake: Stake,
    /// Total slashed from it so far.
    pub slashed_total: Tokens,
    /// Jailed providers get no new work until they top up and call `unjail`.
    pub jailed: bool,
}

/// Arguments of `bond`: the matcher sets aside part of a provider's free stake for a job.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct BondArgs {
    /// The provider whose stake is bonded.
    pub provider: Principal,
    /// How much to bond.
    pub amount: Tokens,
    /// Idempotency key; `unbond` names the same key.
    pub key: OpKey,
}

/// Arguments of `slash`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SlashArgs {
    /// The provider to slash.
    pub provider: Principal,
    /// How much to take (less is taken if less is staked).
    pub amount: Tokens,
    /// Who receives the slashed tokens (e.g. the buyer's escrow deposit account).
    pub beneficiary: Account,
    /// Why, for the public record.
    pub reason: String,
    /// Idempotency key, e.g. `job/17/deadline/3`.
    pub key: OpKey,
}

/// What a slash did.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SlashOutcome {
    /// Amount taken from the provider's stake.
    pub slashed: Tokens,
    /// Amount that reached the beneficiary (slashed minus the ledger fee).
    pub paid_out: Tokens,
    /// Ledger block of the payout, if anything was paid.
    pub block_index: Option<u128>,
    /// Whether the provider is now jailed.
    pub jailed: bool,
}

/// Filters of `list_providers`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ProviderFilter {
    /// Only providers that are not jailed and hold at least the minimum stake.
    pub active_only: bool,
    /// Only providers in this region.
    pub region: Option<String>,
    /// Only providers with at least this much free plus bonded stake.
    pub min_stake: Option<Tokens>,
}

/// Errors of the registry's methods.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum RegistryError {
    /// The anonymous principal may not call this method.
    AnonymousCaller,
    /// The caller is not allowed to call this method.
    Unauthorized { reason: String },
    /// The caller is already a provider.
    AlreadyRegistered,
    /// No such provider.
    NotRegistered,
    /// A field of the argument is out of bounds.
    InvalidArgument { field: String, reason: String },
    /// The provider has stake bonded to work.
    StakeBonded { bonded: Tokens },
    /// Not enough free stake for the request.
    InsufficientStake { available: Tokens },
    /// Another operation for this provider is in flight; try again.
    Busy,
    /// The ledger call failed; the stake is as it was before the call.
    Ledger(crate::LedgerCallError),
    /// The provider is jailed.
    Jailed,
    /// Nothing is ready to withdraw.
    NothingToWithdraw,
}

/// The registry's public event log.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum RegistryEvent {
    /// A provider registered or changed its profile.
    ProfileSet {
        provider: Principal,
        profile: ProviderProfile,
    },
    /// A provider left.
    Deregistered { provider: Principal },
    /// Stake arrived on the ledger.
    Staked {
        provider: Principal,
        amount: Tokens,
        block_index: u128,
    },
    /// Stake started unbonding.
    Unstaked {
        provider: Principal,
        amount: Tokens,
        release_at_ns: u64,
    },
    /// Unbonded stake went back to the provider.
    Withdrawn {
        provider: Principal,
        amount: Tokens,
        block_index: u128,
    },
    /// Stake was bonded to work.
    Bonded {
        provider: Principal,
        amount: Tokens,
        key: OpKey,
    },
    /// Bonded stake was freed.
    Unbonded {
        provider: Principal,
        amount: Tokens,
        key: OpKey,
    },
    /// Stake was slashed and paid to a beneficiary.
    Slashed {
        provider: Principal,
        amount: Tokens,
        beneficiary: Account,
        reason: String,
        key: OpKey,
    },
    /// A provider was jailed or released.
    JailChanged { provider: Principal, jailed: bool },
    /// The configuration changed.
    ConfigChanged { config: RegistryConfig },
}
