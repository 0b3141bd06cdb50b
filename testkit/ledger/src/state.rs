//! The ledger's durable state: every structure lives in stable memory, so an
//! upgrade keeps it without any serialisation. The rules in
//! [`crate::operations`] are the only writers.

use std::borrow::Cow;
use std::cell::RefCell;

use ic_stable_structures::storable::Bound;
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell, StableLog, Storable};
use icrc_ledger_types::icrc1::account::Account;

use crate::block::{Block, ListBlocksResult};
use crate::config::{
    Config, ConfigCell, MAX_BLOCKS_PER_PAGE, PERMITTED_DRIFT_NANOS, PRUNE_BATCH, TX_WINDOW_NANOS,
};
use crate::keys::{
    AccountKey, AllowanceExpiryKey, ApprovalKey, DedupExpiryKey, TxHash, account_from_key,
    account_key, allowance_expiry_key, approval_key, dedup_expiry_key, split_allowance_expiry_key,
    split_dedup_expiry_key,
};
use crate::memory::{self, Memory};

/// A stored allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredAllowance {
    /// What the spender may still spend (amounts plus fees).
    pub amount: u64,
    /// When the allowance lapses (nanoseconds since the epoch).
    pub expires_at: Option<u64>,
}

impl StoredAllowance {
    const SIZE: usize = 17;
}

impl Storable for StoredAllowance {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(Self::SIZE);
        bytes.extend_from_slice(&self.amount.to_be_bytes());
        bytes.push(u8::from(self.expires_at.is_some()));
        bytes.extend_from_slice(&self.expires_at.unwrap_or(0).to_be_bytes());
        bytes
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let word = |range: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[range]);
            u64::from_be_bytes(b)
        };
        Self {
            amount: word(0..8),
            expires_at: (bytes[8] == 1).then(|| word(9..17)),
        }
    }

    const BOUND: Bound = Bound::Bounded {
        max_size: Self::SIZE as u32,
        is_fixed_size: true,
    };
}

/// All durable state of the ledger.
pub struct State {
    config: StableCell<ConfigCell, Memory>,
    total_supply: StableCell<u64, Memory>,
    balances: StableBTreeMap<AccountKey, u64, Memory>,
    allowances: StableBTreeMap<ApprovalKey, StoredAllowance, Memory>,
    allowance_expiries: StableBTreeMap<AllowanceExpiryKey, (), Memory>,
    dedup: StableBTreeMap<TxHash, u64, Memory>,
    dedup_expiries: StableBTreeMap<DedupExpiryKey, (), Memory>,
    blocks: StableLog<Block, Memory, Memory>,
}

impl State {
    /// Opens the state in `memory`, keeping whatever it already holds (the
    /// upgrade path) or creating empty structures (a fresh install).
    pub fn open(memory: DefaultMemoryImpl) -> Self {
        Self::open_with_bucket_size(memory, memory::BUCKET_PAGES)
    }

    /// Like [`State::open`], with `bucket_pages` pages per bucket when the
    /// memory is fresh. Native tests use one page: growing a vector memory by
    /// nine 8 MiB buckets per test ledger is what would make them slow.
    pub fn open_with_bucket_size(memory: DefaultMemoryImpl, bucket_pages: u16) -> Self {
        let mm = memory::manager(memory, bucket_pages);
        Self {
            config: StableCell::init(mm.get(memory::CONFIG), ConfigCell::default()),
            total_supply: StableCell::init(mm.get(memory::TOTAL_SUPPLY), 0),
            balances: StableBTreeMap::init(mm.get(memory::BALANCES)),
            allowances: StableBTreeMap::init(mm.get(memory::ALLOWANCES)),
            allowance_expiries: StableBTreeMap::init(mm.get(memory::ALLOWANCE_EXPIRIES)),
            dedup: StableBTreeMap::init(mm.get(memory::DEDUP)),
            dedup_expiries: StableBTreeMap::init(mm.get(memory::DEDUP_EXPIRIES)),
            blocks: StableLog::init(mm.get(memory::BLOCKS_INDEX), mm.get(memory::BLOCKS_DATA)),
        }
    }

    /// Whether a configuration has been stored (the ledger was installed).
    pub fn is_installed(&self) -> bool {
        self.config.get().0.is_some()
    }

    /// The configuration; the ledger cannot run without one.
    pub fn config(&self) -> &Config {
        self.config
            .get()
            .0
            .as_ref()
            .expect("bug: ledger used before installation")
    }

    /// Stores the configuration.
    pub fn set_config(&mut self, config: Config) {
        self.config.set(ConfigCell(Some(config)));
    }

    /// The balance of `account`.
    pub fn balance(&self, account: &Account) -> u64 {
        self.balances.get(&account_key(account)).unwrap_or(0)
    }

    /// Sets the balance of `account`; zero balances are removed from the map.
    pub(crate) fn set_balance(&mut self, account: &Account, amount: u64) {
        let key = account_key(account);
        if amount == 0 {
            self.balances.remove(&key);
        } else {
            self.balances.insert(key, amount);
        }
    }

    /// Sum of all balances.
    pub fn total_supply(&self) -> u64 {
        *self.total_supply.get()
    }

    pub(crate) fn set_total_supply(&mut self, amount: u64) {
        self.total_supply.set(amount);
    }

    /// Every non-zero balance, in key order (for audits and tests; cost grows
    /// with the number of accounts).
    pub fn balances(&self) -> Vec<(Account, u64)> {
        self.balances
            .iter()
            .map(|entry| {
                let (key, amount) = entry.into_pair();
                (account_from_key(&key), amount)
            })
            .collect()
    }

    /// The allowance `spender` has on `owner` at time `now`; an expired
    /// allowance reads as none.
    pub fn allowance(&self, owner: &Account, spender: &Account, now: u64) -> StoredAllowance {
        match self.allowances.get(&approval_key(owner, spender)) {
            Some(a) if a.expires_at.is_none_or(|t| t > now) => a,
            _ => StoredAllowance {
                amount: 0,
                expires_at: None,
            },
        }
    }

    /// Replaces the allowance `spender` has on `owner`; a zero amount removes it.
    pub(crate) fn set_allowance(
        &mut self,
        owner: &Account,
        spender: &Account,
        allowance: StoredAllowance,
    ) {
        let key = approval_key(owner, spender);
        if let Some(old) = self.allowances.remove(&key)
            && let Some(t) = old.expires_at
        {
            self.allowance_expiries
                .remove(&allowance_expiry_key(t, &key));
        }
        if allowance.amount > 0 {
            if let Some(t) = allowance.expires_at {
                self.allowance_expiries
                    .insert(allowance_expiry_key(t, &key), ());
            }
            self.allowances.insert(key, allowance);
        }
    }

    /// Number of stored allowances, expired ones not yet pruned included.
    pub fn allowance_count(&self) -> u64 {
        self.allowances.len()
    }

    /// The block index of a remembered transaction.
    pub fn find_duplicate(&self, hash: &TxHash) -> Option<u64> {
        self.dedup.get(hash)
    }

    /// Remembers a transaction for dedup until its window has passed.
    pub(crate) fn remember(&mut self, hash: TxHash, created_at_time: u64, block: u64) {
        self.dedup.insert(hash, block);
        self.dedup_expiries
            .insert(dedup_expiry_key(created_at_time, &hash), ());
    }

    /// Number of remembered transactions, expired ones not yet pruned included.
    pub fn dedup_count(&self) -> u64 {
        self.dedup.len()
    }

    /// Removes at most [`PRUNE_BATCH`] dedup entries whose window has passed
    /// (they would be refused as `TooOld` anyway) and at most as many expired
    /// allowances (they already read as none).
    pub fn prune(&mut self, now: u64) {
        let oldest_kept = now.saturating_sub(TX_WINDOW_NANOS + PERMITTED_DRIFT_NANOS);
        let stale: Vec<DedupExpiryKey> = self
            .dedup_expiries
            .keys()
            .take(PRUNE_BATCH)
            .take_while(|k| split_dedup_expiry_key(k).0 < oldest_kept)
            .collect();
        for key in stale {
            self.dedup_expiries.remove(&key);
            self.dedup.remove(&split_dedup_expiry_key(&key).1);
        }
        let lapsed: Vec<AllowanceExpiryKey> = self
            .allowance_expiries
            .keys()
            .take(PRUNE_BATCH)
            .take_while(|k| split_allowance_expiry_key(k).0 <= now)
            .collect();
        for key in lapsed {
            self.allowance_expiries.remove(&key);
            self.allowances.remove(&split_allowance_expiry_key(&key).1);
        }
    }

    /// Appends a block and returns its index.
    pub(crate) fn append_block(&mut self, block: &Block) -> u64 {
        self.blocks
            .append(block)
            .expect("bug: stable memory exhausted while appending a block")
    }

    /// Number of blocks in the log.
    pub fn block_count(&self) -> u64 {
        self.blocks.len()
    }

    /// The block at `index`.
    pub fn block(&self, index: u64) -> Option<Block> {
        self.blocks.get(index)
    }

    /// A page of the log starting at `start`, at most `MAX_BLOCKS_PER_PAGE` long.
    pub fn blocks_page(&self, start: u64, length: u64) -> ListBlocksResult {
        let log_length = self.blocks.len();
        let first_index = start.min(log_length);
        let end = first_index
            .saturating_add(length.min(MAX_BLOCKS_PER_PAGE))
            .min(log_length);
        let blocks = (first_index..end)
            .map(|i| {
                self.blocks
                    .get(i)
                    .expect("bug: block index within log length")
            })
            .collect();
        ListBlocksResult {
            log_length,
            first_index,
            blocks,
        }
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Installs `state` as the canister's state (at init and post_upgrade).
pub fn replace_state(state: State) {
    STATE.with(|s| *s.borrow_mut() = Some(state));
}

/// Runs `f` on the canister's state.
pub fn read_state<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with(|s| f(s.borrow().as_ref().expect("bug: state not opened")))
}

/// Runs `f` on the canister's state, mutably.
pub fn mutate_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(s.borrow_mut().as_mut().expect("bug: state not opened")))
}
