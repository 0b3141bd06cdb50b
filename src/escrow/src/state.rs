//! The escrow's durable state, reached only through [`read_state`] and
//! [`mutate_state`] so that no borrow is held across an `.await`.
//!
//! Everything lives in stable structures, so an upgrade needs no
//! serialisation. Every balance change goes through [`State::put_balance`],
//! which also keeps each ledger's total of liabilities; the conservation
//! invariant is stated on [`State::check_invariants`].

use crate::memory::{self, Memory};
use canister_common::codec::Cbor;
use canister_common::event_log::EventLog;
use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::storable::Blob;
use ic_stable_structures::{Cell, StableBTreeMap};
use market_api::escrow::{
    Balance, EscrowEvent, EscrowInit, JobLock, LedgerInfo, MAX_LEDGERS, PendingOperation,
};
use market_api::{MAX_OP_KEY_LEN, Principal, Tokens};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Durable configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The matcher canister, the only caller of lock, extend_lock, release,
    /// settle and withdraw_for.
    pub matcher: Option<Principal>,
}

/// What the escrow keeps about a whitelisted ledger.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerRecord {
    /// Transfer fee as last read from the ledger.
    pub fee: Option<Tokens>,
    /// Token symbol as last read from the ledger.
    pub symbol: Option<String>,
    /// Σ (free + claimable + locked) over all balances on this ledger: what
    /// the escrow owes. Maintained by [`State::put_balance`].
    #[serde(default)]
    pub liabilities: Tokens,
}

/// One (owner, ledger) balance.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BalanceRecord {
    /// Spendable: may be locked or withdrawn.
    pub free: Tokens,
    /// Earned as a provider: may be withdrawn.
    pub claimable: Tokens,
    /// Σ remaining of the owner's unsettled locks.
    pub locked: Tokens,
}

impl BalanceRecord {
    /// free + claimable + locked.
    pub fn total(&self) -> Tokens {
        self.free
            .checked_add(self.claimable)
            .and_then(|t| t.checked_add(self.locked))
            .unwrap_or_else(|| panic!("BUG: balance total overflows: {self:?}"))
    }

    fn is_zero(&self) -> bool {
        self.free == 0 && self.claimable == 0 && self.locked == 0
    }

    /// Adds `amount` to `free`.
    pub fn credit_free(&mut self, amount: Tokens) {
        credit(&mut self.free, amount, "free");
    }

    /// Adds `amount` to `claimable`.
    pub fn credit_claimable(&mut self, amount: Tokens) {
        credit(&mut self.claimable, amount, "claimable");
    }

    /// Adds `amount` to `locked`.
    pub fn credit_locked(&mut self, amount: Tokens) {
        credit(&mut self.locked, amount, "locked");
    }

    /// Takes `amount`, part of a lock's remaining, out of `locked`.
    pub fn unlock(&mut self, amount: Tokens) {
        self.locked = self
            .locked
            .checked_sub(amount)
            .unwrap_or_else(|| panic!("BUG: buyer's locked balance below a lock's remaining"));
    }
}

/// Adds `amount` to the part of a balance called `name`.
fn credit(part: &mut Tokens, amount: Tokens, name: &str) {
    *part = part
        .checked_add(amount)
        .unwrap_or_else(|| panic!("BUG: {name} balance overflows"));
}

/// A job's lock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LockRecord {
    /// Who pays.
    pub buyer: Principal,
    /// Ledger of the payment.
    pub ledger: Principal,
    /// Amount locked: the first lock plus every extension.
    pub total: Tokens,
    /// Released to providers so far.
    pub released: Tokens,
    /// Returned to the buyer at settle.
    pub refunded: Tokens,
    /// Whether the lock was settled.
    pub settled: bool,
    /// Amounts of the extensions applied, in order (extension `n` at index
    /// `n − 1`): the idempotency records of (job key, extension). Absent
    /// from locks written before extensions existed, hence the default.
    #[serde(default)]
    pub extensions: Vec<Tokens>,
}

impl LockRecord {
    /// What is still locked: total − released − refunded.
    pub fn remaining(&self) -> Tokens {
        self.total
            .checked_sub(self.released)
            .and_then(|r| r.checked_sub(self.refunded))
            .unwrap_or_else(|| panic!("BUG: lock paid out more than its total: {self:?}"))
    }

    /// Σ of the extensions' amounts (`None` on overflow, which
    /// [`State::check_invariants`] rules out).
    fn checked_extended(&self) -> Option<Tokens> {
        self.extensions
            .iter()
            .try_fold(0 as Tokens, |s, a| s.checked_add(*a))
    }

    /// Σ of the extensions' amounts.
    pub fn extended(&self) -> Tokens {
        self.checked_extended()
            .unwrap_or_else(|| panic!("BUG: a lock's extensions overflow: {self:?}"))
    }

    /// The amount of the first lock, which a retried `lock` must name:
    /// total − Σ extensions.
    pub fn initial(&self) -> Tokens {
        self.total
            .checked_sub(self.extended())
            .unwrap_or_else(|| panic!("BUG: a lock's extensions exceed its total: {self:?}"))
    }

    /// The public view of the lock.
    pub fn view(&self, job_key: &str) -> JobLock {
        JobLock {
            job_key: job_key.to_string(),
            buyer: self.buyer,
            ledger: self.ledger,
            total: self.total,
            released: self.released,
            remaining: self.remaining(),
            refunded: self.refunded,
            settled: self.settled,
        }
    }
}

/// A release already done, kept as the idempotency record of (job key, seq).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReleaseRecord {
    /// Who was paid.
    pub provider: Principal,
    /// How much.
    pub amount: Tokens,
}

type Key = (Principal, Principal);

/// A job key as a bounded stable-map key (job keys are at most
/// [`MAX_OP_KEY_LEN`] bytes, checked before any write).
type JobKeyBlob = Blob<MAX_OP_KEY_LEN>;

fn job_key_blob(job_key: &str) -> JobKeyBlob {
    Blob::try_from(job_key.as_bytes())
        .unwrap_or_else(|_| panic!("BUG: job key longer than {MAX_OP_KEY_LEN} bytes"))
}

/// Everything the escrow keeps across upgrades.
pub struct State {
    config: Cell<Cbor<Config>, Memory>,
    /// The public event log.
    pub events: EventLog<EscrowEvent, Memory>,
    ledgers: StableBTreeMap<Principal, Cbor<LedgerRecord>, Memory>,
    balances: StableBTreeMap<Key, Cbor<BalanceRecord>, Memory>,
    locks: StableBTreeMap<String, Cbor<LockRecord>, Memory>,
    releases: StableBTreeMap<(JobKeyBlob, u64), Cbor<ReleaseRecord>, Memory>,
    pending: StableBTreeMap<Key, Cbor<PendingOperation>, Memory>,
    next_op_id: Cell<u64, Memory>,
}

impl State {
    /// Opens the state kept in the memories `get` hands out (creating empty
    /// structures in empty memories).
    pub fn open(get: impl Fn(MemoryId) -> Memory) -> Self {
        Self {
            config: Cell::init(get(memory::CONFIG), Cbor(Config::default())),
            events: EventLog::init(get(memory::EVENT_LOG_INDEX), get(memory::EVENT_LOG_DATA)),
            ledgers: StableBTreeMap::init(get(memory::LEDGERS)),
            balances: StableBTreeMap::init(get(memory::BALANCES)),
            locks: StableBTreeMap::init(get(memory::LOCKS)),
            releases: StableBTreeMap::init(get(memory::RELEASES)),
            pending: StableBTreeMap::init(get(memory::PENDING)),
            next_op_id: Cell::init(get(memory::NEXT_OP_ID), 0),
        }
    }

    /// Applies an init or upgrade argument: sets the matcher and whitelists
    /// the named ledgers (their fee is read before first use). Ledgers
    /// already whitelisted keep what the escrow knows of them.
    pub fn apply_config(&mut self, arg: EscrowInit, now: u64) {
        self.config.set(Cbor(Config {
            matcher: arg.matcher,
        }));
        for ledger in arg.ledgers {
            if !self.ledgers.contains_key(&ledger) {
                assert!(
                    self.ledgers.len() < MAX_LEDGERS as u64,
                    "at most {MAX_LEDGERS} ledgers are accepted"
                );
                self.set_ledger_info(ledger, None, None, now);
            }
        }
    }

    /// The configuration as an [`EscrowInit`].
    pub fn config(&self) -> EscrowInit {
        EscrowInit {
            matcher: self.config.get().0.matcher,
            ledgers: self.ledgers.keys().collect(),
        }
    }

    /// The matcher canister, if configured.
    pub fn matcher(&self) -> Option<Principal> {
        self.config.get().0.matcher
    }

    /// What the escrow knows of a whitelisted ledger.
    pub fn ledger(&self, ledger: &Principal) -> Option<LedgerRecord> {
        self.ledgers.get(ledger).map(|c| c.0)
    }

    /// Number of whitelisted ledgers.
    pub fn ledger_count(&self) -> usize {
        self.ledgers.len() as usize
    }

    /// Every whitelisted ledger.
    pub fn ledger_infos(&self) -> Vec<LedgerInfo> {
        self.ledgers
            .iter()
            .map(|e| {
                let (ledger, rec) = e.into_pair();
                LedgerInfo {
                    ledger,
                    fee: rec.0.fee,
                    symbol: rec.0.symbol,
                }
            })
            .collect()
    }

    /// Whitelists a ledger or updates its fee and symbol (a `None` keeps
    /// what is known); records an event when something changed.
    pub fn set_ledger_info(
        &mut self,
        ledger: Principal,
        fee: Option<Tokens>,
        symbol: Option<String>,
        now: u64,
    ) {
        let old = self.ledger(&ledger);
        let mut rec = old.clone().unwrap_or_default();
        if fee.is_some() {
            rec.fee = fee;
        }
        if symbol.is_some() {
            rec.symbol = symbol;
        }
        if old.as_ref() != Some(&rec) {
            self.ledgers.insert(ledger, Cbor(rec.clone()));
            self.events.append(
                now,
                EscrowEvent::LedgerUpdated {
                    ledger,
                    fee: rec.fee,
                    symbol: rec.symbol,
                },
            );
        }
    }

    /// `owner`'s balance on `ledger` (zero if never credited).
    pub fn balance(&self, owner: Principal, ledger: Principal) -> BalanceRecord {
        self.balances
            .get(&(owner, ledger))
            .map(|c| c.0)
            .unwrap_or_default()
    }

    /// `owner`'s balances on every whitelisted ledger where it has one.
    pub fn balances_of(&self, owner: Principal) -> Vec<Balance> {
        self.ledgers
            .keys()
            .filter_map(|ledger| {
                let b = self.balances.get(&(owner, ledger))?.0;
                Some(Balance {
                    ledger,
                    free: b.free,
                    claimable: b.claimable,
                    locked: b.locked,
                })
            })
            .collect()
    }

    /// Stores `owner`'s new balance on `ledger` and moves the ledger's
    /// liabilities by the difference. The only writer of balances.
    pub fn put_balance(&mut self, owner: Principal, ledger: Principal, new: BalanceRecord) {
        let old = self.balance(owner, ledger);
        let mut rec = self
            .ledger(&ledger)
            .unwrap_or_else(|| panic!("BUG: balance on a ledger that is not whitelisted"));
        rec.liabilities = rec
            .liabilities
            .checked_sub(old.total())
            .and_then(|l| l.checked_add(new.total()))
            .unwrap_or_else(|| panic!("BUG: liabilities out of range"));
        self.ledgers.insert(ledger, Cbor(rec));
        if new.is_zero() {
            self.balances.remove(&(owner, ledger));
        } else {
            self.balances.insert((owner, ledger), Cbor(new));
        }
    }

    /// Changes `owner`'s balance on `ledger` through [`State::put_balance`].
    pub fn update_balance(
        &mut self,
        owner: Principal,
        ledger: Principal,
        change: impl FnOnce(&mut BalanceRecord),
    ) {
        let mut balance = self.balance(owner, ledger);
        change(&mut balance);
        self.put_balance(owner, ledger, balance);
    }

    /// A job's lock.
    pub fn lock(&self, job_key: &str) -> Option<LockRecord> {
        self.locks.get(&job_key.to_string()).map(|c| c.0)
    }

    /// Stores a job's lock.
    pub fn put_lock(&mut self, job_key: &str, lock: LockRecord) {
        self.locks.insert(job_key.to_string(), Cbor(lock));
    }

    /// Number of locks ever made (settled ones included).
    pub fn lock_count(&self) -> u64 {
        self.locks.len()
    }

    /// The release done under (job key, seq), if any.
    pub fn release_record(&self, job_key: &str, seq: u64) -> Option<ReleaseRecord> {
        self.releases
            .get(&(job_key_blob(job_key), seq))
            .map(|c| c.0)
    }

    /// Records the release done under (job key, seq).
    pub fn put_release(&mut self, job_key: &str, seq: u64, rec: ReleaseRecord) {
        self.releases
            .insert((job_key_blob(job_key), seq), Cbor(rec));
    }

    /// The ledger call in flight for (owner, ledger), if any.
    pub fn pending(&self, owner: Principal, ledger: Principal) -> Option<PendingOperation> {
        self.pending.get(&(owner, ledger)).map(|c| c.0)
    }

    /// Every ledger call in flight.
    pub fn pending_operations(&self) -> Vec<PendingOperation> {
        self.pending.values().map(|c| c.0).collect()
    }

    /// Number of ledger calls in flight.
    pub fn pending_count(&self) -> u64 {
        self.pending.len()
    }

    /// Records a ledger call about to be made. There is at most one per
    /// (owner, ledger): callers hold that key's guard and reconcile first.
    pub fn put_pending(&mut self, op: PendingOperation) {
        let prev = self.pending.insert((op.owner, op.ledger), Cbor(op));
        assert!(
            prev.is_none(),
            "BUG: two ledger calls in flight for one key"
        );
    }

    /// Forgets the ledger call of (owner, ledger); returns it.
    pub fn take_pending(
        &mut self,
        owner: Principal,
        ledger: Principal,
    ) -> Option<PendingOperation> {
        self.pending.remove(&(owner, ledger)).map(|c| c.0)
    }

    /// A fresh operation number (for memos).
    pub fn next_op_id(&mut self) -> u64 {
        let id = *self.next_op_id.get();
        self.next_op_id.set(id + 1);
        id
    }

    /// What the escrow owes on `ledger`: Σ free + claimable + locked.
    pub fn liabilities(&self, ledger: &Principal) -> Tokens {
        self.ledger(ledger).map(|r| r.liabilities).unwrap_or(0)
    }

    /// Checks the internal invariants, recomputing every aggregate:
    /// - per ledger, the kept liabilities equal Σ (free + claimable + locked);
    /// - per (buyer, ledger), `locked` equals Σ remaining of its unsettled locks;
    /// - settled locks have nothing remaining, and per lock released equals
    ///   Σ of its release records;
    /// - per lock, Σ of its extensions is below its total (the first lock
    ///   was positive).
    ///
    /// The external invariant (per ledger: balance of the escrow's main
    /// account == liabilities, once no ledger call is pending) needs the
    /// ledger and is checked by the tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut liabilities: BTreeMap<Principal, Tokens> = BTreeMap::new();
        let mut locked: BTreeMap<Key, Tokens> = BTreeMap::new();
        for e in self.balances.iter() {
            let ((owner, ledger), b) = e.into_pair();
            let l = liabilities.entry(ledger).or_default();
            *l = l.checked_add(b.0.total()).ok_or("liabilities overflow")?;
            if b.0.locked > 0 {
                locked.insert((owner, ledger), b.0.locked);
            }
        }
        for e in self.ledgers.iter() {
            let (ledger, rec) = e.into_pair();
            let sum = liabilities.remove(&ledger).unwrap_or(0);
            if sum != rec.0.liabilities {
                return Err(format!(
                    "ledger {ledger}: liabilities {} but balances sum to {sum}",
                    rec.0.liabilities
                ));
            }
        }
        if !liabilities.is_empty() {
            return Err("balances on ledgers that are not whitelisted".into());
        }
        let mut released: BTreeMap<String, Tokens> = BTreeMap::new();
        for e in self.releases.iter() {
            let ((job_key, _), r) = e.into_pair();
            let job_key = String::from_utf8_lossy(job_key.as_slice()).into_owned();
            let s = released.entry(job_key).or_default();
            *s = s.checked_add(r.0.amount).ok_or("released overflow")?;
        }
        let mut lock_sums: BTreeMap<Key, Tokens> = BTreeMap::new();
        for e in self.locks.iter() {
            let (job_key, l) = e.into_pair();
            let l = l.0;
            let rel = released.get(&job_key).copied().unwrap_or(0);
            if rel != l.released {
                return Err(format!(
                    "lock {job_key}: released {} but releases sum to {rel}",
                    l.released
                ));
            }
            if l.released
                .checked_add(l.refunded)
                .is_none_or(|s| s > l.total)
            {
                return Err(format!("lock {job_key} paid out more than its total"));
            }
            let extended = l.checked_extended().ok_or("extensions overflow")?;
            if extended >= l.total {
                return Err(format!(
                    "lock {job_key}: extensions sum to {extended}, not below its total {}",
                    l.total
                ));
            }
            if l.settled && l.remaining() != 0 {
                return Err(format!("settled lock {job_key} still holds tokens"));
            }
            let s = lock_sums.entry((l.buyer, l.ledger)).or_default();
            *s = s.checked_add(l.remaining()).ok_or("locks overflow")?;
        }
        lock_sums.retain(|_, v| *v > 0);
        if lock_sums != locked {
            return Err(format!(
                "locked balances {locked:?} differ from remaining locks {lock_sums:?}"
            ));
        }
        Ok(())
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::open(memory::get));
}

/// Reads the state.
pub fn read_state<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with(|s| f(&s.borrow()))
}

/// Changes the state.
pub fn mutate_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// Replaces the state (tests open a fresh one, or reopen the same memory to
/// model an upgrade).
#[cfg(test)]
pub fn replace_state(state: State) {
    STATE.with(|s| *s.borrow_mut() = state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::Storable;
    use std::borrow::Cow;

    /// `LockRecord` as it was stored before extensions existed.
    #[derive(Serialize, Deserialize, Clone)]
    struct LockRecordV0 {
        buyer: Principal,
        ledger: Principal,
        total: Tokens,
        released: Tokens,
        refunded: Tokens,
        settled: bool,
    }

    #[test]
    fn locks_written_before_extensions_still_decode() {
        let buyer = Principal::from_slice(&[1; 10]);
        let ledger = Principal::from_slice(&[2; 10]);
        let old = LockRecordV0 {
            buyer,
            ledger,
            total: u128::from(u64::MAX) + 7,
            released: 5,
            refunded: 0,
            settled: false,
        };
        let bytes = Cbor(old).into_bytes();
        let new = Cbor::<LockRecord>::from_bytes(Cow::Owned(bytes)).0;
        assert_eq!(
            new,
            LockRecord {
                buyer,
                ledger,
                total: u128::from(u64::MAX) + 7,
                released: 5,
                refunded: 0,
                settled: false,
                extensions: vec![],
            }
        );
        assert_eq!(new.initial(), new.total);
        let again = Cbor::<LockRecord>::from_bytes(Cow::Owned(Cbor(new.clone()).into_bytes()));
        assert_eq!(again.0, new);
    }
}
