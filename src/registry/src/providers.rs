//! Registration, profiles, unstaking, bonding, jailing and the read side:
//! every rule that needs no ledger call. Callers and time are passed in.

use crate::state::{BondRecord, ProviderRecord, State};
use crate::subaccount::stake_subaccount;
use market_api::registry::{
    BondArgs, Eligibility, Ineligibility, ListProvidersArgs, MAX_MEMORY_PER_SLOT_MIB,
    MAX_PROFILE_TAGS, MAX_PROFILE_TEXT_LEN, MAX_TOTAL_SLOTS, MAX_UNBONDING_ENTRIES, Provider,
    ProviderPage, ProviderProfile, RegistryError, RegistryEvent, Stake, StakeAccount, TrackRecord,
    Unbonding,
};
use market_api::{Account, MAX_PAGE_LIMIT, Principal, Tokens, validate_op_key};

/// Most providers one `list_providers` page looks at, matching or not.
pub const MAX_SCAN_PER_PAGE: usize = 5_000;

fn invalid(field: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::InvalidArgument {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Refuses the anonymous principal.
pub fn require_authenticated(caller: &Principal) -> Result<(), RegistryError> {
    if *caller == Principal::anonymous() {
        return Err(RegistryError::AnonymousCaller);
    }
    Ok(())
}

/// Allows only the configured matcher.
pub fn require_matcher(s: &State, caller: &Principal) -> Result<(), RegistryError> {
    require_authenticated(caller)?;
    match s.config().matcher {
        Some(m) if m == *caller => Ok(()),
        Some(_) => Err(RegistryError::Unauthorized {
            reason: "only the matcher may call this method".to_string(),
        }),
        None => Err(RegistryError::Unauthorized {
            reason: "no matcher is configured".to_string(),
        }),
    }
}

/// Checks an idempotency key.
pub fn check_key(key: &str) -> Result<(), RegistryError> {
    validate_op_key(key).map_err(|reason| invalid("key", reason))
}

fn check_text(field: &str, value: &str) -> Result<(), RegistryError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.len() > MAX_PROFILE_TEXT_LEN {
        return Err(invalid(
            field,
            format!(
                "{} bytes, the maximum is {MAX_PROFILE_TEXT_LEN}",
                value.len()
            ),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Checks every field of a profile against its bounds.
pub fn validate_profile(p: &ProviderProfile) -> Result<(), RegistryError> {
    check_text("display_name", &p.display_name)?;
    check_text("region", &p.region)?;
    if p.node == Principal::anonymous() {
        return Err(invalid(
            "node",
            "the anonymous principal cannot sign for a node",
        ));
    }
    if p.total_slots == 0 || p.total_slots > MAX_TOTAL_SLOTS {
        return Err(invalid(
            "total_slots",
            format!("must be between 1 and {MAX_TOTAL_SLOTS}"),
        ));
    }
    if p.memory_per_slot_mib == 0 || p.memory_per_slot_mib > MAX_MEMORY_PER_SLOT_MIB {
        return Err(invalid(
            "memory_per_slot_mib",
            format!("must be between 1 and {MAX_MEMORY_PER_SLOT_MIB}"),
        ));
    }
    if p.tags.len() > MAX_PROFILE_TAGS {
        return Err(invalid(
            "tags",
            format!("{} tags, the maximum is {MAX_PROFILE_TAGS}", p.tags.len()),
        ));
    }
    for tag in &p.tags {
        check_text("tags", tag)?;
    }
    if let Some(endpoint) = &p.endpoint {
        check_text("endpoint", endpoint)?;
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(invalid("endpoint", "must be an http:// or https:// URL"));
        }
    }
    Ok(())
}

/// Whether `caller` may name `node` as the principal that signs for it: a
/// node signs for one provider only, is not itself a provider, and a
/// provider's principal is not another's node. Otherwise one provider could
/// take over another's heartbeats in the matcher and get it slashed.
fn check_node(s: &State, caller: Principal, node: Principal) -> Result<(), RegistryError> {
    if let Some(owner) = s.node_owner(&caller)
        && owner != caller
    {
        return Err(invalid(
            "caller",
            format!("this principal is the node of provider {owner}; a node cannot be a provider"),
        ));
    }
    if node == caller {
        return Ok(());
    }
    if s.provider(&node).is_some() {
        return Err(invalid(
            "node",
            format!("{node} is a provider; a node signs for its own provider only"),
        ));
    }
    match s.node_owner(&node) {
        Some(owner) if owner != caller => Err(invalid(
            "node",
            format!("{node} is already the node of provider {owner}"),
        )),
        _ => Ok(()),
    }
}

/// `register_provider`: the caller becomes a provider (or a deregistered
/// provider comes back, keeping its stake).
pub fn register(
    s: &mut State,
    caller: Principal,
    now: u64,
    profile: ProviderProfile,
) -> Result<(), RegistryError> {
    require_authenticated(&caller)?;
    validate_profile(&profile)?;
    check_node(s, caller, profile.node)?;
    let record = match s.provider(&caller) {
        Some(existing) if !existing.deregistered => return Err(RegistryError::AlreadyRegistered),
        Some(existing) => ProviderRecord {
            profile: profile.clone(),
            registered_at_ns: now,
            deregistered: false,
            ..existing
        },
        None => ProviderRecord {
            id: caller,
            profile: profile.clone(),
            registered_at_ns: now,
            stake: Stake::default(),
            slashed_total: 0,
            jailed: false,
            deregistered: false,
            record: TrackRecord::default(),
        },
    };
    put_profile(s, now, record);
    Ok(())
}

fn registered(s: &State, id: &Principal) -> Result<ProviderRecord, RegistryError> {
    match s.provider(id) {
        Some(p) if !p.deregistered => Ok(p),
        _ => Err(RegistryError::NotRegistered),
    }
}

/// `update_profile`: replaces the caller's profile.
pub fn update_profile(
    s: &mut State,
    caller: Principal,
    now: u64,
    profile: ProviderProfile,
) -> Result<(), RegistryError> {
    require_authenticated(&caller)?;
    validate_profile(&profile)?;
    let mut p = registered(s, &caller)?;
    check_node(s, caller, profile.node)?;
    p.profile = profile;
    put_profile(s, now, p);
    Ok(())
}

/// Stores a provider whose profile was set, recording the profile.
fn put_profile(s: &mut State, now: u64, provider: ProviderRecord) {
    let event = RegistryEvent::ProfileSet {
        provider: provider.id,
        profile: provider.profile.clone(),
    };
    s.put_provider(provider);
    s.record(now, event);
}

/// Adds `entry`'s amount to the unbonding entry that releases at the same
/// time, if there is one; says whether there was.
fn merge_unbonding(stake: &mut Stake, entry: &Unbonding) -> bool {
    let Some(e) = stake
        .unbonding
        .iter_mut()
        .find(|e| e.release_at_ns == entry.release_at_ns)
    else {
        return false;
    };
    e.amount = e
        .amount
        .checked_add(entry.amount)
        .expect("BUG: stake exceeds u128");
    true
}

/// Adds an unbonding entry, merging with one that releases at the same time.
fn push_unbonding(stake: &mut Stake, entry: Unbonding) -> Result<(), RegistryError> {
    if merge_unbonding(stake, &entry) {
        return Ok(());
    }
    if stake.unbonding.len() >= MAX_UNBONDING_ENTRIES {
        return Err(RegistryError::TooManyUnbonding {
            max: MAX_UNBONDING_ENTRIES as u32,
        });
    }
    stake.unbonding.push(entry);
    stake.unbonding.sort_by_key(|e| e.release_at_ns);
    Ok(())
}

/// Puts unbonding entries back (after a failed transfer), ignoring the entry cap:
/// restoring must never fail.
pub fn restore_unbonding(stake: &mut Stake, entries: &[Unbonding]) {
    for entry in entries {
        if !merge_unbonding(stake, entry) {
            stake.unbonding.push(entry.clone());
        }
    }
    stake.unbonding.sort_by_key(|e| e.release_at_ns);
}

fn release_time(s: &State, now: u64) -> u64 {
    let period_ns = s
        .config()
        .unbonding_period_secs
        .saturating_mul(1_000_000_000);
    now.saturating_add(period_ns)
}

/// `unstake`: moves free stake into unbonding; it can be withdrawn after the
/// unbonding period and stays slashable until then.
pub fn unstake(
    s: &mut State,
    caller: Principal,
    now: u64,
    amount: Tokens,
) -> Result<Unbonding, RegistryError> {
    require_authenticated(&caller)?;
    if amount == 0 {
        return Err(invalid("amount", "must be more than zero"));
    }
    let mut p = s.provider(&caller).ok_or(RegistryError::NotRegistered)?;
    if p.stake.free < amount {
        return Err(RegistryError::InsufficientStake {
            available: p.stake.free,
        });
    }
    let entry = Unbonding {
        amount,
        release_at_ns: release_time(s, now),
    };
    p.stake.free -= amount;
    push_unbonding(&mut p.stake, entry.clone())?;
    s.put_provider(p);
    s.record(
        now,
        RegistryEvent::Unstaked {
            provider: caller,
            amount,
            release_at_ns: entry.release_at_ns,
        },
    );
    Ok(entry)
}

/// `deregister`: the caller stops being a provider. Refused while stake is
/// bonded to work; free stake starts unbonding, and the record goes away
/// once nothing is left to withdraw.
pub fn deregister(s: &mut State, caller: Principal, now: u64) -> Result<(), RegistryError> {
    require_authenticated(&caller)?;
    let mut p = registered(s, &caller)?;
    if p.stake.bonded > 0 {
        return Err(RegistryError::StakeBonded {
            bonded: p.stake.bonded,
        });
    }
    let free = p.stake.free;
    if free > 0 {
        let entry = Unbonding {
            amount: free,
            release_at_ns: release_time(s, now),
        };
        p.stake.free = 0;
        push_unbonding(&mut p.stake, entry.clone())?;
        s.record(
            now,
            RegistryEvent::Unstaked {
                provider: caller,
                amount: free,
                release_at_ns: entry.release_at_ns,
            },
        );
    }
    p.deregistered = true;
    let empty = p.total_stake() == 0 && s.pending(&caller).is_none();
    if empty {
        s.remove_provider(&caller);
    } else {
        s.put_provider(p);
    }
    s.record(now, RegistryEvent::Deregistered { provider: caller });
    Ok(())
}

/// Removes a deregistered provider's record once it holds nothing.
pub fn forget_if_empty(s: &mut State, id: &Principal) {
    if let Some(p) = s.provider(id)
        && p.deregistered
        && p.total_stake() == 0
        && s.pending(id).is_none()
    {
        s.remove_provider(id);
    }
}

/// `bond` (matcher only): sets part of a provider's free stake aside for one
/// piece of work. A repeat with the same key and arguments does nothing.
pub fn bond(
    s: &mut State,
    caller: Principal,
    now: u64,
    args: BondArgs,
) -> Result<(), RegistryError> {
    require_matcher(s, &caller)?;
    check_key(&args.key)?;
    if args.amount == 0 {
        return Err(invalid("amount", "must be more than zero"));
    }
    if let Some(existing) = s.bond(&args.key) {
        if existing.provider == args.provider && existing.amount == args.amount {
            return Ok(());
        }
        return Err(RegistryError::KeyConflict { key: args.key });
    }
    let mut p = registered(s, &args.provider)?;
    if p.jailed {
        return Err(RegistryError::Jailed);
    }
    let min_stake = s.config().min_stake.max(args.min_stake.unwrap_or(0));
    if p.active_stake() < min_stake {
        return Err(RegistryError::InsufficientStake {
            available: p.stake.free,
        });
    }
    if let Some(req) = &args.min_record
        && !p.record.meets(req, now)
    {
        return Err(RegistryError::Unauthorized {
            reason: format!(
                "the provider's track record ({}) falls short of the job's",
                p.record
            ),
        });
    }
    if p.stake.free < args.amount {
        return Err(RegistryError::InsufficientStake {
            available: p.stake.free,
        });
    }
    p.stake.free -= args.amount;
    p.stake.bonded = p
        .stake
        .bonded
        .checked_add(args.amount)
        .expect("BUG: stake exceeds u128");
    s.put_provider(p);
    s.put_bond(
        &args.key,
        BondRecord {
            provider: args.provider,
            amount: args.amount,
            released: false,
        },
    );
    s.record(
        now,
        RegistryEvent::Bonded {
            provider: args.provider,
            amount: args.amount,
            key: args.key,
        },
    );
    Ok(())
}

/// `unbond` (matcher only): frees the stake bonded under `key`; what a slash
/// already took from bonded stake is not freed again. Returns the amount
/// freed; a repeat frees nothing and returns 0.
pub fn unbond(
    s: &mut State,
    caller: Principal,
    now: u64,
    key: String,
) -> Result<Tokens, RegistryError> {
    require_matcher(s, &caller)?;
    check_key(&key)?;
    let mut record = s
        .bond(&key)
        .ok_or_else(|| invalid("key", "no bond was made with this key"))?;
    if record.released {
        return Ok(0);
    }
    record.released = true;
    let mut freed = 0;
    if let Some(mut p) = s.provider(&record.provider) {
        freed = record.amount.min(p.stake.bonded);
        p.stake.bonded -= freed;
        p.stake.free = p
            .stake
            .free
            .checked_add(freed)
            .expect("BUG: stake exceeds u128");
        s.put_provider(p);
    }
    s.put_bond(&key, record.clone());
    s.record(
        now,
        RegistryEvent::Unbonded {
            provider: record.provider,
            amount: freed,
            key,
        },
    );
    Ok(freed)
}

/// `unjail`: a jailed provider whose stake is back at the minimum becomes
/// eligible again. Not jailed: nothing to do.
pub fn unjail(s: &mut State, caller: Principal, now: u64) -> Result<(), RegistryError> {
    require_authenticated(&caller)?;
    let mut p = registered(s, &caller)?;
    if !p.jailed {
        return Ok(());
    }
    if p.active_stake() < s.config().min_stake {
        return Err(RegistryError::InsufficientStake {
            available: p.active_stake(),
        });
    }
    p.jailed = false;
    s.put_provider(p);
    s.record(
        now,
        RegistryEvent::JailChanged {
            provider: caller,
            jailed: false,
        },
    );
    Ok(())
}

/// A provider's record with its pending operation.
pub fn get_provider(s: &State, id: &Principal) -> Option<Provider> {
    s.provider(id).map(|p| p.to_api(s.pending(id).as_ref()))
}

/// Why `p` may not take on work, if it may not.
pub fn ineligibility(s: &State, p: Option<&ProviderRecord>) -> Option<Ineligibility> {
    let p = match p {
        None => return Some(Ineligibility::NotRegistered),
        Some(p) => p,
    };
    if p.deregistered {
        return Some(Ineligibility::Deregistered);
    }
    if p.jailed {
        return Some(Ineligibility::Jailed);
    }
    let min_stake = s.config().min_stake;
    if p.active_stake() < min_stake || p.active_stake() == 0 {
        return Some(Ineligibility::BelowMinimumStake {
            stake: p.active_stake(),
            min_stake,
        });
    }
    None
}

/// Whether a provider may take on new work.
pub fn eligibility(s: &State, id: &Principal) -> Eligibility {
    let p = s.provider(id);
    Eligibility {
        ineligible: ineligibility(s, p.as_ref()),
        free_stake: p.map(|p| p.stake.free).unwrap_or(0),
    }
}

/// One page of providers matching the filter.
pub fn list_providers(s: &State, args: &ListProvidersArgs) -> ProviderPage {
    let limit = match args.limit {
        Some(0) | None => MAX_PAGE_LIMIT as usize,
        Some(n) => n.min(MAX_PAGE_LIMIT) as usize,
    };
    let mut providers = Vec::new();
    let mut last = None;
    let mut more = false;
    for (scanned, p) in s.providers_after(args.start_after.as_ref()).enumerate() {
        if providers.len() == limit || scanned == MAX_SCAN_PER_PAGE {
            more = true;
            break;
        }
        last = Some(p.id);
        let f = &args.filter;
        if f.active_only && ineligibility(s, Some(&p)).is_some() {
            continue;
        }
        if f.region.as_ref().is_some_and(|r| *r != p.profile.region) {
            continue;
        }
        if f.min_stake.is_some_and(|m| p.active_stake() < m) {
            continue;
        }
        providers.push(p.to_api(s.pending(&p.id).as_ref()));
    }
    ProviderPage {
        providers,
        next: if more { last } else { None },
    }
}

/// Where `provider`'s stake is held.
pub fn stake_account(registry: Principal, provider: &Principal) -> StakeAccount {
    let subaccount = stake_subaccount(provider);
    StakeAccount {
        account: Account {
            owner: registry,
            subaccount: Some(subaccount),
        },
        subaccount,
    }
}
