//! An in-memory ICRC-1/2 ledger set (one book per ledger id) implementing
//! [`Runtime`], with fault injection: a call can be rejected, time out
//! before or after the ledger executed it, or meet a changed fee.

use crate::runtime::{CallFailure, Runtime, SystemApi};
use candid::Nat;
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use market_api::{Principal, StandardRecord, Tokens};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The ledgers' deduplication window plus permitted drift, in nanoseconds.
pub const DEDUP_WINDOW_NS: u64 = 24 * 3600 * 1_000_000_000 + 60 * 1_000_000_000;

/// What happens to the next ledger call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Rejected before reaching the ledger: no effect.
    Reject,
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
    pub fee: Tokens,
    pub balances: BTreeMap<Account, Tokens>,
    pub allowances: BTreeMap<(Account, Principal), Tokens>,
    /// Deduplication: transaction description -> block.
    seen: BTreeMap<String, u128>,
    /// Memos of the transactions executed.
    pub executed_memos: BTreeSet<Vec<u8>>,
    pub next_block: u128,
    pub minted: Tokens,
    pub burned: Tokens,
}

/// The fake ledgers and clock seen by the escrow.
pub struct FakeLedger {
    pub escrow: Principal,
    books: RefCell<BTreeMap<Principal, Book>>,
    faults: RefCell<VecDeque<Fault>>,
    time: Cell<u64>,
    /// Whether every call yields once before answering (lets tests
    /// interleave two operations at an `.await`).
    pub yield_first: Cell<bool>,
    /// Number of calls made.
    pub calls: Cell<u64>,
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

impl FakeLedger {
    pub fn new(escrow: Principal) -> Self {
        FakeLedger {
            escrow,
            books: RefCell::new(BTreeMap::new()),
            faults: RefCell::new(VecDeque::new()),
            time: Cell::new(1_735_689_600_000_000_000),
            yield_first: Cell::new(false),
            calls: Cell::new(0),
        }
    }

    pub fn add_ledger(&self, ledger: Principal, fee: Tokens) {
        self.books.borrow_mut().insert(
            ledger,
            Book {
                fee,
                ..Default::default()
            },
        );
    }

    pub fn set_fee(&self, ledger: Principal, fee: Tokens) {
        self.books.borrow_mut().get_mut(&ledger).unwrap().fee = fee;
    }

    pub fn fee(&self, ledger: Principal) -> Tokens {
        self.books.borrow()[&ledger].fee
    }

    pub fn advance(&self, ns: u64) {
        self.time.set(self.time.get() + ns);
    }

    pub fn push_fault(&self, f: Fault) {
        self.faults.borrow_mut().push_back(f);
    }

    pub fn clear_faults(&self) {
        self.faults.borrow_mut().clear();
    }

    pub fn mint(&self, ledger: Principal, to: Account, amount: Tokens) {
        let mut books = self.books.borrow_mut();
        let b = books.get_mut(&ledger).unwrap();
        *b.balances.entry(to).or_default() += amount;
        b.minted += amount;
    }

    pub fn approve(&self, ledger: Principal, owner: Account, amount: Tokens) {
        let mut books = self.books.borrow_mut();
        let b = books.get_mut(&ledger).unwrap();
        b.allowances.insert((owner, self.escrow), amount);
    }

    pub fn balance(&self, ledger: Principal, account: Account) -> Tokens {
        self.books.borrow()[&ledger]
            .balances
            .get(&account)
            .copied()
            .unwrap_or(0)
    }

    /// A transfer made by someone other than the escrow (a push deposit).
    pub fn external_transfer(
        &self,
        ledger: Principal,
        from: Account,
        to: Account,
        amount: Tokens,
    ) -> Result<(), String> {
        let mut books = self.books.borrow_mut();
        let b = books.get_mut(&ledger).unwrap();
        let fee = b.fee;
        let have = b.balances.get(&from).copied().unwrap_or(0);
        if have < amount + fee {
            return Err("insufficient funds".into());
        }
        *b.balances.get_mut(&from).unwrap() -= amount + fee;
        *b.balances.entry(to).or_default() += amount;
        b.burned += fee;
        b.next_block += 1;
        Ok(())
    }

    /// Whether a transaction with this memo was executed on `ledger`.
    pub fn executed(&self, ledger: Principal, memo: &[u8]) -> bool {
        self.books.borrow()[&ledger].executed_memos.contains(memo)
    }

    /// The ledger's own conservation: minted == Σ balances + burned.
    pub fn check_supply(&self, ledger: Principal) {
        let books = self.books.borrow();
        let b = &books[&ledger];
        let sum: Tokens = b.balances.values().sum();
        assert_eq!(
            b.minted,
            sum + b.burned,
            "ledger {ledger} created or lost tokens"
        );
    }

    /// Takes the next fault, applying a fee change at once.
    async fn enter(&self, ledger: Principal) -> Option<Fault> {
        self.calls.set(self.calls.get() + 1);
        if self.yield_first.get() {
            YieldOnce(false).await;
        }
        let f = self.faults.borrow_mut().pop_front();
        if let Some(Fault::FeeChange(fee)) = f {
            self.set_fee(ledger, fee);
            return None;
        }
        f
    }

    fn fault_before(f: &Option<Fault>) -> Result<(), CallFailure> {
        match f {
            Some(Fault::Reject) => Err(CallFailure::Rejected {
                code: 5,
                message: "injected reject".into(),
            }),
            Some(Fault::LostRequest) => Err(CallFailure::Unknown {
                message: "injected timeout".into(),
            }),
            _ => Ok(()),
        }
    }

    fn fault_after<T>(f: &Option<Fault>, v: T) -> Result<T, CallFailure> {
        match f {
            Some(Fault::LostReply) => Err(CallFailure::Unknown {
                message: "injected lost reply".into(),
            }),
            _ => Ok(v),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        ledger: Principal,
        dedup: String,
        from: Account,
        to: Account,
        amount: Tokens,
        fee: Option<Tokens>,
        created_at_time: Option<u64>,
        memo: Option<Vec<u8>>,
        spender: Option<Principal>,
    ) -> Result<u128, TransferFromError> {
        let now = self.time.get();
        let mut books = self.books.borrow_mut();
        let b = books.get_mut(&ledger).unwrap();
        if let Some(f) = fee
            && f != b.fee
        {
            return Err(TransferFromError::BadFee {
                expected_fee: b.fee.into(),
            });
        }
        if let Some(t) = created_at_time {
            if t.saturating_add(DEDUP_WINDOW_NS) < now {
                return Err(TransferFromError::TooOld);
            }
            if t > now + 60_000_000_000 {
                return Err(TransferFromError::CreatedInFuture { ledger_time: now });
            }
            if let Some(block) = b.seen.get(&dedup) {
                return Err(TransferFromError::Duplicate {
                    duplicate_of: (*block).into(),
                });
            }
        }
        let need = amount + b.fee;
        let have = b.balances.get(&from).copied().unwrap_or(0);
        if have < need {
            return Err(TransferFromError::InsufficientFunds {
                balance: have.into(),
            });
        }
        if let Some(spender) = spender {
            let allowance = b.allowances.get(&(from, spender)).copied().unwrap_or(0);
            if allowance < need {
                return Err(TransferFromError::InsufficientAllowance {
                    allowance: allowance.into(),
                });
            }
            b.allowances.insert((from, spender), allowance - need);
        }
        *b.balances.get_mut(&from).unwrap() -= need;
        *b.balances.entry(to).or_default() += amount;
        b.burned += b.fee;
        let block = b.next_block;
        b.next_block += 1;
        if created_at_time.is_some() {
            b.seen.insert(dedup, block);
        }
        if let Some(m) = memo {
            b.executed_memos.insert(m);
        }
        Ok(block)
    }
}

fn to_u128(n: &Nat) -> u128 {
    u128::try_from(&n.0).unwrap()
}

impl SystemApi for FakeLedger {
    fn now_ns(&self) -> u64 {
        self.time.get()
    }

    fn self_id(&self) -> Principal {
        self.escrow
    }
}

impl Runtime for FakeLedger {
    async fn icrc1_fee(&self, ledger: Principal) -> Result<Tokens, CallFailure> {
        let f = self.enter(ledger).await;
        Self::fault_before(&f)?;
        Self::fault_after(&f, self.fee(ledger))
    }

    async fn icrc1_symbol(&self, ledger: Principal) -> Result<String, CallFailure> {
        let f = self.enter(ledger).await;
        Self::fault_before(&f)?;
        Self::fault_after(&f, format!("TK{}", ledger.as_slice()[0]))
    }

    async fn icrc1_supported_standards(
        &self,
        ledger: Principal,
    ) -> Result<Vec<StandardRecord>, CallFailure> {
        let f = self.enter(ledger).await;
        Self::fault_before(&f)?;
        let std = |n: &str| StandardRecord {
            name: n.into(),
            url: String::new(),
        };
        Self::fault_after(&f, vec![std("ICRC-1"), std("ICRC-2")])
    }

    async fn icrc1_balance_of(
        &self,
        ledger: Principal,
        account: Account,
    ) -> Result<Tokens, CallFailure> {
        let f = self.enter(ledger).await;
        Self::fault_before(&f)?;
        Self::fault_after(&f, self.balance(ledger, account))
    }

    async fn icrc1_transfer(
        &self,
        ledger: Principal,
        arg: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallFailure> {
        let f = self.enter(ledger).await;
        Self::fault_before(&f)?;
        let from = Account {
            owner: self.escrow,
            subaccount: arg.from_subaccount,
        };
        let r = self
            .apply(
                ledger,
                format!("transfer {:?} {arg:?}", self.escrow),
                from,
                arg.to,
                to_u128(&arg.amount),
                arg.fee.as_ref().map(to_u128),
                arg.created_at_time,
                arg.memo.map(|m| m.0.into_vec()),
                None,
            )
            .map(Nat::from)
            .map_err(|e| match e {
                TransferFromError::BadFee { expected_fee } => {
                    TransferError::BadFee { expected_fee }
                }
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
            });
        Self::fault_after(&f, r)
    }

    async fn icrc2_transfer_from(
        &self,
        ledger: Principal,
        arg: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallFailure> {
        let f = self.enter(ledger).await;
        Self::fault_before(&f)?;
        let r = self
            .apply(
                ledger,
                format!("transfer_from {:?} {arg:?}", self.escrow),
                arg.from,
                arg.to,
                to_u128(&arg.amount),
                arg.fee.as_ref().map(to_u128),
                arg.created_at_time,
                arg.memo.map(|m| m.0.into_vec()),
                Some(self.escrow),
            )
            .map(Nat::from);
        Self::fault_after(&f, r)
    }
}
