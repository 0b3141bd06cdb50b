//! The money-conservation audit: after any sequence of
//! operations, faults and upgrades, once retries have converged,
//!
//! - the ledger created and destroyed nothing: the sum of every account it
//!   ever touched equals its total supply, which equals what was minted minus
//!   what was burned and paid in fees;
//! - the escrow's main account holds exactly its liabilities (free,
//!   claimable, locked and pending balances), with no ledger call pending
//!   and nothing left un-notified in deposit subaccounts;
//! - the escrow's pending pay is what its events say: each lock holds, per
//!   provider, what its held releases put in less what was forfeited or
//!   paid at settle; each provider's pending balance is the sum of its
//!   pending pay over the locks, and the escrow's pending-pay gauge the sum
//!   over all of them;
//! - the market's fee each lock paid or holds is what the matcher recorded
//!   with its releases, less what forfeits returned; the fee held on
//!   pending pay is in the matcher's pending balance;
//! - each provider's stake account holds exactly its stake, with no ledger
//!   call pending;
//! - every escrow lock belongs to a job or reservation the matcher funded,
//!   and every such job has its lock: it paid out exactly the intervals the
//!   matcher recorded as paid and never more than it held, and it is settled
//!   exactly when the job is finished; the matcher's outbox is empty;
//! - the registry slashed each missed deadline at most once, only deadlines
//!   the matcher recorded, each for the amount the matcher recorded, to the
//!   job owner's deposit account, and, where the matcher's log has the
//!   assignment's price, never more than the matcher asked for (that price
//!   times `slash_multiple`, or `min_slash` if more); its slash counters
//!   and each provider's `slashed_total` add up to its `Slashed` events.
//!
//! [`MarketFixture::audit_in_flight`] checks the part of this that holds at every
//! moment, retries pending or not.

use crate::ledger_types::{ListBlocksArgs, ListBlocksResult, Operation};
use crate::{Error, MarketFixture, Result, nat};
use candid::{CandidType, Nat, Principal};
use market_api::escrow::{Balance, EscrowEvent, JobLock, PendingOperation};
use market_api::matcher::{Job, JobKind, MatcherEvent, MatcherInit, Reservation};
use market_api::registry::{ListProvidersArgs, Provider, ProviderPage, RegistryEvent};
use market_api::{Account, EventPage, HttpRequest, HttpResponse, JobId, PageRequest, Tokens};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};

/// Totals found by a passing [`MarketFixture::audit`] (or, for the fields it
/// checks, [`MarketFixture::audit_in_flight`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// The ledger's total supply.
    pub total_supply: Tokens,
    /// Minted so far.
    pub minted: Tokens,
    /// Burned and paid in fees so far.
    pub burned_and_fees: Tokens,
    /// What the escrow owes its users (only set by [`MarketFixture::audit`]).
    pub escrow_liabilities: Tokens,
    /// Stake held by the registry (only set by [`MarketFixture::audit`]).
    pub stakes: Tokens,
    /// Jobs and reservations whose locks were checked.
    pub jobs: usize,
    /// Intervals paid, over all jobs.
    pub released: Tokens,
    /// Pay held pending in the escrow's locks.
    pub pending: Tokens,
    /// The market's fee the locks paid or hold, over all jobs.
    pub market_fees: Tokens,
    /// Deadlines the matcher recorded as missed (its `DeadlineMissed`
    /// events, slashes that took nothing included).
    pub slashes: usize,
    /// Results that lost an audit (the matcher's `ResultRejected` events).
    pub rejected: usize,
    /// Stake taken by the registry's slashes (its `Slashed` events).
    pub slashed: Tokens,
    /// Locks the escrow made (its `Locked` events).
    pub locks: usize,
    /// What the escrow owes its users on each ledger besides the stake
    /// ledger (a market with [`crate::Settings::pricing`]), each ledger's
    /// conservation checked too (only set by [`MarketFixture::audit`]).
    pub other_liabilities: BTreeMap<Principal, Tokens>,
}

fn fail(what: impl Into<String>) -> Error {
    Error::Audit(what.into())
}

/// A metric's value in the ledger's smallest unit (exact below 2^53).
fn metric(text: &str, series: &str) -> Option<u128> {
    crate::metrics::metric_value(text, series).map(|v| v as u128)
}

/// The ledger's side of the audit, which holds at every moment (the ledger
/// never waits on another canister).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerAudit {
    /// Every account the ledger's log mentions, with its balance.
    pub balances: BTreeMap<Account, Tokens>,
    /// The ledger's total supply.
    pub total_supply: Tokens,
    /// Minted so far.
    pub minted: Tokens,
    /// Burned and paid in fees so far.
    pub burned_and_fees: Tokens,
}

/// What the matcher's event log says about jobs, payments and deadlines.
#[derive(Default)]
struct MatcherLog {
    /// Jobs and reservations whose lock the matcher confirmed, with the
    /// amount it locked first.
    funded: BTreeMap<JobId, Tokens>,
    /// Which of them are reservations.
    reservations: BTreeSet<JobId>,
    /// Intervals paid per job.
    paid: BTreeMap<JobId, Tokens>,
    /// Fuel paid per job and provider (into its pending balance).
    fuel_paid: BTreeMap<(JobId, Principal), Tokens>,
    /// The market's fee paid with intervals, per job.
    interval_fees: BTreeMap<JobId, Tokens>,
    /// The market's fee held with fuel pay, per job and provider.
    fuel_fees: BTreeMap<(JobId, Principal), Tokens>,
    /// Providers whose pending pay for a job was forfeited (a provider
    /// never holds a job again once it failed it).
    forfeited: BTreeSet<(JobId, Principal)>,
    /// Assignments whose bond held: (job, attempt) to (provider, price,
    /// and what the attempt is worth in e8s of the stake ledger, when the
    /// event says).
    assigned: BTreeMap<(JobId, u32), (Principal, Tokens, Option<Tokens>)>,
    /// Missed deadlines: (job, attempt) to (provider, amount slashed).
    missed: BTreeMap<(JobId, u32), (Principal, Tokens)>,
    /// Results that lost an audit: (job or audit run, attempt) to
    /// (provider, amount slashed).
    rejected: BTreeMap<(JobId, u32), (Principal, Tokens)>,
    /// Jobs whose lock the matcher saw settled.
    finished: BTreeSet<JobId>,
}

impl MatcherLog {
    /// What the matcher recorded as paid for a job and not forfeited:
    /// intervals, and fuel of the providers that kept their pay.
    fn recorded_pay(&self, job: JobId) -> Tokens {
        let fuel: Tokens = self
            .fuel_paid
            .range((job, Principal::management_canister())..)
            .take_while(|((j, _), _)| *j == job)
            .filter(|(key, _)| !self.forfeited.contains(key))
            .map(|(_, a)| *a)
            .sum();
        self.paid.get(&job).copied().unwrap_or(0) + fuel
    }

    /// The market's fee the matcher recorded for a job and not forfeited.
    fn recorded_fees(&self, job: JobId) -> Tokens {
        let fuel: Tokens = self
            .fuel_fees
            .range((job, Principal::management_canister())..)
            .take_while(|((j, _), _)| *j == job)
            .filter(|(key, _)| !self.forfeited.contains(key))
            .map(|(_, a)| *a)
            .sum();
        self.interval_fees.get(&job).copied().unwrap_or(0) + fuel
    }
}

/// One `Slashed` event of the registry.
struct RegistrySlash {
    key: String,
    provider: Principal,
    amount: Tokens,
    beneficiary: Account,
}

/// What a slash was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SlashFor {
    /// A missed deadline: key `job/<job>/slash/<attempt>`.
    Deadline,
    /// A result that lost its audit: key `job/<job>/caught/<attempt>`.
    Caught,
}

/// The (job, attempt) a slash key names, and what the slash was for.
fn slash_deadline(key: &str) -> Option<(JobId, u32, SlashFor)> {
    let rest = key.strip_prefix("job/")?;
    let (job, attempt, what) = match rest.split_once("/slash/") {
        Some((job, attempt)) => (job, attempt, SlashFor::Deadline),
        None => {
            let (job, attempt) = rest.split_once("/caught/")?;
            (job, attempt, SlashFor::Caught)
        }
    };
    Some((job.parse().ok()?, attempt.parse().ok()?, what))
}

/// The bond of an attempt worth `value` (in e8s of the stake ledger) of a
/// fuel-billed job (or audit run): what a result that loses its audit is
/// slashed, never less than the smallest slash (the matcher's rule,
/// restated).
fn audited_bond(job: &Job, value: Tokens, config: &MatcherInit) -> Tokens {
    let ppm = match job.kind {
        JobKind::Audit { .. } => 0,
        _ => job
            .spec
            .audit_ppm
            .unwrap_or(0)
            .max(config.min_audit_ppm())
            .min(market_api::matcher::AUDIT_ALWAYS_PPM),
    };
    let by_audit = match ppm {
        0 => 0,
        ppm => value
            .saturating_mul(Tokens::from(market_api::matcher::AUDIT_ALWAYS_PPM))
            .div_ceil(Tokens::from(ppm)),
    };
    value
        .saturating_mul(Tokens::from(config.bond_multiple))
        .max(by_audit)
        .max(config.min_slash())
}

/// Adds `amount` (or takes it away, if `add` is false) to `provider`'s
/// pending pay in `lock`, keeping the list in the escrow's order (by
/// principal, no zero amounts).
fn move_pending(lock: &mut JobLock, provider: Principal, amount: Tokens, add: bool) {
    let i = match lock.pending.binary_search_by_key(&provider, |(p, _)| *p) {
        Ok(i) => i,
        Err(i) => {
            lock.pending.insert(i, (provider, 0));
            i
        }
    };
    let held = &mut lock.pending[i].1;
    *held = if add {
        *held + amount
    } else {
        held.saturating_sub(amount)
    };
    if *held == 0 {
        lock.pending.remove(i);
    }
}

/// Every lock as the escrow's events tell it, by job key.
fn logged_locks(events: &[EscrowEvent]) -> BTreeMap<String, JobLock> {
    let mut locks: BTreeMap<String, JobLock> = BTreeMap::new();
    let mut fees: BTreeMap<String, Tokens> = BTreeMap::new();
    for e in events {
        match e {
            EscrowEvent::Locked {
                job_key,
                buyer,
                ledger,
                amount,
            } => {
                locks.insert(
                    job_key.clone(),
                    JobLock {
                        job_key: job_key.clone(),
                        buyer: *buyer,
                        ledger: *ledger,
                        total: *amount,
                        released: 0,
                        remaining: *amount,
                        refunded: 0,
                        settled: false,
                        storage_fee: 0,
                        pending: vec![],
                        fee_paid: 0,
                        fee_pending: 0,
                    },
                );
            }
            EscrowEvent::StorageFeePaid {
                job_key, amount, ..
            } => {
                fees.insert(job_key.clone(), *amount);
            }
            EscrowEvent::LockExtended {
                job_key, amount, ..
            } => {
                if let Some(l) = locks.get_mut(job_key) {
                    l.total += amount;
                    l.remaining += amount;
                }
            }
            EscrowEvent::Released {
                job_key,
                provider,
                amount,
                hold,
                fee,
                ..
            } => {
                if let Some(l) = locks.get_mut(job_key) {
                    if *hold {
                        move_pending(l, *provider, *amount, true);
                        l.fee_pending += fee;
                    } else {
                        l.released += amount;
                        l.fee_paid += fee;
                    }
                    l.remaining = l.remaining.saturating_sub(*amount + *fee);
                }
            }
            EscrowEvent::Forfeited {
                job_key,
                provider,
                amount,
                fee,
                ..
            } => {
                if let Some(l) = locks.get_mut(job_key) {
                    move_pending(l, *provider, *amount, false);
                    l.fee_pending = l.fee_pending.saturating_sub(*fee);
                    l.remaining += amount + fee;
                }
            }
            EscrowEvent::FeePaid {
                job_key, amount, ..
            } => {
                if let Some(l) = locks.get_mut(job_key) {
                    l.fee_pending = l.fee_pending.saturating_sub(*amount);
                    l.fee_paid += amount;
                }
            }
            EscrowEvent::PendingPaid {
                job_key,
                provider,
                amount,
                ..
            } => {
                if let Some(l) = locks.get_mut(job_key) {
                    move_pending(l, *provider, *amount, false);
                    l.released += amount;
                }
            }
            EscrowEvent::Settled {
                job_key, refunded, ..
            } => {
                if let Some(l) = locks.get_mut(job_key) {
                    l.refunded = *refunded;
                    l.remaining = l.remaining.saturating_sub(*refunded);
                    l.settled = true;
                }
            }
            _ => {}
        }
    }
    for (job_key, fee) in fees {
        if let Some(l) = locks.get_mut(&job_key) {
            l.storage_fee = fee;
        }
    }
    locks
}

/// The job a lock key names: the matcher locks under `job/<job>`.
fn lock_job(key: &str) -> Option<JobId> {
    key.strip_prefix("job/")?.parse().ok()
}

impl MarketFixture {
    /// A canister's `/metrics` text.
    pub fn metrics(&self, canister: Principal) -> Result<String> {
        let req = HttpRequest {
            method: "GET".into(),
            url: "/metrics".into(),
            headers: vec![],
            body: vec![],
        };
        let resp: HttpResponse = self.query(canister, "http_request", &req)?;
        String::from_utf8(resp.body).map_err(|_| fail("metrics are not UTF-8"))
    }

    /// Every event of a canister's log, in order: the archived ones typed
    /// from the blocks its archives serve (followed from its
    /// `icrc3_get_blocks`), then those its `get_events` serves.
    pub fn events<E: CandidType + DeserializeOwned>(&self, canister: Principal) -> Result<Vec<E>> {
        let first_local = self
            .query::<_, EventPage<E>>(canister, "get_events", &PageRequest::default())?
            .events
            .first()
            .map(|e| e.seq);
        let mut out = self.archived_events(canister, first_local.unwrap_or(0))?;
        let mut start = Some(0u64);
        while let Some(s) = start {
            let page: EventPage<E> = self.query(
                canister,
                "get_events",
                &PageRequest {
                    start: Some(s),
                    limit: None,
                },
            )?;
            out.extend(page.events.into_iter().map(|e| e.event));
            start = page.next;
        }
        Ok(out)
    }

    /// The events `0..end` of a canister's log that its archives hold,
    /// typed from their blocks.
    fn archived_events<E: CandidType + DeserializeOwned>(
        &self,
        canister: Principal,
        end: u64,
    ) -> Result<Vec<E>> {
        use market_api::blocks::{GetBlocksRequest, GetBlocksResult, from_value};
        let mut out = vec![];
        while (out.len() as u64) < end {
            let next = out.len() as u64;
            let page: GetBlocksResult = self.query(
                canister,
                "icrc3_get_blocks",
                &vec![GetBlocksRequest {
                    start: next.into(),
                    length: (end - next).into(),
                }],
            )?;
            let Some(archived) = page.archived_blocks.into_iter().next() else {
                return Err(fail(format!(
                    "{canister}: block {next} is neither local nor archived"
                )));
            };
            let blocks: GetBlocksResult = self.query(
                archived.callback.canister_id,
                &archived.callback.method,
                &archived.args,
            )?;
            let before = out.len();
            for block in blocks.blocks {
                if block.id != out.len() as u64 {
                    break;
                }
                let parts = market_api::blocks::block_parts(&block.block)
                    .map_err(|e| fail(format!("{canister}: archived block: {e}")))?;
                out.push(
                    from_value(parts.ev)
                        .map_err(|e| fail(format!("{canister}: archived event: {e}")))?,
                );
            }
            if out.len() == before {
                return Err(fail(format!("{canister}: its archive lacks block {next}")));
            }
        }
        Ok(out)
    }

    /// Every provider the registry knows.
    fn providers(&self) -> Result<Vec<Provider>> {
        let mut out = vec![];
        let mut start_after = None;
        loop {
            let page: ProviderPage = self.query(
                self.ids.registry,
                "list_providers",
                &ListProvidersArgs {
                    start_after,
                    ..Default::default()
                },
            )?;
            out.extend(page.providers);
            start_after = page.next;
            if start_after.is_none() {
                return Ok(out);
            }
        }
    }

    /// Every account the ledger's log mentions, with what was minted and
    /// what was burned or paid in fees.
    fn ledger_accounts(&self, ledger: Principal) -> Result<(BTreeSet<Account>, Tokens, Tokens)> {
        let (mut accounts, mut minted, mut gone) = (BTreeSet::new(), 0u128, 0u128);
        let mut start = 0u64;
        loop {
            let page: ListBlocksResult = self.query(
                ledger,
                "list_blocks",
                &ListBlocksArgs {
                    start,
                    length: 1000,
                },
            )?;
            for b in &page.blocks {
                match &b.operation {
                    Operation::Mint { to, amount } => {
                        accounts.insert(*to);
                        minted += u128::from(*amount);
                    }
                    Operation::Burn { from, amount, .. } => {
                        accounts.insert(*from);
                        gone += u128::from(*amount);
                    }
                    Operation::Transfer { from, to, fee, .. } => {
                        accounts.insert(*from);
                        accounts.insert(*to);
                        gone += u128::from(*fee);
                    }
                    Operation::Approve { from, fee, .. } => {
                        accounts.insert(*from);
                        gone += u128::from(*fee);
                    }
                }
            }
            start += page.blocks.len() as u64;
            if page.blocks.is_empty() || start >= page.log_length {
                break;
            }
        }
        Ok((accounts, minted, gone))
    }

    /// Steps waiting in the matcher's outbox.
    pub fn outbox_steps(&self) -> Result<u128> {
        let text = self.metrics(self.ids.matcher)?;
        Ok(metric(&text, "matcher_outbox_steps").unwrap_or(0))
    }

    /// The ledger created and destroyed nothing: its accounts sum to its
    /// total supply, which is what was minted less burns and fees. Holds at
    /// any moment, retries pending or not.
    pub fn audit_ledger(&self) -> Result<LedgerAudit> {
        self.audit_ledger_on(self.ids.ledger)
    }

    /// [`MarketFixture::audit_ledger`] of any ledger the market uses.
    pub fn audit_ledger_on(&self, ledger: Principal) -> Result<LedgerAudit> {
        let (accounts, minted, gone) = self.ledger_accounts(ledger)?;
        let supply: Nat = self.query(ledger, "icrc1_total_supply", &())?;
        let total_supply = nat(&supply);
        let mut balances = BTreeMap::new();
        for a in &accounts {
            balances.insert(*a, self.balance_on(ledger, *a)?);
        }
        let sum: Tokens = balances.values().sum();
        if sum != total_supply || minted.checked_sub(gone) != Some(total_supply) {
            return Err(fail(format!(
                "ledger {ledger}: accounts hold {sum}, total supply {total_supply}, minted {minted} less burned and fees {gone}"
            )));
        }
        Ok(LedgerAudit {
            balances,
            total_supply,
            minted,
            burned_and_fees: gone,
        })
    }

    /// The matcher's event log, read once; fails if it records one deadline
    /// as missed twice.
    fn matcher_log(&self) -> Result<MatcherLog> {
        let mut log = MatcherLog::default();
        for e in self.events::<MatcherEvent>(self.ids.matcher)? {
            match e {
                MatcherEvent::JobSubmitted {
                    job_id, max_cost, ..
                } => {
                    log.funded.insert(job_id, max_cost);
                }
                MatcherEvent::ReservationMade {
                    reservation,
                    locked,
                    ..
                } => {
                    log.funded.insert(reservation, locked);
                    log.reservations.insert(reservation);
                }
                MatcherEvent::IntervalPaid {
                    job_id,
                    amount,
                    fee,
                    ..
                } => {
                    *log.paid.entry(job_id).or_default() += amount;
                    *log.interval_fees.entry(job_id).or_default() += fee;
                }
                MatcherEvent::FuelPaid {
                    job_id,
                    provider,
                    amount,
                    fee,
                    ..
                } => {
                    *log.fuel_paid.entry((job_id, provider)).or_default() += amount;
                    *log.fuel_fees.entry((job_id, provider)).or_default() += fee;
                }
                MatcherEvent::PayForfeited {
                    job_id, provider, ..
                } => {
                    log.forfeited.insert((job_id, provider));
                }
                MatcherEvent::JobAssigned {
                    job_id,
                    provider,
                    attempt,
                    price,
                    stake_value,
                    ..
                } => {
                    log.assigned
                        .insert((job_id, attempt), (provider, price, stake_value));
                }
                MatcherEvent::JobFinished { job_id, .. } => {
                    log.finished.insert(job_id);
                }
                MatcherEvent::DeadlineMissed {
                    job_id,
                    provider,
                    attempt,
                    slashed,
                } if log
                    .missed
                    .insert((job_id, attempt), (provider, slashed))
                    .is_some() =>
                {
                    return Err(fail(format!(
                        "matcher: job {job_id} attempt {attempt} slashed twice"
                    )));
                }
                MatcherEvent::ResultRejected {
                    job_id,
                    provider,
                    attempt,
                    slashed,
                } if log
                    .rejected
                    .insert((job_id, attempt), (provider, slashed))
                    .is_some() =>
                {
                    return Err(fail(format!(
                        "matcher: job {job_id} attempt {attempt} rejected twice"
                    )));
                }
                _ => {}
            }
        }
        Ok(log)
    }

    /// The registry's slashes against the matcher's deadlines, in the part
    /// that holds at any moment: one slash per key and per deadline, each
    /// naming a deadline of a job the matcher knows, taking no more than
    /// the matcher asked (where its log has the assignment's price), paid
    /// to the job owner's deposit account; every
    /// slash the matcher recorded is the registry's, for the same provider
    /// and amount; the registry's counters and providers' totals add up.
    /// With `converged`, the registry must also hold no slash the matcher
    /// has not recorded.
    fn check_slashes(
        &self,
        log: &MatcherLog,
        providers: &[Provider],
        audit: &mut Audit,
        converged: bool,
    ) -> Result<()> {
        let ids = self.ids;
        let mut by_deadline: BTreeMap<(JobId, u32, SlashFor), RegistrySlash> = BTreeMap::new();
        let mut per_provider: BTreeMap<Principal, Tokens> = BTreeMap::new();
        let mut keys = BTreeSet::new();
        for e in self.events::<RegistryEvent>(ids.registry)? {
            let RegistryEvent::Slashed {
                key,
                provider,
                amount,
                beneficiary,
                ..
            } = e
            else {
                continue;
            };
            if !keys.insert(key.clone()) {
                return Err(fail(format!("registry: slashed twice under key {key}")));
            }
            let deadline = slash_deadline(&key)
                .ok_or_else(|| fail(format!("registry: slash under key {key}, no deadline")))?;
            *per_provider.entry(provider).or_default() += amount;
            audit.slashed += amount;
            let slash = RegistrySlash {
                key,
                provider,
                amount,
                beneficiary,
            };
            if let Some(first) = by_deadline.insert(deadline, slash) {
                return Err(fail(format!(
                    "registry: job {} attempt {} slashed twice for {:?} (keys {} and {})",
                    deadline.0, deadline.1, deadline.2, first.key, by_deadline[&deadline].key
                )));
            }
        }

        let text = self.metrics(ids.registry)?;
        let total = metric(&text, "registry_slashed_e8s_total").unwrap_or(0);
        let count = metric(&text, "registry_slashes_total").unwrap_or(0);
        if total != audit.slashed || count != by_deadline.len() as u128 {
            return Err(fail(format!(
                "registry: counters say {count} slashes of {total}, its log {} of {}",
                by_deadline.len(),
                audit.slashed
            )));
        }
        for p in providers {
            let logged = per_provider.get(&p.id).copied().unwrap_or(0);
            if p.slashed_total != logged {
                return Err(fail(format!(
                    "registry: {} has slashed_total {}, its Slashed events {logged}",
                    p.id, p.slashed_total
                )));
            }
        }

        let config: MatcherInit = self.query(ids.matcher, "get_config", &())?;
        for (&(job_id, attempt, what), s) in &by_deadline {
            let job: Option<Job> = self.query(ids.matcher, "get_job", &job_id)?;
            let job = job.ok_or_else(|| {
                fail(format!(
                    "registry: slash {} of a job the matcher doesn't know",
                    s.key
                ))
            })?;
            let owed_to = Account {
                owner: ids.escrow,
                subaccount: market_api::escrow::deposit_subaccount(job.owner),
            };
            if s.beneficiary != owed_to {
                return Err(fail(format!(
                    "registry: slash {} paid {:?}, not job {job_id}'s owner's deposit account",
                    s.key, s.beneficiary
                )));
            }
            if let Some(&(provider, price, stake_value)) = log.assigned.get(&(job_id, attempt)) {
                // A one-off job's slash is measured against its value (its
                // fuel budget at the agreed price), a slot's against its
                // price per interval, both in e8s of the stake ledger (as
                // the event says; events from before it said were of jobs
                // paid in that ledger).
                let measure = stake_value.unwrap_or_else(|| match job.kind {
                    JobKind::OneOff | JobKind::Audit { .. } => {
                        market_api::matcher::fuel_cost(job.spec.limits.fuel, price)
                            .unwrap_or(Tokens::MAX)
                    }
                    _ => price,
                });
                let asked = match what {
                    SlashFor::Deadline => measure
                        .saturating_mul(Tokens::from(config.slash_multiple))
                        .max(config.min_slash()),
                    SlashFor::Caught => audited_bond(&job, measure, &config),
                };
                if provider != s.provider || s.amount > asked {
                    return Err(fail(format!(
                        "registry: slash {} took {} from {}; the matcher assigned attempt {attempt} to {provider} at {price}, so asked {asked}",
                        s.key, s.amount, s.provider
                    )));
                }
            }
            let recorded = match what {
                SlashFor::Deadline => log.missed.get(&(job_id, attempt)),
                SlashFor::Caught => log.rejected.get(&(job_id, attempt)),
            };
            match recorded {
                Some(&(provider, slashed)) if provider != s.provider || slashed != s.amount => {
                    return Err(fail(format!(
                        "registry: slash {} took {} from {}, the matcher recorded {slashed} from {provider}",
                        s.key, s.amount, s.provider
                    )));
                }
                None if converged => {
                    return Err(fail(format!(
                        "registry: slash {} took {} from {}, which the matcher never recorded",
                        s.key, s.amount, s.provider
                    )));
                }
                _ => {}
            }
        }
        let recorded = [
            (SlashFor::Deadline, &log.missed),
            (SlashFor::Caught, &log.rejected),
        ];
        for (what, slashes) in recorded {
            for (&(job_id, attempt), &(provider, slashed)) in slashes {
                if slashed > 0 && !by_deadline.contains_key(&(job_id, attempt, what)) {
                    return Err(fail(format!(
                        "matcher: job {job_id} attempt {attempt} slashed {slashed} from {provider} ({what:?}), but the registry has no such slash"
                    )));
                }
            }
        }
        audit.slashes = log.missed.len();
        audit.rejected = log.rejected.len();
        Ok(())
    }

    /// Every escrow lock against the matcher's jobs, in the part that holds
    /// at any moment: the escrow's log lists every lock once (its `Locked`
    /// events match its lock count), each lock's key names a job or
    /// reservation the matcher knows, of the same buyer and ledger, and no
    /// lock paid out more than it held. With `converged`, each lock must
    /// also belong to a job or reservation the matcher funded, for the
    /// amount it asked. Returns the locks by job.
    fn check_locks(
        &self,
        log: &MatcherLog,
        audit: &mut Audit,
        converged: bool,
    ) -> Result<BTreeMap<JobId, JobLock>> {
        let ids = self.ids;
        let mut locks = BTreeMap::new();
        let events = self.events::<EscrowEvent>(ids.escrow)?;
        let logged = logged_locks(&events);
        let mut kept = 0usize;
        for e in &events {
            let &EscrowEvent::Locked {
                ref job_key,
                buyer,
                ledger,
                amount,
            } = e
            else {
                continue;
            };
            let id = lock_job(job_key)
                .ok_or_else(|| fail(format!("escrow: lock {job_key} names no matcher job")))?;
            let lock: Option<JobLock> = self.query(ids.escrow, "get_lock", job_key)?;
            let lock = match lock {
                Some(lock) => {
                    kept += 1;
                    lock
                }
                // A settled lock is deleted after its retention; its events
                // stay and tell what it held.
                None => logged
                    .get(job_key)
                    .filter(|l| l.settled)
                    .cloned()
                    .ok_or_else(|| fail(format!("escrow: lock {job_key} logged, not kept")))?,
            };
            let pending: Tokens = lock.pending.iter().map(|(_, a)| a).sum();
            if lock.released + pending + lock.fee_paid + lock.fee_pending + lock.refunded
                > lock.total
            {
                return Err(fail(format!(
                    "escrow: lock {job_key} paid, held and refunded more than it held: {lock:?}"
                )));
            }
            let logged_pending = logged.get(job_key).map(|l| &l.pending);
            if logged_pending != Some(&lock.pending) {
                return Err(fail(format!(
                    "escrow: lock {job_key} holds pending pay {:?}, its events say {logged_pending:?}",
                    lock.pending
                )));
            }
            let logged_fees = logged.get(job_key).map(|l| (l.fee_paid, l.fee_pending));
            if logged_fees != Some((lock.fee_paid, lock.fee_pending)) {
                return Err(fail(format!(
                    "escrow: lock {job_key} paid and holds the market's fee ({}, {}), its events say {logged_fees:?}",
                    lock.fee_paid, lock.fee_pending
                )));
            }
            let job: Option<Job> = self.query(ids.matcher, "get_job", &id)?;
            let Some(job) = job else {
                // A finished job is deleted after its retention period; its
                // events stay, and its lock must have been settled in full.
                let settled = lock.released + lock.fee_paid + lock.refunded == lock.total;
                if !(log.finished.contains(&id) && settled) {
                    return Err(fail(format!(
                        "escrow: lock {job_key} holds {amount} of {buyer}'s for a job the matcher doesn't have"
                    )));
                }
                if locks.insert(id, lock).is_some() {
                    return Err(fail(format!("escrow: {job_key} locked twice")));
                }
                continue;
            };
            if !matches!(job.kind, JobKind::OneOff | JobKind::Reservation)
                || job.owner != buyer
                || job.spec.ledger != ledger
            {
                return Err(fail(format!(
                    "escrow: lock {job_key} of {buyer} on {ledger} belongs to no job of theirs: the matcher has {:?} of {} on {}",
                    job.kind, job.owner, job.spec.ledger
                )));
            }
            if converged && log.funded.get(&id) != Some(&amount) {
                return Err(fail(format!(
                    "escrow: lock {job_key} holds {amount} of {buyer}'s, but the matcher funded {:?} for it",
                    log.funded.get(&id)
                )));
            }
            if locks.insert(id, lock).is_some() {
                return Err(fail(format!("escrow: {job_key} locked twice")));
            }
        }
        let text = self.metrics(ids.escrow)?;
        let count = metric(&text, "escrow_locks").unwrap_or(0);
        if count != kept as u128 {
            return Err(fail(format!(
                "escrow: {count} locks, but {kept} of those in its log are kept"
            )));
        }
        audit.pending = self.check_pending(&events, &logged, &text)?;
        audit.locks = locks.len();
        Ok(locks)
    }

    /// The escrow's pending pay against its events: per (provider,
    /// ledger), the pending balance is the sum of its pending pay in the
    /// locks as the events tell them, for every provider an event names;
    /// per ledger, the `escrow_pending_pay` gauge is the sum over all locks.
    /// Returns the pending pay on the market's ledger.
    fn check_pending(
        &self,
        events: &[EscrowEvent],
        logged: &BTreeMap<String, JobLock>,
        metrics: &str,
    ) -> Result<Tokens> {
        let mut per_payee: BTreeMap<(Principal, Principal), Tokens> = BTreeMap::new();
        for e in events {
            if let EscrowEvent::Released {
                provider, job_key, ..
            }
            | EscrowEvent::Forfeited {
                provider, job_key, ..
            }
            | EscrowEvent::PendingPaid {
                provider, job_key, ..
            } = e
                && let Some(l) = logged.get(job_key)
            {
                per_payee.entry((*provider, l.ledger)).or_default();
            }
        }
        let mut per_ledger: BTreeMap<Principal, Tokens> = BTreeMap::new();
        for l in logged.values() {
            for (provider, amount) in &l.pending {
                *per_payee.entry((*provider, l.ledger)).or_default() += amount;
                *per_ledger.entry(l.ledger).or_default() += amount;
            }
            // The market's fee on pending pay is held in the matcher's
            // pending balance.
            *per_payee.entry((self.ids.matcher, l.ledger)).or_default() += l.fee_pending;
            *per_ledger.entry(l.ledger).or_default() += l.fee_pending;
        }
        for ((provider, ledger), logged_pending) in per_payee {
            let (b,): (Balance,) =
                self.query_args(self.ids.escrow, "balance_of", (provider, ledger))?;
            if b.pending != logged_pending {
                return Err(fail(format!(
                    "escrow: {provider} has {} pending on {ledger}, its locks' events say {logged_pending}",
                    b.pending
                )));
            }
        }
        let ledger = self.ids.ledger;
        let logged_total = per_ledger.get(&ledger).copied().unwrap_or(0);
        let prefix = format!("escrow_pending_pay{{ledger=\"{ledger}\"");
        let gauge =
            metric(metrics, &prefix).ok_or_else(|| fail("escrow: no pending pay metric"))?;
        if gauge != logged_total {
            return Err(fail(format!(
                "escrow: {gauge} pending pay on {ledger}, its locks' events say {logged_total}"
            )));
        }
        Ok(logged_total)
    }

    /// What holds at every moment, even with retries pending and calls
    /// lost: the ledger's conservation ([`MarketFixture::audit_ledger`]), the
    /// registry's slashes against the matcher's deadlines, and the escrow's
    /// locks against the matcher's jobs (see the module docs).
    pub fn audit_in_flight(&self) -> Result<Audit> {
        let ledger = self.audit_ledger()?;
        if let Some(p) = self.pricing {
            for l in [p.cycles_ledger, p.eth_ledger, p.unrated_ledger] {
                self.audit_ledger_on(l)?;
            }
        }
        let mut audit = Audit {
            total_supply: ledger.total_supply,
            minted: ledger.minted,
            burned_and_fees: ledger.burned_and_fees,
            ..Audit::default()
        };
        let log = self.matcher_log()?;
        let providers = self.providers()?;
        self.check_slashes(&log, &providers, &mut audit, false)?;
        self.check_locks(&log, &mut audit, false)?;
        Ok(audit)
    }

    /// Checks the conservation invariant across the ledger and all three
    /// canisters (see the module docs). Call it once the marketplace is
    /// quiet: pending retries make it fail, naming what is pending.
    pub fn audit(&self) -> Result<Audit> {
        let ids = self.ids;
        let ledger = self.audit_ledger()?;
        let balances = ledger.balances;
        let mut audit = Audit {
            total_supply: ledger.total_supply,
            minted: ledger.minted,
            burned_and_fees: ledger.burned_and_fees,
            ..Audit::default()
        };

        // The escrow.
        let pending: Vec<PendingOperation> =
            self.query(ids.escrow, "pending_operations", &PageRequest::default())?;
        if !pending.is_empty() {
            return Err(fail(format!("escrow: ledger calls pending: {pending:?}")));
        }
        let text = self.metrics(ids.escrow)?;
        audit.escrow_liabilities = escrow_holdings(&text, ids.escrow, ids.ledger, &balances)?;
        if let Some(p) = self.pricing {
            for l in [p.cycles_ledger, p.eth_ledger, p.unrated_ledger] {
                let on = self.audit_ledger_on(l)?;
                let owed = escrow_holdings(&text, ids.escrow, l, &on.balances)?;
                audit.other_liabilities.insert(l, owed);
            }
        }

        // The registry.
        let registry_held: Tokens = balances
            .iter()
            .filter(|(a, _)| a.owner == ids.registry)
            .map(|(_, b)| b)
            .sum();
        let providers = self.providers()?;
        for p in &providers {
            if let Some(op) = &p.pending_operation {
                return Err(fail(format!("registry: {} has {op:?} pending", p.id)));
            }
            audit.stakes += p.stake.free
                + p.stake.bonded
                + p.stake.unbonding.iter().map(|u| u.amount).sum::<Tokens>();
        }
        if registry_held != audit.stakes {
            return Err(fail(format!(
                "registry: its accounts hold {registry_held}, stakes are {}",
                audit.stakes
            )));
        }

        // The matcher, the registry's slashes and the escrow's locks.
        let steps = self.outbox_steps()?;
        if steps != 0 {
            return Err(fail(format!("matcher: {steps} outbox steps pending")));
        }
        let log = self.matcher_log()?;
        self.check_slashes(&log, &providers, &mut audit, true)?;
        let locks = self.check_locks(&log, &mut audit, true)?;
        for id in log.funded.keys() {
            let lock = locks
                .get(id)
                .ok_or_else(|| fail(format!("job {id}: no escrow lock")))?;
            let recorded = log.recorded_pay(*id);
            let pending: Tokens = lock.pending.iter().map(|(_, a)| *a).sum();
            let paid = lock.released + pending;
            if paid != recorded || paid > lock.total {
                return Err(fail(format!(
                    "job {id}: escrow paid {} and holds {pending} pending of {}, matcher recorded {recorded} paid",
                    lock.released, lock.total
                )));
            }
            let fees = lock.fee_paid + lock.fee_pending;
            let recorded_fees = log.recorded_fees(*id);
            if fees != recorded_fees {
                return Err(fail(format!(
                    "job {id}: escrow paid {} and holds {} of the market's fee, matcher recorded {recorded_fees}",
                    lock.fee_paid, lock.fee_pending
                )));
            }
            audit.market_fees += fees;
            let job: Option<Job> = self.query(ids.matcher, "get_job", id)?;
            let Some(job) = job else {
                // Deleted after its retention: it must have finished, and
                // its lock been settled.
                if !(log.finished.contains(id) && lock.settled) {
                    return Err(fail(format!("job {id}: unknown to the matcher")));
                }
                audit.released += lock.released;
                continue;
            };
            if job.status.is_terminal() != lock.settled {
                return Err(fail(format!(
                    "job {id}: status {:?} but lock settled = {}",
                    job.status, lock.settled
                )));
            }
            if lock.settled && lock.released + lock.fee_paid + lock.refunded != lock.total {
                return Err(fail(format!(
                    "job {id}: settled lock {lock:?} doesn't add up"
                )));
            }
            if log.reservations.contains(id) {
                // A reservation's slots draw on its lock: what they show as
                // paid is what the escrow released, and its extensions are
                // all in the lock.
                let r: Option<Reservation> = self.query(ids.matcher, "get_reservation", id)?;
                let r = r.ok_or_else(|| fail(format!("reservation {id}: unknown")))?;
                if r.paid != lock.released || r.locked != lock.total {
                    return Err(fail(format!(
                        "reservation {id}: paid {} of {} locked, but the escrow's lock {lock:?}",
                        r.paid, r.locked
                    )));
                }
            }
            audit.released += lock.released;
        }
        audit.jobs = log.funded.len();
        Ok(audit)
    }
}

/// What the escrow owes its users on `ledger` (its liabilities metric),
/// checked against what its main account on that ledger holds; nothing may
/// sit in its deposit accounts unnotified.
fn escrow_holdings(
    metrics: &str,
    escrow: Principal,
    ledger: Principal,
    balances: &BTreeMap<Account, Tokens>,
) -> Result<Tokens> {
    let prefix = format!("escrow_liabilities{{ledger=\"{ledger}\"");
    let owed = metric(metrics, &prefix)
        .ok_or_else(|| fail(format!("escrow: no liabilities metric on {ledger}")))?;
    let main = balances.get(&crate::account(escrow)).copied().unwrap_or(0);
    if main != owed {
        return Err(fail(format!(
            "escrow: main account on {ledger} holds {main}, liabilities are {owed}"
        )));
    }
    let unnotified: Tokens = balances
        .iter()
        .filter(|(a, _)| a.owner == escrow && a.subaccount.is_some())
        .map(|(_, b)| b)
        .sum();
    if unnotified != 0 {
        return Err(fail(format!(
            "escrow: {unnotified} sits in deposit accounts, not notified (ledger {ledger})"
        )));
    }
    Ok(owed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 10])
    }

    #[test]
    fn locks_are_rebuilt_from_events_with_their_pending_pay() {
        let (buyer, ledger, a, b) = (p(1), p(2), p(3), p(4));
        let key = || "job/1".to_string();
        let released = |seq, provider, amount, hold| EscrowEvent::Released {
            job_key: key(),
            seq,
            provider,
            amount,
            hold,
            fee: 0,
        };
        let mut events = vec![
            EscrowEvent::Locked {
                job_key: key(),
                buyer,
                ledger,
                amount: 1_000,
            },
            released(0, b, 100, true),
            released(1, a, 50, true),
            released(2, b, 10, false),
            released(3, b, 20, true),
        ];
        let lock = &logged_locks(&events)[&key()];
        assert_eq!(lock.pending, vec![(a, 50), (b, 120)]);
        assert_eq!((lock.released, lock.remaining), (10, 820));

        events.push(EscrowEvent::Forfeited {
            job_key: key(),
            provider: b,
            ledger,
            amount: 120,
            fee: 0,
        });
        let lock = &logged_locks(&events)[&key()];
        assert_eq!(lock.pending, vec![(a, 50)]);
        assert_eq!((lock.released, lock.remaining), (10, 940));

        events.push(EscrowEvent::PendingPaid {
            job_key: key(),
            provider: a,
            ledger,
            amount: 50,
        });
        events.push(EscrowEvent::Settled {
            job_key: key(),
            buyer,
            refunded: 940,
        });
        let lock = &logged_locks(&events)[&key()];
        assert_eq!(lock.pending, vec![]);
        assert_eq!(
            (lock.released, lock.remaining, lock.refunded, lock.settled),
            (60, 0, 940, true)
        );
    }
}
