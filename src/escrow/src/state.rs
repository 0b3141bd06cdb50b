//! The escrow's durable state, reached only through [`read_state`] and
//! [`mutate_state`] so that no borrow is held across an `.await`.
//!
//! Everything lives in stable structures, so an upgrade needs no
//! serialisation. Every balance change goes through [`State::put_balance`],
//! which also keeps each ledger's total of liabilities; the conservation
//! invariant is stated on [`State::check_invariants`] and checked after
//! every upgrade, in bounded chunks, by [`State::audit_chunk`] (the rule is
//! `canister_common::audit`'s).

use crate::memory::{self, Memory};
use canister_common::audit::{
    AuditedBooks, Books, BooksAudit, Chunk, ChunkRequest, ChunkWork, after,
};
use canister_common::codec::Cbor;
use canister_common::event_log::EventLog;
use canister_common::ledger_blocks::BlockScan;
use canister_common::retention::TimeIndex;
use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::storable::Blob;
use ic_stable_structures::{Cell, StableBTreeMap};
use market_api::escrow::{
    Balance, EscrowEvent, EscrowInit, JobLock, LedgerInfo, MAX_LEDGERS, MAX_PENDING_PAYEES,
    PendingOperation, SETTLED_LOCK_RETENTION_SECS,
};
use market_api::{MAX_OP_KEY_LEN, Principal, Tokens};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Durable configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The matcher canister, the only caller of lock, extend_lock, release,
    /// settle and withdraw_for.
    pub matcher: Option<Principal>,
    /// The SNS governance canister administering the escrow beside its
    /// controllers, if any.
    #[serde(default)]
    pub governance: Option<Principal>,
}

/// What the escrow keeps about a whitelisted ledger.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerRecord {
    /// Transfer fee as last read from the ledger.
    pub fee: Option<Tokens>,
    /// Token symbol as last read from the ledger.
    pub symbol: Option<String>,
    /// Σ (free + claimable + locked + pending) over all balances on this
    /// ledger: what the escrow owes. Maintained by [`State::put_balance`].
    #[serde(default)]
    pub liabilities: Tokens,
    /// Σ pending over all balances on this ledger: pay held in locks.
    /// Maintained by [`State::put_balance`]; zero in records written
    /// before pending pay existed, when there was none.
    #[serde(default)]
    pub pending: Tokens,
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
    /// Σ of the owner's pending pay over the unsettled locks of this
    /// ledger (absent from records written before pending pay existed).
    #[serde(default)]
    pub pending: Tokens,
}

impl BalanceRecord {
    /// free + claimable + locked + pending, `None` on overflow.
    fn checked_total(&self) -> Option<Tokens> {
        self.free
            .checked_add(self.claimable)
            .and_then(|t| t.checked_add(self.locked))
            .and_then(|t| t.checked_add(self.pending))
    }

    /// free + claimable + locked + pending.
    pub fn total(&self) -> Tokens {
        self.checked_total()
            .unwrap_or_else(|| panic!("BUG: balance total overflows: {self:?}"))
    }

    fn is_zero(&self) -> bool {
        self.free == 0 && self.claimable == 0 && self.locked == 0 && self.pending == 0
    }

    /// The public view of the balance on `ledger`.
    pub fn view(&self, ledger: Principal) -> Balance {
        Balance {
            ledger,
            free: self.free,
            claimable: self.claimable,
            locked: self.locked,
            pending: self.pending,
        }
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

    /// Adds `amount` to `pending`.
    pub fn credit_pending(&mut self, amount: Tokens) {
        credit(&mut self.pending, amount, "pending");
    }

    /// Takes `amount`, a provider's pending pay in one lock, out of
    /// `pending`.
    pub fn take_pending(&mut self, amount: Tokens) {
        self.pending = self
            .pending
            .checked_sub(amount)
            .unwrap_or_else(|| panic!("BUG: provider's pending balance below a lock's pending"));
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
    /// The storage fee paid with the lock (not part of `total`).
    #[serde(default)]
    pub storage_fee: Tokens,
    /// Pay held for providers until settle, per provider (each positive,
    /// sorted by principal, at most [`MAX_PENDING_PAYEES`]); empty once
    /// settled. Absent from locks written before pending pay existed.
    #[serde(default)]
    pub pending: Vec<(Principal, Tokens)>,
    /// Σ of the pending pay forfeited back to the lock, so that `released`
    /// + Σ `pending` + `forfeited` is Σ of the lock's release records.
    #[serde(default)]
    pub forfeited: Tokens,
    /// The market's fee paid from the lock to `fee_collector`'s claimable
    /// balance.
    #[serde(default)]
    pub fees: Tokens,
    /// The market's fee held on each provider's pending pay (each
    /// positive, sorted by principal, a provider only if it has pending
    /// pay), counted in `fee_collector`'s pending balance; empty once
    /// settled.
    #[serde(default)]
    pub pending_fees: Vec<(Principal, Tokens)>,
    /// Σ of the fees forfeited back to the lock with their pay, so that
    /// `fees` + Σ `pending_fees` + `forfeited_fees` is Σ of the fees of
    /// the lock's release records.
    #[serde(default)]
    pub forfeited_fees: Tokens,
    /// Whose balance the lock's fees go to: the matcher that released the
    /// first one.
    #[serde(default)]
    pub fee_collector: Option<Principal>,
}

impl LockRecord {
    /// A fresh lock of `total` of `buyer`'s tokens on `ledger`, with
    /// `storage_fee` paid beside it: nothing released, held or refunded yet.
    pub fn new(buyer: Principal, ledger: Principal, total: Tokens, storage_fee: Tokens) -> Self {
        LockRecord {
            buyer,
            ledger,
            total,
            released: 0,
            refunded: 0,
            settled: false,
            extensions: Vec::new(),
            storage_fee,
            pending: Vec::new(),
            forfeited: 0,
            fees: 0,
            pending_fees: Vec::new(),
            forfeited_fees: 0,
            fee_collector: None,
        }
    }

    /// What is still locked: total − released − Σ pending − fees − Σ
    /// pending fees − refunded.
    pub fn remaining(&self) -> Tokens {
        self.checked_remaining()
            .unwrap_or_else(|| panic!("BUG: lock paid out more than its total: {self:?}"))
    }

    /// total − released − Σ pending − fees − Σ pending fees − refunded,
    /// `None` if it would be negative.
    fn checked_remaining(&self) -> Option<Tokens> {
        self.total
            .checked_sub(self.released)
            .and_then(|r| r.checked_sub(self.checked_pending()?))
            .and_then(|r| r.checked_sub(self.fees))
            .and_then(|r| r.checked_sub(self.checked_pending_fees()?))
            .and_then(|r| r.checked_sub(self.refunded))
    }

    /// Σ of the pending pay, `None` on overflow.
    fn checked_pending(&self) -> Option<Tokens> {
        self.pending
            .iter()
            .try_fold(0 as Tokens, |s, (_, a)| s.checked_add(*a))
    }

    /// Σ of the fees held on pending pay, `None` on overflow.
    fn checked_pending_fees(&self) -> Option<Tokens> {
        self.pending_fees
            .iter()
            .try_fold(0 as Tokens, |s, (_, a)| s.checked_add(*a))
    }

    /// Σ of the fees held on pending pay.
    pub fn pending_fee_total(&self) -> Tokens {
        self.checked_pending_fees()
            .unwrap_or_else(|| panic!("BUG: a lock's pending fees overflow: {self:?}"))
    }

    /// Adds `fee` to the fee held on `provider`'s pending pay.
    pub fn hold_fee(&mut self, provider: Principal, fee: Tokens) {
        if fee == 0 {
            return;
        }
        match self
            .pending_fees
            .binary_search_by_key(&provider, |(p, _)| *p)
        {
            Ok(i) => credit(&mut self.pending_fees[i].1, fee, "lock's pending fee"),
            Err(i) => self.pending_fees.insert(i, (provider, fee)),
        }
    }

    /// The fee held on `provider`'s pending pay in this lock.
    pub fn pending_fee_of(&self, provider: Principal) -> Tokens {
        match self
            .pending_fees
            .binary_search_by_key(&provider, |(p, _)| *p)
        {
            Ok(i) => self.pending_fees[i].1,
            Err(_) => 0,
        }
    }

    /// Takes the fee held on `provider`'s pending pay out of the lock;
    /// returns it (0 if none).
    pub fn take_pending_fee(&mut self, provider: Principal) -> Tokens {
        match self
            .pending_fees
            .binary_search_by_key(&provider, |(p, _)| *p)
        {
            Ok(i) => self.pending_fees.remove(i).1,
            Err(_) => 0,
        }
    }

    /// `provider`'s pending pay in this lock.
    pub fn pending_of(&self, provider: Principal) -> Tokens {
        match self.pending.binary_search_by_key(&provider, |(p, _)| *p) {
            Ok(i) => self.pending[i].1,
            Err(_) => 0,
        }
    }

    /// Whether one more held release to `provider` keeps the lock within
    /// [`MAX_PENDING_PAYEES`].
    pub fn can_hold_for(&self, provider: Principal) -> bool {
        self.pending.len() < MAX_PENDING_PAYEES || self.pending_of(provider) > 0
    }

    /// Adds `amount` to `provider`'s pending pay (the caller checked
    /// [`LockRecord::can_hold_for`] and that it fits the remaining).
    pub fn hold(&mut self, provider: Principal, amount: Tokens) {
        match self.pending.binary_search_by_key(&provider, |(p, _)| *p) {
            Ok(i) => credit(&mut self.pending[i].1, amount, "lock's pending"),
            Err(i) => self.pending.insert(i, (provider, amount)),
        }
    }

    /// Takes `provider`'s pending pay out of the lock; returns it (0 if
    /// it had none).
    pub fn take_pending(&mut self, provider: Principal) -> Tokens {
        match self.pending.binary_search_by_key(&provider, |(p, _)| *p) {
            Ok(i) => self.pending.remove(i).1,
            Err(_) => 0,
        }
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
            storage_fee: self.storage_fee,
            pending: self.pending.clone(),
            fee_paid: self.fees,
            fee_pending: self.pending_fee_total(),
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
    /// Whether the pay was held as pending (absent from records written
    /// before held releases existed, which all paid at once).
    #[serde(default)]
    pub hold: bool,
    /// The market's fee that left the lock with the pay (absent from
    /// records written before the fee existed, which paid none).
    #[serde(default)]
    pub fee: Tokens,
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
    /// Settled locks by settle time, for pruning.
    settled_locks: StableBTreeMap<(u64, JobKeyBlob), (), Memory>,
    pending: StableBTreeMap<Key, Cbor<PendingOperation>, Memory>,
    next_op_id: Cell<u64, Memory>,
    /// Where the scan of the ledger's blocks stands for a pending operation
    /// past its deduplication window (same key as `pending`).
    block_scans: StableBTreeMap<Key, Cbor<BlockScan>, Memory>,
    /// The background audit of the books (heap only: an upgrade starts
    /// its pass again).
    pub audit: BooksAudit<AuditCursor>,
}

/// Where a pass of the escrow's audit goes on, and the sums of the records
/// it has read. [`State::put_balance`] and [`State::put_lock`] keep the
/// sums current when a record already read changes, so at the end of the
/// pass they are the sums over the books as they are then, however long
/// the pass took.
#[derive(Clone, Debug, Default)]
pub struct AuditCursor {
    /// Whether every balance was read and the locks are being read.
    in_locks: bool,
    /// The last balance read.
    last_balance: Option<Key>,
    /// The last lock read.
    last_lock: Option<String>,
    /// Per ledger, Σ (free + claimable + locked + pending) of the
    /// balances read.
    liabilities: BTreeMap<Principal, Tokens>,
    /// Per ledger, Σ pending of the balances read.
    pending_pay: BTreeMap<Principal, Tokens>,
    /// Per (owner, ledger), `locked` of the balances read.
    locked: BTreeMap<Key, Tokens>,
    /// Per (buyer, ledger), Σ remaining of the locks read.
    remaining: BTreeMap<Key, Tokens>,
    /// Per (owner, ledger), `pending` of the balances read.
    pending: BTreeMap<Key, Tokens>,
    /// Per (provider, ledger), Σ of its pending pay in the locks read.
    held: BTreeMap<Key, Tokens>,
    /// A sum went out of range (which only broken books can do).
    out_of_range: bool,
}

impl AuditCursor {
    fn balance_read(&self, key: &Key) -> bool {
        self.in_locks || self.last_balance.as_ref().is_some_and(|k| key <= k)
    }

    fn lock_read(&self, job_key: &str) -> bool {
        self.last_lock.as_deref().is_some_and(|k| job_key <= k)
    }

    /// Counts a balance record into the sums, or out of them.
    fn tally_balance(&mut self, key: Key, b: &BalanceRecord, tally: Tally) {
        let ok = b
            .checked_total()
            .is_some_and(|t| tally.apply(&mut self.liabilities, key.1, t))
            && tally.apply(&mut self.pending_pay, key.1, b.pending)
            && tally.apply(&mut self.locked, key, b.locked)
            && tally.apply(&mut self.pending, key, b.pending);
        self.out_of_range |= !ok;
    }

    /// Counts a lock record into the sums, or out of them.
    fn tally_lock(&mut self, l: &LockRecord, tally: Tally) {
        let mut ok = l
            .checked_remaining()
            .is_some_and(|r| tally.apply(&mut self.remaining, (l.buyer, l.ledger), r));
        for (provider, amount) in &l.pending {
            ok &= tally.apply(&mut self.held, (*provider, l.ledger), *amount);
        }
        if let Some(collector) = l.fee_collector {
            for (_, fee) in &l.pending_fees {
                ok &= tally.apply(&mut self.held, (collector, l.ledger), *fee);
            }
        }
        self.out_of_range |= !ok;
    }
}

/// Whether a record joins the audit's sums (it was read, or changed into
/// this after it was read) or leaves them (what it was before the change).
#[derive(Clone, Copy, Debug)]
enum Tally {
    Add,
    Sub,
}

impl Tally {
    /// Adds `amount` to `sums[key]` or takes it away; false, and the sum
    /// unchanged, if that goes out of range.
    fn apply<K: Ord>(self, sums: &mut BTreeMap<K, Tokens>, key: K, amount: Tokens) -> bool {
        let s = sums.entry(key).or_default();
        let v = match self {
            Tally::Add => s.checked_add(amount),
            Tally::Sub => s.checked_sub(amount),
        };
        v.map(|v| *s = v).is_some()
    }
}

impl State {
    /// Opens the state kept in the memories `get` hands out (creating empty
    /// structures in empty memories).
    pub fn open(get: impl Fn(MemoryId) -> Memory) -> Self {
        Self {
            config: Cell::init(get(memory::CONFIG), Cbor(Config::default())),
            events: EventLog::init(get(memory::EVENT_LOG_BLOCKS), get(memory::EVENT_LOG_META)),
            ledgers: StableBTreeMap::init(get(memory::LEDGERS)),
            balances: StableBTreeMap::init(get(memory::BALANCES)),
            locks: StableBTreeMap::init(get(memory::LOCKS)),
            releases: StableBTreeMap::init(get(memory::RELEASES)),
            settled_locks: StableBTreeMap::init(get(memory::SETTLED_LOCKS)),
            pending: StableBTreeMap::init(get(memory::PENDING)),
            next_op_id: Cell::init(get(memory::NEXT_OP_ID), 0),
            block_scans: StableBTreeMap::init(get(memory::BLOCK_SCANS)),
            audit: BooksAudit::new(),
        }
    }

    /// Applies an init or upgrade argument: sets the matcher and whitelists
    /// the named ledgers (their fee is read before first use). Ledgers
    /// already whitelisted keep what the escrow knows of them.
    pub fn apply_config(&mut self, arg: EscrowInit, now: u64) {
        self.config.set(Cbor(Config {
            matcher: arg.matcher,
            governance: arg.governance,
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

    /// The checks an upgrade makes, in O(1) (at most [`MAX_LEDGERS`]
    /// records): the whitelist is within bounds and its records decode (a
    /// record that doesn't traps).
    pub fn check_config(&self) -> Result<(), String> {
        if self.ledgers.len() > MAX_LEDGERS as u64 {
            return Err(format!(
                "{} ledgers whitelisted, at most {MAX_LEDGERS} allowed",
                self.ledgers.len()
            ));
        }
        for e in self.ledgers.iter() {
            let _ = e.into_pair();
        }
        Ok(())
    }

    /// The configuration as an [`EscrowInit`].
    pub fn config(&self) -> EscrowInit {
        EscrowInit {
            matcher: self.config.get().0.matcher,
            ledgers: self.ledgers.keys().collect(),
            governance: self.config.get().0.governance,
        }
    }

    /// The matcher canister, if configured.
    pub fn matcher(&self) -> Option<Principal> {
        self.config.get().0.matcher
    }

    /// The SNS governance canister administering the escrow, if any.
    pub fn governance(&self) -> Option<Principal> {
        self.config.get().0.governance
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
            .filter_map(|ledger| Some(self.balances.get(&(owner, ledger))?.0.view(ledger)))
            .collect()
    }

    /// Stores `owner`'s new balance on `ledger` and moves the ledger's
    /// liabilities and pending pay by the difference. The only writer of
    /// balances.
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
        rec.pending = rec
            .pending
            .checked_sub(old.pending)
            .and_then(|p| p.checked_add(new.pending))
            .unwrap_or_else(|| panic!("BUG: pending pay out of range"));
        self.ledgers.insert(ledger, Cbor(rec));
        if let Some(c) = self.audit.cursor_mut()
            && c.balance_read(&(owner, ledger))
        {
            c.tally_balance((owner, ledger), &old, Tally::Sub);
            c.tally_balance((owner, ledger), &new, Tally::Add);
        }
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
        if let Some(c) = self.audit.cursor_mut()
            && c.lock_read(job_key)
        {
            c.tally_lock(&lock, Tally::Add);
            if let Some(old) = self.locks.insert(job_key.to_string(), Cbor(lock)) {
                self.audit
                    .cursor_mut()
                    .expect("the cursor is still there")
                    .tally_lock(&old.0, Tally::Sub);
            }
            return;
        }
        self.locks.insert(job_key.to_string(), Cbor(lock));
    }

    /// Number of locks kept: open ones, and settled ones until their
    /// retention ends.
    pub fn lock_count(&self) -> u64 {
        self.locks.len()
    }

    /// Records that the lock of `job_key` was settled at `now_ns`: it is
    /// deleted [`SETTLED_LOCK_RETENTION_SECS`] later.
    pub fn index_settled(&mut self, job_key: &str, now_ns: u64) {
        self.settled_locks
            .insert((now_ns, job_key_blob(job_key)), ());
    }

    /// Deletes up to `budget` settled locks whose retention has ended at
    /// `now_ns`, with their release records (their events stay). A lock
    /// holds nothing once settled, so no balance changes. Returns how many
    /// were deleted.
    ///
    /// No retried call can need them: the matcher settles a lock only after
    /// every step before it is done, and forgets the job itself after the
    /// same retention. A `release` or `settle` for a deleted lock answers
    /// `UnknownJob`.
    pub fn prune_settled_locks(&mut self, now_ns: u64, budget: usize) -> usize {
        let due = self
            .settled_locks
            .take_expired(now_ns, SETTLED_LOCK_RETENTION_SECS, budget);
        for &(_, blob) in &due {
            let job_key = String::from_utf8_lossy(blob.as_slice()).into_owned();
            if let Some(Cbor(old)) = self.locks.remove(&job_key)
                && let Some(c) = self.audit.cursor_mut()
                && c.lock_read(&job_key)
            {
                c.tally_lock(&old, Tally::Sub);
            }
            let seqs: Vec<(JobKeyBlob, u64)> = self
                .releases
                .keys_range((blob, 0)..=(blob, u64::MAX))
                .collect();
            for key in seqs {
                self.releases.remove(&key);
            }
        }
        due.len()
    }

    /// Number of settled locks waiting for their retention to end.
    pub fn settled_lock_count(&self) -> u64 {
        self.settled_locks.len()
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

    /// Forgets the ledger call of (owner, ledger), and any scan of the
    /// ledger's blocks for it; returns it.
    pub fn take_pending(
        &mut self,
        owner: Principal,
        ledger: Principal,
    ) -> Option<PendingOperation> {
        self.block_scans.remove(&(owner, ledger));
        self.pending.remove(&(owner, ledger)).map(|c| c.0)
    }

    /// Where the scan of the ledger's blocks for the pending call of `key`
    /// stands, once one started.
    pub fn block_scan(&self, key: Key) -> Option<BlockScan> {
        self.block_scans.get(&key).map(|c| c.0)
    }

    /// Records where the scan for the pending call of `key` stands.
    pub fn put_block_scan(&mut self, key: Key, scan: BlockScan) {
        assert!(
            self.pending.contains_key(&key),
            "BUG: a block scan for no pending call"
        );
        self.block_scans.insert(key, Cbor(scan));
    }

    /// A fresh operation number (for memos).
    pub fn next_op_id(&mut self) -> u64 {
        let id = *self.next_op_id.get();
        self.next_op_id.set(id + 1);
        id
    }

    /// What the escrow owes on `ledger`: Σ free + claimable + locked +
    /// pending.
    pub fn liabilities(&self, ledger: &Principal) -> Tokens {
        self.ledger(ledger).map(|r| r.liabilities).unwrap_or(0)
    }

    /// The pay held in locks on `ledger` for providers: Σ pending.
    pub fn pending_pay(&self, ledger: &Principal) -> Tokens {
        self.ledger(ledger).map(|r| r.pending).unwrap_or(0)
    }
}

/// The internal invariants, each aggregate recomputed from the records:
/// - per ledger, the kept liabilities equal Σ (free + claimable + locked +
///   pending), and the kept pending pay Σ pending;
/// - per (buyer, ledger), `locked` equals Σ remaining of its unsettled locks;
/// - per (provider, ledger), `pending` equals Σ of its pending pay over
///   the locks, plus for the market's fee collector Σ of the fees held
///   on pending pay in the locks it collects for;
/// - settled locks have nothing remaining and nothing pending; per lock,
///   released + Σ pending + forfeited equals Σ of its release records'
///   amounts, fees + Σ pending fees + forfeited fees Σ of their fees, and
///   its pending pay names at most [`MAX_PENDING_PAYEES`] providers, each
///   once, in order, with a positive amount;
/// - per lock, Σ of its extensions is below its total (the first lock
///   was positive).
///
/// The external invariant (per ledger: balance of the escrow's main
/// account == liabilities, once no ledger call is pending) needs the
/// ledger and is checked by the tests. Pending pay is part of it: it left
/// the buyer's `locked` but is still in the escrow's main account.
impl Books for State {
    type Cursor = AuditCursor;

    /// At most `budget` records (balances, locks and release records each
    /// count one; a lock's releases are read with it), from `cursor` on.
    /// Each broken record is pushed to `broken`; the sums are compared when
    /// the pass completes.
    fn audit_chunk(&self, request: ChunkRequest<'_, AuditCursor>) -> Chunk<AuditCursor> {
        let mut c = request.cursor.unwrap_or_default();
        let mut work = ChunkWork::new(request.budget);
        if !c.in_locks {
            let all = work.scan(self.balances.range(after(c.last_balance)), |e| {
                let (key, b) = e.into_pair();
                c.tally_balance(key, &b.0, Tally::Add);
                c.last_balance = Some(key);
                1
            });
            if !all {
                return work.pause(c);
            }
            c.in_locks = true;
        }
        let all = work.scan(self.locks.range(after(c.last_lock.clone())), |e| {
            let (job_key, l) = e.into_pair();
            let read = 1 + self.check_lock(&job_key, &l.0, request.broken);
            c.tally_lock(&l.0, Tally::Add);
            c.last_lock = Some(job_key);
            read
        });
        if !all {
            return work.pause(c);
        }
        self.compare_sums(c, request.broken);
        work.finish()
    }
}

impl AuditedBooks for State {
    fn audit_mut(&mut self) -> &mut BooksAudit<AuditCursor> {
        &mut self.audit
    }
}

impl State {
    /// Checks one lock against its release records; returns how many
    /// release records it read.
    fn check_lock(&self, job_key: &str, l: &LockRecord, broken: &mut Vec<String>) -> usize {
        let blob = job_key_blob(job_key);
        let mut rel: Option<Tokens> = Some(0);
        let mut rel_fees: Option<Tokens> = Some(0);
        let mut read = 0;
        for r in self.releases.range((blob, 0)..=(blob, u64::MAX)) {
            let r = r.into_pair().1.0;
            rel = rel.and_then(|s| s.checked_add(r.amount));
            rel_fees = rel_fees.and_then(|s| s.checked_add(r.fee));
            read += 1;
        }
        let Some(pending) = l.checked_pending() else {
            broken.push(format!("lock {job_key}: pending pay overflows"));
            return read;
        };
        let Some(pending_fees) = l.checked_pending_fees() else {
            broken.push(format!("lock {job_key}: pending fees overflow"));
            return read;
        };
        let fees_accounted = l
            .fees
            .checked_add(pending_fees)
            .and_then(|s| s.checked_add(l.forfeited_fees));
        if rel_fees.is_none() || rel_fees != fees_accounted {
            broken.push(format!(
                "lock {job_key}: fees {}, pending fees {pending_fees} and forfeited fees {} but releases' fees sum to {rel_fees:?}",
                l.fees, l.forfeited_fees
            ));
        }
        if l.pending_fees
            .iter()
            .any(|(p, a)| *a == 0 || l.pending_of(*p) == 0)
            || l.pending_fees.windows(2).any(|w| w[0].0 >= w[1].0)
            || (!l.pending_fees.is_empty() && l.fee_collector.is_none())
        {
            broken.push(format!(
                "lock {job_key}: pending fees {:?} are not positive amounts on pending pay, in order, with a collector",
                l.pending_fees
            ));
        }
        let accounted = l
            .released
            .checked_add(pending)
            .and_then(|s| s.checked_add(l.forfeited));
        if rel.is_none() || rel != accounted {
            broken.push(format!(
                "lock {job_key}: released {}, pending {pending} and forfeited {} but releases sum to {rel:?}",
                l.released, l.forfeited
            ));
        }
        if l.pending.len() > MAX_PENDING_PAYEES
            || l.pending.iter().any(|(_, a)| *a == 0)
            || l.pending.windows(2).any(|w| w[0].0 >= w[1].0)
        {
            broken.push(format!(
                "lock {job_key}: pending pay {:?} is not {MAX_PENDING_PAYEES} or fewer positive amounts of distinct providers in order",
                l.pending
            ));
        }
        if l.settled && (!l.pending.is_empty() || !l.pending_fees.is_empty()) {
            broken.push(format!("settled lock {job_key} still holds pending pay"));
        }
        if l.released
            .checked_add(pending)
            .and_then(|s| s.checked_add(pending_fees))
            .and_then(|s| s.checked_add(l.fees))
            .and_then(|s| s.checked_add(l.refunded))
            .is_none_or(|s| s > l.total)
        {
            broken.push(format!("lock {job_key} paid out more than its total"));
            return read;
        }
        match l.checked_extended() {
            None => broken.push(format!("lock {job_key}: extensions overflow")),
            Some(extended) if extended >= l.total => broken.push(format!(
                "lock {job_key}: extensions sum to {extended}, not below its total {}",
                l.total
            )),
            Some(_) => {}
        }
        if l.settled && l.checked_remaining() != Some(0) {
            broken.push(format!("settled lock {job_key} still holds tokens"));
        }
        read
    }

    /// The end of a pass: the sums of every record against the kept totals.
    fn compare_sums(&self, mut c: AuditCursor, broken: &mut Vec<String>) {
        if c.out_of_range {
            broken.push("a sum of balances or locks is out of range".into());
            return;
        }
        for e in self.ledgers.iter() {
            let (ledger, rec) = e.into_pair();
            let sum = c.liabilities.remove(&ledger).unwrap_or(0);
            if sum != rec.0.liabilities {
                broken.push(format!(
                    "ledger {ledger}: liabilities {} but balances sum to {sum}",
                    rec.0.liabilities
                ));
            }
            let pending = c.pending_pay.remove(&ledger).unwrap_or(0);
            if pending != rec.0.pending {
                broken.push(format!(
                    "ledger {ledger}: pending pay {} but balances' pending sums to {pending}",
                    rec.0.pending
                ));
            }
        }
        if c.liabilities.values().any(|v| *v > 0) {
            broken.push("balances on ledgers that are not whitelisted".into());
        }
        let per_key = [
            ("locked balances", c.locked, "remaining locks", c.remaining),
            (
                "pending balances",
                c.pending,
                "pending pay in locks",
                c.held,
            ),
        ];
        for (name, mut balances, locks_name, mut locks) in per_key {
            balances.retain(|_, v| *v > 0);
            locks.retain(|_, v| *v > 0);
            if balances != locks {
                broken.push(format!(
                    "{name} {balances:?} differ from {locks_name} {locks:?}"
                ));
            }
        }
    }
}

canister_common::canister_state!(State, State::open(memory::get), events: EscrowEvent);

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
                released: 5,
                ..LockRecord::new(buyer, ledger, u128::from(u64::MAX) + 7, 0)
            }
        );
        assert_eq!(new.initial(), new.total);
        let again = Cbor::<LockRecord>::from_bytes(Cow::Owned(Cbor(new.clone()).into_bytes()));
        assert_eq!(again.0, new);
    }

    /// Records as they were stored before pending pay existed.
    #[derive(Serialize, Deserialize, Clone)]
    struct BalanceRecordV0 {
        free: Tokens,
        claimable: Tokens,
        locked: Tokens,
    }

    #[derive(Serialize, Deserialize, Clone)]
    struct ReleaseRecordV0 {
        provider: Principal,
        amount: Tokens,
    }

    #[derive(Serialize, Deserialize, Clone)]
    struct LedgerRecordV0 {
        fee: Option<Tokens>,
        symbol: Option<String>,
        liabilities: Tokens,
    }

    fn decoded<
        T: Serialize + serde::de::DeserializeOwned,
        U: Serialize + serde::de::DeserializeOwned,
    >(
        old: T,
    ) -> U {
        Cbor::<U>::from_bytes(Cow::Owned(Cbor(old).into_bytes())).0
    }

    #[test]
    fn records_written_before_pending_pay_still_decode_with_none_pending() {
        let b: BalanceRecord = decoded(BalanceRecordV0 {
            free: 1,
            claimable: 2,
            locked: 3,
        });
        assert_eq!(
            b,
            BalanceRecord {
                free: 1,
                claimable: 2,
                locked: 3,
                pending: 0
            }
        );
        let provider = Principal::from_slice(&[4; 10]);
        let r: ReleaseRecord = decoded(ReleaseRecordV0 {
            provider,
            amount: 5,
        });
        assert_eq!(
            r,
            ReleaseRecord {
                provider,
                amount: 5,
                hold: false,
                fee: 0,
            }
        );
        let l: LedgerRecord = decoded(LedgerRecordV0 {
            fee: Some(10),
            symbol: None,
            liabilities: 6,
        });
        assert_eq!((l.liabilities, l.pending), (6, 0));
        let lock: LockRecord = decoded(LockRecordV0 {
            buyer: provider,
            ledger: provider,
            total: 9,
            released: 2,
            refunded: 0,
            settled: false,
        });
        assert_eq!((lock.pending.clone(), lock.forfeited), (vec![], 0));
        assert_eq!(lock.remaining(), 7);
    }

    fn fresh(ledger: Principal) -> State {
        use ic_stable_structures::DefaultMemoryImpl;
        use ic_stable_structures::memory_manager::MemoryManager;
        let mm = MemoryManager::init_with_bucket_size(DefaultMemoryImpl::default(), 1);
        let mut s = State::open(|id| mm.get(id));
        s.apply_config(
            EscrowInit {
                matcher: None,
                ledgers: vec![ledger],
                governance: None,
            },
            0,
        );
        s
    }

    /// Locks 10 more of `owner`'s free balance under `job_key`.
    fn lock_more(s: &mut State, owner: Principal, ledger: Principal, job_key: &str) {
        s.update_balance(owner, ledger, |b| {
            b.free -= 10;
            b.locked += 10;
        });
        let mut l = s
            .lock(job_key)
            .unwrap_or_else(|| LockRecord::new(owner, ledger, 0, 0));
        l.total += 10;
        s.put_lock(job_key, l);
    }

    /// Holds 1 of the lock of `job_key` for `provider` (release `seq`), or
    /// with `forfeit` takes the provider's pending pay back.
    fn hold_one(s: &mut State, provider: Principal, job_key: &str, seq: u64, forfeit: bool) {
        let mut l = s.lock(job_key).unwrap();
        if forfeit {
            let amount = l.take_pending(provider);
            l.forfeited += amount;
            s.update_balance(provider, l.ledger, |b| b.take_pending(amount));
            s.update_balance(l.buyer, l.ledger, |b| b.credit_locked(amount));
        } else {
            l.hold(provider, 1);
            s.update_balance(l.buyer, l.ledger, |b| b.unlock(1));
            s.update_balance(provider, l.ledger, |b| b.credit_pending(1));
            s.put_release(
                job_key,
                seq,
                ReleaseRecord {
                    provider,
                    amount: 1,
                    hold: true,
                    fee: 0,
                },
            );
        }
        s.put_lock(job_key, l);
    }

    #[test]
    fn the_audit_in_chunks_follows_books_that_change_between_them() {
        let ledger = Principal::from_slice(&[9; 10]);
        let mut s = fresh(ledger);
        let owner = |i: u8| Principal::from_slice(&[i; 29]);
        for i in 0..40u8 {
            s.update_balance(owner(i), ledger, |b| b.free = 1_000);
            lock_more(&mut s, owner(i), ledger, &format!("job/{i}"));
        }
        let mut logged = Vec::new();
        let mut t = 0;
        let mut i = 0u8;
        loop {
            s.run_audit_chunk(t, 7, |l| logged.push(l.to_string()));
            if !s.audit.is_running() {
                break;
            }
            // Records both already read and not yet read change.
            for j in [i, 39 - i, (i * 7) % 40] {
                lock_more(&mut s, owner(j), ledger, &format!("job/{j}"));
            }
            // Pending pay moves between balances and locks both read and
            // not yet read.
            for j in [i, 39 - i] {
                let key = format!("job/{j}");
                hold_one(&mut s, owner(100 + i % 3), &key, t, false);
                hold_one(&mut s, owner(j), &key, t + 100, false);
                if i.is_multiple_of(2) {
                    hold_one(&mut s, owner(100 + i % 3), &key, 0, true);
                }
            }
            s.update_balance(owner(200), ledger, |b| b.free += 3);
            i += 1;
            t += 1;
        }
        assert!(i > 5, "the pass took several chunks");
        assert!(s.pending_pay(&ledger) > 0);
        assert_eq!(s.audit.passes(), 1);
        assert_eq!(s.audit.last_pass_failures(), 0, "{logged:?}");
        assert!(logged.is_empty(), "{logged:?}");
        s.check_invariants().unwrap();

        // A balance whose locked part no lock accounts for.
        s.update_balance(owner(3), ledger, |b| b.locked += 1);
        assert!(s.check_invariants().is_err());
        let found = BooksAudit::new().run_pass(|request| s.audit_chunk(request));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("differ from remaining locks"),
            "{found:?}"
        );
        t += canister_common::audit::AUDIT_EVERY_NS;
        s.run_audit_chunk(t, usize::MAX, |l| logged.push(l.to_string()));
        assert_eq!(s.audit.passes(), 2);
        assert_eq!(s.audit.last_pass_failures(), 1);
        assert_eq!(s.audit.failures_total(), 1);
        assert!(
            logged
                .iter()
                .any(|l| l.contains("BUG: audit found broken books"))
        );
    }
}
