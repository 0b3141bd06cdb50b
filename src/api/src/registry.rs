//! Types of the registry canister: providers, their profiles and stakes.

use crate::{Account, OpKey, Principal, Subaccount, Tokens};
use candid::{CandidType, Deserialize};
use serde::Serialize;

/// Longest display name, region, tag or endpoint, in bytes.
pub const MAX_PROFILE_TEXT_LEN: usize = 128;
/// Most tags a profile may carry.
pub const MAX_PROFILE_TAGS: usize = 16;
/// Longest slash reason, in bytes.
pub const MAX_SLASH_REASON_LEN: usize = 256;
/// Most slots a profile may declare.
pub const MAX_TOTAL_SLOTS: u32 = 100_000;
/// Most memory per slot a profile may declare, in MiB (1 TiB).
pub const MAX_MEMORY_PER_SLOT_MIB: u32 = 1 << 20;
/// Most unbonding entries a provider may have at once; further `unstake`
/// calls wait until some are withdrawn.
pub const MAX_UNBONDING_ENTRIES: usize = 32;
/// Longest unbonding period the configuration accepts (one year).
pub const MAX_UNBONDING_PERIOD_SECS: u64 = 365 * 86_400;
/// Unbonding period used when the init argument does not set one (7 days).
pub const DEFAULT_UNBONDING_PERIOD_SECS: u64 = 7 * 86_400;
/// How long the registry remembers the idempotency key of a `record` call:
/// as long as the matcher keeps the finished job the call was about, so
/// the matcher's retries always find it. A key older than this is
/// forgotten, and the same call made again would count again.
pub const RECORD_KEY_RETENTION_SECS: u64 = crate::matcher::FINISHED_JOB_RETENTION_SECS;

/// Init argument of the registry canister.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct RegistryInit {
    /// The ledger stakes are held on (ICP). It cannot be changed later.
    pub ledger: Principal,
    /// The matcher canister, the only caller allowed to bond and slash.
    pub matcher: Option<Principal>,
    /// Smallest stake, in e8s, that keeps a provider eligible for work.
    pub min_stake: Tokens,
    /// How long unstaked tokens stay slashable before they can be withdrawn;
    /// 7 days when absent.
    pub unbonding_period_secs: Option<u64>,
    /// The SNS governance canister that administers this canister beside
    /// its controllers, once the market is handed to an SNS: its adopted
    /// proposals call the controllers-only methods (see
    /// `canister_common::admin`).
    #[serde(default)]
    pub governance: Option<Principal>,
}

/// Changes to the registry's configuration: the upgrade argument, or the
/// argument of `update_config` (controllers only). `None` keeps a value.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RegistryConfigUpdate {
    /// New matcher principal.
    pub matcher: Option<Principal>,
    /// New minimum stake.
    pub min_stake: Option<Tokens>,
    /// New unbonding period; applies to stake unstaked from then on.
    pub unbonding_period_secs: Option<u64>,
    /// New SNS governance canister, administering the registry beside its
    /// controllers.
    #[serde(default)]
    pub governance: Option<Principal>,
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
    /// The SNS governance canister administering the registry beside its
    /// controllers, if any.
    #[serde(default)]
    pub governance: Option<Principal>,
}

/// What a provider tells the market about itself.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ProviderProfile {
    /// Human-readable name, 1 to 128 bytes.
    pub display_name: String,
    /// Where the machines are, e.g. `eu-west`; 1 to 128 bytes.
    pub region: String,
    /// The principal the provider's daemon signs heartbeats with (may equal
    /// the provider); never anonymous.
    pub node: Principal,
    /// How many jobs the provider runs at once, 1 to 100 000.
    pub total_slots: u32,
    /// Memory available to each slot, in MiB, 1 to 1 048 576.
    pub memory_per_slot_mib: u32,
    /// Free-form capability tags, e.g. `avx2`, `gpu`: at most 16, each 1 to
    /// 128 bytes.
    pub tags: Vec<String>,
    /// An optional public URL of the provider (status page, service
    /// endpoint), `https://` or `http://`, at most 128 bytes.
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

/// A provider's stake, split by what it may be used for. All of it sits on
/// the registry's ledger account at the provider's stake subaccount.
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
    /// The provider deregistered; the record stays until its remaining
    /// (unbonding) stake is withdrawn. Registering again reactivates it.
    pub deregistered: bool,
    /// A ledger transfer of this provider whose outcome is not known yet;
    /// the next stake operation of the provider (or a retried slash) settles it.
    pub pending_operation: Option<PendingOperation>,
    /// How that transfer was sent: what identifies it in the ledger's blocks.
    #[serde(default)]
    pub pending_transfer: Option<PendingTransferInfo>,
    /// What the provider did: jobs, audits, deadlines, slashes.
    pub record: TrackRecord,
}

/// A provider's track record: what it did, as the matcher reported it
/// (`record`) and as its slashes show. Counters only grow.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(default)]
pub struct TrackRecord {
    /// Jobs it ran to the end.
    pub jobs_completed: u64,
    /// Audits of its results that agreed with them.
    pub audits_passed: u64,
    /// Audits of its results that did not.
    pub audits_failed: u64,
    /// Heartbeat or result deadlines it missed.
    pub deadlines_missed: u64,
    /// Slashes that took stake from it.
    pub slashes: u64,
    /// Stake those slashes took, in e8s (counted since the registry kept
    /// track records; `Provider::slashed_total` has the whole history).
    pub slashed: Tokens,
    /// Heartbeats it sent on time, over its completed jobs.
    pub heartbeats_on_time: u64,
    /// When an audit last failed, if one ever did.
    pub last_failed_audit_ns: Option<u64>,
    /// When it last missed a deadline, if it ever did.
    pub last_missed_deadline_ns: Option<u64>,
}

impl TrackRecord {
    /// Whether this record meets a bid's requirement at `now_ns`. A
    /// failed audit "within" the window is one less than
    /// `no_failed_audit_within_secs` old (or dated after `now_ns`).
    pub fn meets(&self, req: &RecordRequirement, now_ns: u64) -> bool {
        if self.jobs_completed < req.min_jobs_completed {
            return false;
        }
        if let (Some(window_secs), Some(failed_at)) =
            (req.no_failed_audit_within_secs, self.last_failed_audit_ns)
        {
            let window_ns = window_secs.saturating_mul(1_000_000_000);
            if now_ns.saturating_sub(failed_at) < window_ns {
                return false;
            }
        }
        if let Some(max) = req.max_deadlines_missed
            && self.deadlines_missed > max
        {
            return false;
        }
        true
    }
}

/// One line for people: "42 jobs, 3 audits passed, 0 failed, 1 deadline
/// missed, 1 slash".
impl std::fmt::Display for TrackRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        write!(
            f,
            "{} job{}, {} audit{} passed, {} failed, {} deadline{} missed, {} slash{}",
            self.jobs_completed,
            plural(self.jobs_completed),
            self.audits_passed,
            plural(self.audits_passed),
            self.audits_failed,
            self.deadlines_missed,
            plural(self.deadlines_missed),
            self.slashes,
            if self.slashes == 1 { "" } else { "es" },
        )
    }
}

/// The record a bid requires of the provider that runs it. The default
/// requires nothing.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RecordRequirement {
    /// Fewest jobs the provider must have completed.
    pub min_jobs_completed: u64,
    /// No audit of the provider may have failed in this many seconds
    /// before now.
    pub no_failed_audit_within_secs: Option<u64>,
    /// Most deadlines the provider may have missed, ever.
    pub max_deadlines_missed: Option<u64>,
}

/// One thing a provider did, as the matcher reports it with `record`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum RecordEvent {
    /// It ran a job to the end, with this many heartbeats on time.
    JobCompleted { heartbeats_on_time: u32 },
    /// An audit of its result agreed with it.
    AuditPassed,
    /// An audit of its result did not.
    AuditFailed,
    /// It missed a heartbeat or result deadline.
    DeadlineMissed,
}

/// Arguments of `record` (matcher only).
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct RecordArgs {
    /// The provider it concerns.
    pub provider: Principal,
    /// Idempotency key, e.g. `job/17/completed`; a repeat with the same
    /// provider and event counts nothing. Remembered for 30 days
    /// (`RECORD_KEY_RETENTION_SECS`).
    pub key: OpKey,
    /// What happened.
    pub event: RecordEvent,
}

/// The identifying fields of a pending ledger transfer, as sent.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct PendingTransferInfo {
    /// The operation's number (also in the memo); `resolve_transfer` names it.
    pub operation: u64,
    /// The account debited by an `icrc2_transfer_from` (a `stake` pull).
    pub payer: Option<Account>,
    /// The registry's subaccount debited by an `icrc1_transfer` (a payout).
    pub from_subaccount: Option<Subaccount>,
    /// The account credited.
    pub to: Account,
    /// The amount credited.
    pub amount: Tokens,
    /// The call's memo.
    #[serde(with = "serde_bytes")]
    pub memo: Vec<u8>,
    /// The call's `created_at_time`.
    pub created_at_time: u64,
}

/// Arguments of `resolve_transfer` (controllers only): how a pending
/// transfer ended, for a ledger whose blocks the registry can't read.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ResolveTransferArgs {
    /// Whose transfer it is.
    pub provider: Principal,
    /// The operation's number (see `PendingTransferInfo`).
    pub operation: u64,
    /// How it ended on the ledger.
    pub outcome: crate::LedgerOutcome,
}

/// A ledger transfer recorded before it was made and not yet settled.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum PendingOperation {
    /// A `stake` pull of this amount; credited once the ledger confirms.
    Stake { amount: Tokens },
    /// A withdrawal of this much unbonded stake (already debited).
    Withdraw { amount: Tokens },
    /// A slash payout of this much stake (already debited) under this key.
    Slash { amount: Tokens, key: OpKey },
}

/// Arguments of `bond`: the matcher sets aside part of a provider's free stake for a job.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct BondArgs {
    /// The provider whose stake is bonded.
    pub provider: Principal,
    /// How much to bond (more than zero).
    pub amount: Tokens,
    /// Idempotency key; `unbond` names the same key.
    pub key: OpKey,
    /// Smallest stake (free plus bonded) the provider must hold now, the
    /// job's `min_provider_stake`: the matcher's view of a provider's stake
    /// dates from its offer, the registry's is current.
    pub min_stake: Option<Tokens>,
    /// The track record the provider must have now, the job's
    /// `min_record`; one that falls short is refused as `Unauthorized`.
    #[serde(default)]
    pub min_record: Option<RecordRequirement>,
}

/// Arguments of `slash`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct SlashArgs {
    /// The provider to slash.
    pub provider: Principal,
    /// How much to take (less is taken if less is staked); taken from bonded,
    /// then free, then unbonding stake.
    pub amount: Tokens,
    /// Who receives the slashed tokens (e.g. the buyer's escrow deposit account).
    pub beneficiary: Account,
    /// Why, for the public record; at most 256 bytes.
    pub reason: String,
    /// Idempotency key, e.g. `job/17/deadline/3`; a repeat returns the first outcome.
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
    /// Only providers eligible for work: registered, not jailed, holding at
    /// least the minimum stake (free plus bonded).
    pub active_only: bool,
    /// Only providers in this region.
    pub region: Option<String>,
    /// Only providers with at least this much free plus bonded stake.
    pub min_stake: Option<Tokens>,
}

/// Arguments of `list_providers`: providers in principal order after `start_after`.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ListProvidersArgs {
    /// Which providers to return.
    pub filter: ProviderFilter,
    /// Continue after this provider (the `next` of the previous page).
    pub start_after: Option<Principal>,
    /// Page size; capped at `MAX_PAGE_LIMIT`; `None` or 0 means the cap.
    pub limit: Option<u32>,
}

/// One page of providers.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ProviderPage {
    /// Matching providers in principal order.
    pub providers: Vec<Provider>,
    /// Pass as `start_after` for the next page; `None` when the list is done.
    /// A page may hold fewer than `limit` providers and still have a next
    /// page (the scan per page is bounded).
    pub next: Option<Principal>,
}

/// Why a provider may not take on new work.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum Ineligibility {
    /// Not a registered provider.
    NotRegistered,
    /// The provider deregistered.
    Deregistered,
    /// The provider is jailed.
    Jailed,
    /// Free plus bonded stake is below the minimum.
    BelowMinimumStake { stake: Tokens, min_stake: Tokens },
}

/// Whether a provider may take on new work, and how much stake it can bond.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Eligibility {
    /// `None` when eligible.
    pub ineligible: Option<Ineligibility>,
    /// Free stake that `bond` can still set aside.
    pub free_stake: Tokens,
}

/// Where a provider's stake is held on the ledger.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct StakeAccount {
    /// The registry's account at the provider's subaccount, derived as
    /// sha256("market-registry-stake" ‖ len(principal) ‖ principal).
    pub account: Account,
    /// The same subaccount, for convenience.
    pub subaccount: Subaccount,
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
    /// The ledger call failed; the stake is as it was before the call. With
    /// `OutcomeUnknown` the operation stays pending and is settled by a retry.
    Ledger(crate::LedgerCallError),
    /// The provider is jailed.
    Jailed,
    /// Nothing is ready to withdraw.
    NothingToWithdraw,
    /// The amount does not cover the ledger fee of the transfer.
    BelowFee { fee: Tokens },
    /// The idempotency key was used before with different arguments.
    KeyConflict { key: OpKey },
    /// The provider has too many unbonding entries; withdraw some first.
    TooManyUnbonding { max: u32 },
}

/// The registry's public event log.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum RegistryEvent {
    /// A provider registered or changed its profile.
    ProfileSet {
        provider: Principal,
        profile: ProviderProfile,
    },
    /// A provider left; its free stake started unbonding.
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
    /// Unbonded stake went back to the provider (`amount` left the stake,
    /// the ledger fee included).
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
    /// Stake was slashed and paid to a beneficiary (`amount` left the
    /// stake; `paid_out` reached the beneficiary, the fee being the rest).
    Slashed {
        provider: Principal,
        amount: Tokens,
        paid_out: Tokens,
        block_index: Option<u128>,
        beneficiary: Account,
        reason: String,
        key: OpKey,
    },
    /// A debited transfer failed definitely and the stake was restored.
    Restored {
        provider: Principal,
        amount: Tokens,
        reason: String,
    },
    /// A provider was jailed or released.
    JailChanged { provider: Principal, jailed: bool },
    /// The configuration changed.
    ConfigChanged { config: RegistryConfig },
    /// A controller ruled how the provider's pending transfer `operation`
    /// ended on a ledger whose blocks the registry can't read; the events
    /// of its effect follow.
    TransferResolved {
        provider: Principal,
        operation: u64,
        outcome: crate::LedgerOutcome,
        controller: Principal,
    },
    /// The matcher recorded something the provider did; `record` is its
    /// track record afterwards.
    RecordChanged {
        provider: Principal,
        key: OpKey,
        event: RecordEvent,
        record: TrackRecord,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn record() -> TrackRecord {
        TrackRecord {
            jobs_completed: 10,
            deadlines_missed: 2,
            ..TrackRecord::default()
        }
    }

    #[test]
    fn nothing_required_is_met_by_any_record() {
        let req = RecordRequirement::default();
        assert!(TrackRecord::default().meets(&req, 0));
        let bad = TrackRecord {
            audits_failed: 5,
            deadlines_missed: 9,
            last_failed_audit_ns: Some(100 * S),
            ..TrackRecord::default()
        };
        assert!(bad.meets(&req, 100 * S));
    }

    #[test]
    fn min_jobs_completed_is_inclusive() {
        let r = record();
        let req = |n| RecordRequirement {
            min_jobs_completed: n,
            ..Default::default()
        };
        assert!(r.meets(&req(10), 0));
        assert!(!r.meets(&req(11), 0));
    }

    #[test]
    fn max_deadlines_missed_is_inclusive() {
        let r = record();
        let req = |m| RecordRequirement {
            max_deadlines_missed: Some(m),
            ..Default::default()
        };
        assert!(r.meets(&req(2), 0));
        assert!(!r.meets(&req(1), 0));
    }

    #[test]
    fn a_failed_audit_counts_only_within_the_window() {
        let req = RecordRequirement {
            no_failed_audit_within_secs: Some(3_600),
            ..Default::default()
        };
        assert!(record().meets(&req, 0), "no audit ever failed");
        let r = TrackRecord {
            audits_failed: 1,
            last_failed_audit_ns: Some(1_000 * S),
            ..record()
        };
        assert!(!r.meets(&req, 1_000 * S));
        assert!(!r.meets(&req, (1_000 + 3_600) * S - 1));
        assert!(r.meets(&req, (1_000 + 3_600) * S));
        // A failure dated after `now` (a clock behind) is within the window.
        assert!(!r.meets(&req, 999 * S));
        // A window too long for nanoseconds covers all time.
        let forever = RecordRequirement {
            no_failed_audit_within_secs: Some(u64::MAX),
            ..Default::default()
        };
        assert!(!r.meets(&forever, u64::MAX));
    }

    #[test]
    fn every_requirement_must_hold() {
        let r = TrackRecord {
            last_failed_audit_ns: Some(0),
            ..record()
        };
        let req = RecordRequirement {
            min_jobs_completed: 5,
            no_failed_audit_within_secs: Some(60),
            max_deadlines_missed: Some(3),
        };
        assert!(r.meets(&req, 60 * S));
        assert!(!r.meets(
            &RecordRequirement {
                min_jobs_completed: 11,
                ..req.clone()
            },
            60 * S
        ));
        assert!(!r.meets(&req, 59 * S));
        assert!(!r.meets(
            &RecordRequirement {
                max_deadlines_missed: Some(1),
                ..req
            },
            60 * S
        ));
    }

    #[test]
    fn a_record_reads_in_one_line() {
        assert_eq!(
            TrackRecord::default().to_string(),
            "0 jobs, 0 audits passed, 0 failed, 0 deadlines missed, 0 slashes"
        );
        let r = TrackRecord {
            jobs_completed: 1,
            audits_passed: 1,
            deadlines_missed: 1,
            slashes: 1,
            ..TrackRecord::default()
        };
        assert_eq!(
            r.to_string(),
            "1 job, 1 audit passed, 0 failed, 1 deadline missed, 1 slash"
        );
    }
}
