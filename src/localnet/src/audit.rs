//! The money-conservation audit (DESIGN.md, Money): after any sequence of
//! operations, faults and upgrades, once retries have converged,
//!
//! - the ledger created and destroyed nothing: the sum of every account it
//!   ever touched equals its total supply, which equals what was minted minus
//!   what was burned and paid in fees;
//! - the escrow's main account holds exactly its liabilities (free,
//!   claimable and locked balances), with no ledger call pending and nothing
//!   left un-notified in deposit subaccounts;
//! - each provider's stake account holds exactly its stake, with no ledger
//!   call pending;
//! - every job's escrow lock paid out exactly the intervals the matcher
//!   recorded as paid and never more than it held; every finished job's lock
//!   is settled; no deadline of one assignment was slashed twice; the
//!   matcher's outbox is empty.

use crate::ledger_types::{ListBlocksArgs, ListBlocksResult, Operation};
use crate::{Error, Localnet, Result, nat};
use candid::{Nat, Principal};
use market_api::escrow::{JobLock, PendingOperation};
use market_api::matcher::{Job, MatcherEvent, Reservation};
use market_api::registry::{ListProvidersArgs, ProviderPage};
use market_api::{Account, EventPage, HttpRequest, HttpResponse, PageRequest, Tokens};
use std::collections::{BTreeMap, BTreeSet};

/// Totals found by a passing [`Localnet::audit`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// The ledger's total supply.
    pub total_supply: Tokens,
    /// Minted so far.
    pub minted: Tokens,
    /// Burned and paid in fees so far.
    pub burned_and_fees: Tokens,
    /// What the escrow owes its users.
    pub escrow_liabilities: Tokens,
    /// Stake held by the registry.
    pub stakes: Tokens,
    /// Jobs whose locks were checked.
    pub jobs: usize,
    /// Intervals paid, over all jobs.
    pub released: Tokens,
    /// Deadlines slashed.
    pub slashes: usize,
}

fn fail(what: impl Into<String>) -> Error {
    Error::Audit(what.into())
}

fn metric(text: &str, prefix: &str) -> Option<u128> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
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

impl Localnet {
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

    /// Every account the ledger's log mentions, with what was minted and
    /// what was burned or paid in fees.
    fn ledger_accounts(&self) -> Result<(BTreeSet<Account>, Tokens, Tokens)> {
        let (mut accounts, mut minted, mut gone) = (BTreeSet::new(), 0u128, 0u128);
        let mut start = 0u64;
        loop {
            let page: ListBlocksResult = self.query(
                self.ids.ledger,
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
        Ok(metric(&text, "matcher_outbox_steps ").unwrap_or(0))
    }

    /// The ledger created and destroyed nothing: its accounts sum to its
    /// total supply, which is what was minted less burns and fees. Holds at
    /// any moment, retries pending or not.
    pub fn audit_ledger(&self) -> Result<LedgerAudit> {
        let (accounts, minted, gone) = self.ledger_accounts()?;
        let supply: Nat = self.query(self.ids.ledger, "icrc1_total_supply", &())?;
        let total_supply = nat(&supply);
        let mut balances = BTreeMap::new();
        for a in &accounts {
            balances.insert(*a, self.balance(*a)?);
        }
        let sum: Tokens = balances.values().sum();
        if sum != total_supply || minted.checked_sub(gone) != Some(total_supply) {
            return Err(fail(format!(
                "ledger: accounts hold {sum}, total supply {total_supply}, minted {minted} less burned and fees {gone}"
            )));
        }
        Ok(LedgerAudit {
            balances,
            total_supply,
            minted,
            burned_and_fees: gone,
        })
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
        let prefix = format!("escrow_liabilities{{ledger=\"{}\"", ids.ledger);
        audit.escrow_liabilities =
            metric(&text, &prefix).ok_or_else(|| fail("escrow: no liabilities metric"))?;
        let main = balances
            .get(&crate::account(ids.escrow))
            .copied()
            .unwrap_or(0);
        if main != audit.escrow_liabilities {
            return Err(fail(format!(
                "escrow: main account holds {main}, liabilities are {}",
                audit.escrow_liabilities
            )));
        }
        let unnotified: Tokens = balances
            .iter()
            .filter(|(a, _)| a.owner == ids.escrow && a.subaccount.is_some())
            .map(|(_, b)| b)
            .sum();
        if unnotified != 0 {
            return Err(fail(format!(
                "escrow: {unnotified} sits in deposit accounts, not notified"
            )));
        }

        // The registry.
        let registry_held: Tokens = balances
            .iter()
            .filter(|(a, _)| a.owner == ids.registry)
            .map(|(_, b)| b)
            .sum();
        let mut start_after = None;
        loop {
            let page: ProviderPage = self.query(
                ids.registry,
                "list_providers",
                &ListProvidersArgs {
                    start_after,
                    ..Default::default()
                },
            )?;
            for p in &page.providers {
                if let Some(op) = &p.pending_operation {
                    return Err(fail(format!("registry: {} has {op:?} pending", p.id)));
                }
                audit.stakes += p.stake.free
                    + p.stake.bonded
                    + p.stake.unbonding.iter().map(|u| u.amount).sum::<Tokens>();
            }
            start_after = page.next;
            if start_after.is_none() {
                break;
            }
        }
        if registry_held != audit.stakes {
            return Err(fail(format!(
                "registry: its accounts hold {registry_held}, stakes are {}",
                audit.stakes
            )));
        }

        // The matcher and the escrow's locks.
        let steps = self.outbox_steps()?;
        if steps != 0 {
            return Err(fail(format!("matcher: {steps} outbox steps pending")));
        }
        let mut paid: BTreeMap<u64, Tokens> = BTreeMap::new();
        let mut jobs = BTreeSet::new();
        let mut slashed = BTreeSet::new();
        let mut reservations = BTreeSet::new();
        let mut start = Some(0u64);
        while let Some(s) = start {
            let page: EventPage<MatcherEvent> = self.query(
                ids.matcher,
                "get_events",
                &PageRequest {
                    start: Some(s),
                    limit: None,
                },
            )?;
            for e in page.events {
                match e.event {
                    MatcherEvent::JobSubmitted { job_id, .. } => {
                        jobs.insert(job_id);
                    }
                    MatcherEvent::ReservationMade { reservation, .. } => {
                        jobs.insert(reservation);
                        reservations.insert(reservation);
                    }
                    MatcherEvent::IntervalPaid { job_id, amount, .. } => {
                        *paid.entry(job_id).or_default() += amount;
                    }
                    MatcherEvent::DeadlineMissed {
                        job_id, attempt, ..
                    } if !slashed.insert((job_id, attempt)) => {
                        return Err(fail(format!(
                            "matcher: job {job_id} attempt {attempt} slashed twice"
                        )));
                    }
                    _ => {}
                }
            }
            start = page.next;
        }
        audit.slashes = slashed.len();
        for id in &jobs {
            let lock: Option<JobLock> = self.query(ids.escrow, "get_lock", &format!("job/{id}"))?;
            let lock = lock.ok_or_else(|| fail(format!("job {id}: no escrow lock")))?;
            let job: Option<Job> = self.query(ids.matcher, "get_job", id)?;
            let job = job.ok_or_else(|| fail(format!("job {id}: unknown to the matcher")))?;
            let recorded = paid.get(id).copied().unwrap_or(0);
            if lock.released != recorded || lock.released > lock.total {
                return Err(fail(format!(
                    "job {id}: escrow released {} of {}, matcher recorded {recorded} paid",
                    lock.released, lock.total
                )));
            }
            if job.status.is_terminal() != lock.settled {
                return Err(fail(format!(
                    "job {id}: status {:?} but lock settled = {}",
                    job.status, lock.settled
                )));
            }
            if lock.settled && lock.released + lock.refunded != lock.total {
                return Err(fail(format!(
                    "job {id}: settled lock {lock:?} doesn't add up"
                )));
            }
            if reservations.contains(id) {
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
        audit.jobs = jobs.len();
        Ok(audit)
    }
}
