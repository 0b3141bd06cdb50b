//! An in-memory ICRC-1/2 ledger set for the canisters' native tests.
//!
//! One [`FakeLedger`] is the world as one canister sees it: a clock, the
//! canister's own id, and one book per ledger id with balances, allowances,
//! fees and deduplication. Each ledger call goes through
//! [`FakeLedger::call`], which takes the next injected [`Fault`]: a call can
//! be rejected, trap, time out before or after the ledger executed it, or
//! meet a changed fee. It answers the transfers every canister sends
//! ([`LedgerCalls`]); each canister's test runtime implements the rest of
//! its own `Runtime` trait on top of it. Every executed transaction is also a block
//! served by `icrc3_get_blocks` ([`BlockSource`]), unless a test turns the
//! ledger into one without ICRC-3 ([`FakeLedger::serves_icrc3`]).

use candid::{Nat, Principal};
use canister_common::ledger::{CallFailure, LedgerCalls};
use canister_common::ledger_blocks::BlockSource;
use canister_common::runtime::SystemApi;
use icrc_ledger_types::icrc::generic_value::{ICRC3Map, ICRC3Value};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use icrc_ledger_types::icrc3::blocks::{BlockWithId, GetBlocksRequest, GetBlocksResult};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A token amount in a ledger's smallest unit.
pub type Tokens = u128;

/// The ledgers' deduplication window plus permitted drift, in nanoseconds.
pub const DEDUP_WINDOW_NS: u64 = 24 * 3600 * 1_000_000_000 + 60 * 1_000_000_000;

/// How far in the future a `created_at_time` may lie, in nanoseconds.
const PERMITTED_DRIFT_NS: u64 = 60 * 1_000_000_000;

/// What happens to the next ledger call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Rejected by the system before reaching the ledger: no effect.
    Reject,
    /// The ledger traps: no effect.
    Trap,
    /// Times out before the ledger executes it: no effect, outcome unknown.
    LostRequest,
    /// The ledger executes it, but the reply is lost: outcome unknown.
    LostReply,
    /// The ledger's fee changes to this value before the call.
    FeeChange(Tokens),
}

/// One ledger's books.
#[derive(Default, Debug)]
pub struct Book {
    /// The transfer fee.
    pub fee: Tokens,
    /// Balances by account (the default subaccount stored as `None`).
    pub balances: BTreeMap<Account, Tokens>,
    /// Allowances by (owner account, spender).
    pub allowances: BTreeMap<(Account, Principal), Tokens>,
    /// Deduplication: transaction description -> block.
    seen: BTreeMap<String, u128>,
    /// Memos of the transactions executed.
    pub executed_memos: BTreeSet<Vec<u8>>,
    /// The index the next block gets.
    pub next_block: u128,
    /// Everything minted.
    pub minted: Tokens,
    /// Every fee burned.
    pub burned: Tokens,
    /// The block log, in the ICRC-3 form of the DFINITY ledgers.
    pub blocks: Vec<ICRC3Value>,
}

/// The fake ledgers and the clock seen by one canister.
pub struct FakeLedger {
    /// The canister that makes the calls (the `from` owner of a transfer,
    /// the spender of a `transfer_from`).
    pub canister: Principal,
    /// Current time in nanoseconds since the epoch.
    pub now: Cell<u64>,
    /// Whether every call yields once before answering (lets tests
    /// interleave two operations at an `.await`).
    pub yield_first: Cell<bool>,
    /// Number of calls made through [`FakeLedger::call`].
    pub calls: Cell<u64>,
    /// How long a `created_at_time` deduplicates; older ones are `TooOld`.
    pub dedup_window_ns: Cell<u64>,
    /// Whether the ledgers list ICRC-3 and serve `icrc3_get_blocks` (the
    /// ICP ledger does not).
    pub serves_icrc3: Cell<bool>,
    books: RefCell<BTreeMap<Principal, Book>>,
    faults: RefCell<VecDeque<Fault>>,
}

struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// The default subaccount is one account whether named or not.
fn normal(a: Account) -> Account {
    Account {
        owner: a.owner,
        subaccount: a.subaccount.filter(|s| *s != [0; 32]),
    }
}

fn to_u128(n: &Nat) -> u128 {
    u128::try_from(&n.0).unwrap()
}

/// One transaction to apply to a book.
struct Tx {
    dedup: String,
    from: Account,
    to: Account,
    amount: Tokens,
    fee: Option<Tokens>,
    created_at_time: Option<u64>,
    memo: Option<Vec<u8>>,
    spender: Option<Principal>,
}

impl FakeLedger {
    /// No ledgers yet; the clock at 2025-01-01.
    pub fn new(canister: Principal) -> Self {
        FakeLedger {
            canister,
            now: Cell::new(1_735_689_600_000_000_000),
            yield_first: Cell::new(false),
            calls: Cell::new(0),
            dedup_window_ns: Cell::new(DEDUP_WINDOW_NS),
            serves_icrc3: Cell::new(true),
            books: RefCell::new(BTreeMap::new()),
            faults: RefCell::new(VecDeque::new()),
        }
    }

    /// Adds a ledger with empty books.
    pub fn add_ledger(&self, ledger: Principal, fee: Tokens) {
        self.books.borrow_mut().insert(
            ledger,
            Book {
                fee,
                ..Default::default()
            },
        );
    }

    fn with_book<T>(&self, ledger: Principal, f: impl FnOnce(&mut Book) -> T) -> T {
        f(self
            .books
            .borrow_mut()
            .get_mut(&ledger)
            .unwrap_or_else(|| panic!("no fake ledger {ledger}")))
    }

    /// Changes `ledger`'s fee.
    pub fn set_fee(&self, ledger: Principal, fee: Tokens) {
        self.with_book(ledger, |b| b.fee = fee);
    }

    /// `ledger`'s fee.
    pub fn fee(&self, ledger: Principal) -> Tokens {
        self.with_book(ledger, |b| b.fee)
    }

    /// Moves the clock forward.
    pub fn advance(&self, ns: u64) {
        self.now.set(self.now.get() + ns);
    }

    /// Queues a fault for a coming call.
    pub fn push_fault(&self, f: Fault) {
        self.faults.borrow_mut().push_back(f);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.faults.borrow_mut().clear();
    }

    /// Creates `amount` in `to`.
    pub fn mint(&self, ledger: Principal, to: Account, amount: Tokens) {
        self.with_book(ledger, |b| {
            *b.balances.entry(normal(to)).or_default() += amount;
            b.minted += amount;
        });
    }

    /// `owner` approves the canister to spend `amount`.
    pub fn approve(&self, ledger: Principal, owner: Account, amount: Tokens) {
        let spender = self.canister;
        self.with_book(ledger, |b| {
            b.allowances.insert((normal(owner), spender), amount);
        });
    }

    /// `account`'s balance on `ledger`.
    pub fn balance(&self, ledger: Principal, account: Account) -> Tokens {
        self.with_book(ledger, |b| {
            b.balances.get(&normal(account)).copied().unwrap_or(0)
        })
    }

    /// The sum of every account `owner` has on `ledger`.
    pub fn holdings(&self, ledger: Principal, owner: Principal) -> Tokens {
        self.with_book(ledger, |b| {
            b.balances
                .iter()
                .filter(|(a, _)| a.owner == owner)
                .map(|(_, t)| *t)
                .sum()
        })
    }

    /// A transfer made by someone other than the canister (a push deposit).
    pub fn external_transfer(
        &self,
        ledger: Principal,
        from: Account,
        to: Account,
        amount: Tokens,
    ) -> Result<(), String> {
        let tx = Tx {
            dedup: String::new(),
            from,
            to,
            amount,
            fee: None,
            created_at_time: None,
            memo: None,
            spender: None,
        };
        self.apply(ledger, tx)
            .map(drop)
            .map_err(|_| "insufficient funds".into())
    }

    /// Whether a transaction with this memo was executed on `ledger`.
    pub fn executed(&self, ledger: Principal, memo: &[u8]) -> bool {
        self.with_book(ledger, |b| b.executed_memos.contains(memo))
    }

    /// The ledger's own conservation: minted == Σ balances + burned.
    pub fn check_supply(&self, ledger: Principal) {
        self.with_book(ledger, |b| {
            let sum: Tokens = b.balances.values().sum();
            assert_eq!(
                b.minted,
                sum + b.burned,
                "ledger {ledger} created or lost tokens"
            );
        });
    }

    /// Makes one call to `ledger`: counts it, yields if asked, takes the
    /// next fault and runs `exec` (the ledger's side of the call) unless the
    /// fault stops it before the ledger.
    pub async fn call<T>(
        &self,
        ledger: Principal,
        exec: impl FnOnce(&Self) -> T,
    ) -> Result<T, CallFailure> {
        self.calls.set(self.calls.get() + 1);
        if self.yield_first.get() {
            YieldOnce(false).await;
        }
        let fault = self.faults.borrow_mut().pop_front();
        let rejected = |code, message: &str| {
            Err(CallFailure::Rejected {
                code,
                message: message.into(),
            })
        };
        let unknown = |message: &str| {
            Err(CallFailure::Unknown {
                message: message.into(),
            })
        };
        match fault {
            Some(Fault::Reject) => rejected(2, "injected reject"),
            Some(Fault::Trap) => rejected(5, "injected trap"),
            Some(Fault::LostRequest) => unknown("injected timeout"),
            Some(Fault::LostReply) => {
                exec(self);
                unknown("injected lost reply")
            }
            Some(Fault::FeeChange(fee)) => {
                self.set_fee(ledger, fee);
                Ok(exec(self))
            }
            None => Ok(exec(self)),
        }
    }

    /// `icrc1_transfer` from one of the canister's accounts, executed now.
    pub fn transfer(&self, ledger: Principal, arg: TransferArg) -> Result<Nat, TransferError> {
        let tx = Tx {
            dedup: format!("transfer {:?} {arg:?}", self.canister),
            from: Account {
                owner: self.canister,
                subaccount: arg.from_subaccount,
            },
            to: arg.to,
            amount: to_u128(&arg.amount),
            fee: arg.fee.as_ref().map(to_u128),
            created_at_time: arg.created_at_time,
            memo: arg.memo.map(|m| m.0.into_vec()),
            spender: None,
        };
        self.apply(ledger, tx).map(Nat::from).map_err(|e| match e {
            TransferFromError::BadFee { expected_fee } => TransferError::BadFee { expected_fee },
            TransferFromError::InsufficientFunds { balance } => {
                TransferError::InsufficientFunds { balance }
            }
            TransferFromError::TooOld => TransferError::TooOld,
            TransferFromError::CreatedInFuture { ledger_time } => {
                TransferError::CreatedInFuture { ledger_time }
            }
            TransferFromError::Duplicate { duplicate_of } => {
                TransferError::Duplicate { duplicate_of }
            }
            other => panic!("unexpected {other:?}"),
        })
    }

    /// `icrc2_transfer_from` with the canister as spender, executed now.
    pub fn transfer_from(
        &self,
        ledger: Principal,
        arg: TransferFromArgs,
    ) -> Result<Nat, TransferFromError> {
        let tx = Tx {
            dedup: format!("transfer_from {:?} {arg:?}", self.canister),
            from: arg.from,
            to: arg.to,
            amount: to_u128(&arg.amount),
            fee: arg.fee.as_ref().map(to_u128),
            created_at_time: arg.created_at_time,
            memo: arg.memo.map(|m| m.0.into_vec()),
            spender: Some(self.canister),
        };
        self.apply(ledger, tx).map(Nat::from)
    }

    fn apply(&self, ledger: Principal, tx: Tx) -> Result<u128, TransferFromError> {
        let now = self.now.get();
        let window = self.dedup_window_ns.get();
        let (from, to) = (normal(tx.from), normal(tx.to));
        self.with_book(ledger, |b| {
            if let Some(f) = tx.fee
                && f != b.fee
            {
                return Err(TransferFromError::BadFee {
                    expected_fee: b.fee.into(),
                });
            }
            if let Some(t) = tx.created_at_time {
                if t.saturating_add(window) < now {
                    return Err(TransferFromError::TooOld);
                }
                if t > now + PERMITTED_DRIFT_NS {
                    return Err(TransferFromError::CreatedInFuture { ledger_time: now });
                }
                if let Some(block) = b.seen.get(&tx.dedup) {
                    return Err(TransferFromError::Duplicate {
                        duplicate_of: (*block).into(),
                    });
                }
            }
            let need = tx.amount + b.fee;
            if let Some(spender) = tx.spender {
                let allowance = b.allowances.get(&(from, spender)).copied().unwrap_or(0);
                if allowance < need {
                    return Err(TransferFromError::InsufficientAllowance {
                        allowance: allowance.into(),
                    });
                }
            }
            let have = b.balances.get(&from).copied().unwrap_or(0);
            if have < need {
                return Err(TransferFromError::InsufficientFunds {
                    balance: have.into(),
                });
            }
            if let Some(spender) = tx.spender {
                *b.allowances.get_mut(&(from, spender)).unwrap() -= need;
            }
            *b.balances.get_mut(&from).unwrap() -= need;
            *b.balances.entry(to).or_default() += tx.amount;
            b.burned += b.fee;
            let block = b.next_block;
            b.next_block += 1;
            b.blocks.push(block_value(&tx, from, to, now));
            if tx.created_at_time.is_some() {
                b.seen.insert(tx.dedup, block);
            }
            if let Some(m) = tx.memo {
                b.executed_memos.insert(m);
            }
            Ok(block)
        })
    }
}

/// A transaction's block as the DFINITY ICRC ledgers write it.
fn block_value(tx: &Tx, from: Account, to: Account, now: u64) -> ICRC3Value {
    let account = |a: Account| {
        let mut parts = vec![ICRC3Value::Blob(a.owner.as_slice().to_vec().into())];
        if let Some(s) = a.subaccount {
            parts.push(ICRC3Value::Blob(s.to_vec().into()));
        }
        ICRC3Value::Array(parts)
    };
    let mut t = ICRC3Map::new();
    t.insert("op".into(), ICRC3Value::Text("xfer".into()));
    t.insert("from".into(), account(from));
    t.insert("to".into(), account(to));
    t.insert("amt".into(), ICRC3Value::Nat(tx.amount.into()));
    if let Some(f) = tx.fee {
        t.insert("fee".into(), ICRC3Value::Nat(f.into()));
    }
    if let Some(s) = tx.spender {
        t.insert("spender".into(), account(Account::from(s)));
    }
    if let Some(m) = &tx.memo {
        t.insert("memo".into(), ICRC3Value::Blob(m.clone().into()));
    }
    if let Some(c) = tx.created_at_time {
        t.insert("ts".into(), ICRC3Value::Nat(c.into()));
    }
    let mut block = ICRC3Map::new();
    block.insert("ts".into(), ICRC3Value::Nat(now.into()));
    block.insert("tx".into(), ICRC3Value::Map(t));
    ICRC3Value::Map(block)
}

impl BlockSource for FakeLedger {
    async fn supported_standards(&self, ledger: Principal) -> Result<Vec<String>, String> {
        let icrc3 = self.serves_icrc3.get();
        self.call(ledger, |_| {
            let mut names = vec!["ICRC-1".to_string(), "ICRC-2".to_string()];
            if icrc3 {
                names.push("ICRC-3".to_string());
            }
            names
        })
        .await
        .map_err(|f| format!("{f:?}"))
    }

    async fn get_blocks(
        &self,
        ledger: Principal,
        method: &str,
        args: Vec<GetBlocksRequest>,
    ) -> Result<GetBlocksResult, String> {
        if method != "icrc3_get_blocks" || !self.serves_icrc3.get() {
            return Err(format!("the fake ledger has no method {method}"));
        }
        self.call(ledger, |l| {
            l.with_book(ledger, |b| {
                let mut blocks = vec![];
                for r in &args {
                    let (start, length) = r.as_start_and_length().unwrap();
                    let end = start.saturating_add(length).min(b.blocks.len() as u64);
                    for i in start..end {
                        blocks.push(BlockWithId {
                            id: i.into(),
                            block: b.blocks[i as usize].clone(),
                        });
                    }
                }
                GetBlocksResult {
                    log_length: b.blocks.len().into(),
                    blocks,
                    archived_blocks: vec![],
                }
            })
        })
        .await
        .map_err(|f| format!("{f:?}"))
    }
}

impl LedgerCalls for FakeLedger {
    async fn icrc1_transfer(
        &self,
        ledger: Principal,
        arg: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallFailure> {
        self.call(ledger, |l| l.transfer(ledger, arg)).await
    }

    async fn icrc2_transfer_from(
        &self,
        ledger: Principal,
        arg: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallFailure> {
        self.call(ledger, |l| l.transfer_from(ledger, arg)).await
    }
}

/// Never called: the native tests name no archive for the event log.
impl canister_common::archiving::ArchiveCalls for FakeLedger {}

impl SystemApi for FakeLedger {
    fn now_ns(&self) -> u64 {
        self.now.get()
    }

    fn self_id(&self) -> Principal {
        self.canister
    }
}
