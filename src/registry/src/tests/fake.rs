//! A fake runtime: settable time and an in-memory ICRC-1/2 ledger with
//! deduplication, fees and injectable faults.

use crate::runtime::{CallFailure, Runtime, SystemApi};
use crate::subaccount::stake_subaccount;
use candid::{Nat, Principal};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};

/// What happens to the next ledger call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Rejected by the system; nothing happens.
    Reject,
    /// The ledger traps; nothing happens.
    Trap,
    /// The answer is lost before the ledger ran the call.
    UnknownBefore,
    /// The ledger ran the call, but the answer is lost.
    UnknownAfter,
}

type Key = (Principal, [u8; 32]);

fn key(a: &Account) -> Key {
    (a.owner, a.subaccount.unwrap_or([0; 32]))
}

fn n(x: &Nat) -> u128 {
    u128::try_from(x.0.clone()).unwrap()
}

pub const LEDGER: Principal = Principal::from_slice(&[0xAA, 1]);
pub const REGISTRY: Principal = Principal::from_slice(&[0xAA, 2]);

pub struct FakeRuntime {
    pub now: Cell<u64>,
    pub fee: Cell<u128>,
    balances: RefCell<BTreeMap<Key, u128>>,
    allowances: RefCell<BTreeMap<(Key, Principal), u128>>,
    dedup: RefCell<BTreeMap<String, u128>>,
    next_block: Cell<u128>,
    faults: RefCell<VecDeque<Fault>>,
    pub calls: Cell<u32>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        FakeRuntime {
            now: Cell::new(1_700_000_000_000_000_000),
            fee: Cell::new(10_000),
            balances: RefCell::default(),
            allowances: RefCell::default(),
            dedup: RefCell::default(),
            next_block: Cell::new(0),
            faults: RefCell::default(),
            calls: Cell::new(0),
        }
    }

    pub fn mint(&self, owner: Principal, amount: u128) {
        *self
            .balances
            .borrow_mut()
            .entry((owner, [0; 32]))
            .or_default() += amount;
    }

    pub fn approve(&self, owner: Principal, amount: u128) {
        self.allowances
            .borrow_mut()
            .insert(((owner, [0; 32]), REGISTRY), amount);
    }

    pub fn balance(&self, owner: Principal, sub: Option<[u8; 32]>) -> u128 {
        self.balances
            .borrow()
            .get(&(owner, sub.unwrap_or([0; 32])))
            .copied()
            .unwrap_or(0)
    }

    pub fn stake_balance(&self, provider: Principal) -> u128 {
        self.balance(REGISTRY, Some(stake_subaccount(&provider)))
    }

    /// Sum of every account the registry owns.
    pub fn registry_holdings(&self) -> u128 {
        self.balances
            .borrow()
            .iter()
            .filter(|((o, _), _)| *o == REGISTRY)
            .map(|(_, b)| *b)
            .sum()
    }

    pub fn fault(&self, f: Fault) {
        self.faults.borrow_mut().push_back(f);
    }

    pub fn advance_secs(&self, secs: u64) {
        self.now.set(self.now.get() + secs * 1_000_000_000);
    }

    fn take_fault(&self) -> Option<Fault> {
        self.calls.set(self.calls.get() + 1);
        self.faults.borrow_mut().pop_front()
    }

    fn block(&self) -> u128 {
        let b = self.next_block.get();
        self.next_block.set(b + 1);
        b
    }

    fn move_tokens(&self, from: Key, to: Key, amount: u128, fee: u128) -> Result<(), u128> {
        let mut b = self.balances.borrow_mut();
        let have = b.get(&from).copied().unwrap_or(0);
        if have < amount + fee {
            return Err(have);
        }
        b.insert(from, have - amount - fee);
        *b.entry(to).or_default() += amount;
        Ok(())
    }

    fn run<T>(&self, exec: impl FnOnce() -> Result<Nat, T>) -> Result<Result<Nat, T>, CallFailure> {
        match self.take_fault() {
            Some(Fault::Reject) => Err(CallFailure::Definite {
                code: 2,
                message: "injected reject".into(),
            }),
            Some(Fault::Trap) => Err(CallFailure::Definite {
                code: 5,
                message: "injected trap".into(),
            }),
            Some(Fault::UnknownBefore) => Err(CallFailure::Unknown),
            Some(Fault::UnknownAfter) => {
                let _ = exec();
                Err(CallFailure::Unknown)
            }
            None => Ok(exec()),
        }
    }
}

impl SystemApi for FakeRuntime {
    fn now_ns(&self) -> u64 {
        self.now.get()
    }

    fn self_id(&self) -> Principal {
        REGISTRY
    }
}

impl Runtime for FakeRuntime {
    async fn transfer_from(
        &self,
        ledger: Principal,
        args: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallFailure> {
        assert_eq!(ledger, LEDGER);
        self.run(|| {
            let fee = self.fee.get();
            if let Some(f) = &args.fee
                && n(f) != fee
            {
                return Err(TransferFromError::BadFee {
                    expected_fee: fee.into(),
                });
            }
            let dkey = format!("from:{args:?}");
            if let Some(b) = self.dedup.borrow().get(&dkey) {
                return Err(TransferFromError::Duplicate {
                    duplicate_of: (*b).into(),
                });
            }
            let amount = n(&args.amount);
            let akey = (key(&args.from), REGISTRY);
            let allowance = self.allowances.borrow().get(&akey).copied().unwrap_or(0);
            if allowance < amount + fee {
                return Err(TransferFromError::InsufficientAllowance {
                    allowance: allowance.into(),
                });
            }
            self.move_tokens(key(&args.from), key(&args.to), amount, fee)
                .map_err(|balance| TransferFromError::InsufficientFunds {
                    balance: balance.into(),
                })?;
            self.allowances
                .borrow_mut()
                .insert(akey, allowance - amount - fee);
            let b = self.block();
            self.dedup.borrow_mut().insert(dkey, b);
            Ok(b.into())
        })
    }

    async fn transfer(
        &self,
        ledger: Principal,
        args: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallFailure> {
        assert_eq!(ledger, LEDGER);
        self.run(|| {
            let fee = self.fee.get();
            if let Some(f) = &args.fee
                && n(f) != fee
            {
                return Err(TransferError::BadFee {
                    expected_fee: fee.into(),
                });
            }
            let dkey = format!("xfer:{args:?}");
            if let Some(b) = self.dedup.borrow().get(&dkey) {
                return Err(TransferError::Duplicate {
                    duplicate_of: (*b).into(),
                });
            }
            let from = (REGISTRY, args.from_subaccount.unwrap_or([0; 32]));
            self.move_tokens(from, key(&args.to), n(&args.amount), fee)
                .map_err(|balance| TransferError::InsufficientFunds {
                    balance: balance.into(),
                })?;
            let b = self.block();
            self.dedup.borrow_mut().insert(dkey, b);
            Ok(b.into())
        })
    }

    async fn fee(&self, ledger: Principal) -> Result<Nat, CallFailure> {
        assert_eq!(ledger, LEDGER);
        Ok(self.fee.get().into())
    }
}
