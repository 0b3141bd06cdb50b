//! Property tests: random sequences of calls from a few principals, checked
//! against an in-memory model of balances and allowances, the block log and
//! the supply invariant after every step.

use std::collections::BTreeMap;

use candid::{Nat, Principal};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::TransferError;
use icrc_ledger_types::icrc2::allowance::AllowanceArgs;
use icrc_ledger_types::icrc2::approve::ApproveError;
use icrc_ledger_types::icrc2::transfer_from::TransferFromError;
use proptest::prelude::*;

use super::support::*;
use crate::amount::to_u64;
use crate::block::{Block, Operation};
use crate::config::{PERMITTED_DRIFT_NANOS, TX_WINDOW_NANOS};
use crate::operations;
use crate::state::State;

/// Owner 0 is the minting account's principal.
const OWNERS: u8 = 4;

fn owner(i: u8) -> Principal {
    if i == 0 { minter().owner } else { user(i) }
}

fn subaccount(i: u8) -> Option<[u8; 32]> {
    match i {
        0 => None,
        1 => Some([0; 32]),
        _ => Some([i; 32]),
    }
}

fn account(o: u8, s: u8) -> Account {
    Account {
        owner: owner(o),
        subaccount: subaccount(s),
    }
}

/// An `icrc1_transfer` out of the caller's subaccount `from_sub`.
#[derive(Clone, Debug)]
struct TransferCall {
    caller: u8,
    from_sub: u8,
    to: (u8, u8),
    amount: u64,
    fee: Option<u64>,
    memo: Option<u8>,
    age: Option<u64>,
}

impl TransferCall {
    fn from(&self) -> Account {
        account(self.caller, self.from_sub)
    }

    fn to(&self) -> Account {
        account(self.to.0, self.to.1)
    }
}

/// An `icrc2_approve` of the caller's subaccount `from_sub`.
#[derive(Clone, Debug)]
struct ApproveCall {
    caller: u8,
    from_sub: u8,
    spender: (u8, u8),
    amount: u64,
    expected: Option<u64>,
    expires_in: Option<u64>,
    age: Option<u64>,
}

impl ApproveCall {
    fn from(&self) -> Account {
        account(self.caller, self.from_sub)
    }

    fn spender(&self) -> Account {
        account(self.spender.0, self.spender.1)
    }
}

/// An `icrc2_transfer_from` with the caller's subaccount `spender_sub` as
/// spender.
#[derive(Clone, Debug)]
struct TransferFromCall {
    caller: u8,
    spender_sub: u8,
    from: (u8, u8),
    to: (u8, u8),
    amount: u64,
    age: Option<u64>,
}

impl TransferFromCall {
    fn spender(&self) -> Account {
        account(self.caller, self.spender_sub)
    }

    fn from(&self) -> Account {
        account(self.from.0, self.from.1)
    }

    fn to(&self) -> Account {
        account(self.to.0, self.to.1)
    }
}

#[derive(Clone, Debug)]
enum Call {
    Transfer(TransferCall),
    Approve(ApproveCall),
    TransferFrom(TransferFromCall),
    /// Sends the previous call again, unchanged.
    Repeat,
    /// Lets time pass (seconds).
    Advance(u64),
}

fn acct_idx() -> impl Strategy<Value = (u8, u8)> {
    (0..OWNERS, 0u8..3)
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..3 * FEE, 0u64..300_000, Just(u64::MAX)]
}

/// `created_at_time` as seconds before now (a few land outside the window).
fn age() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(prop_oneof![0u64..120, Just(24 * 3600 + 61)])
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        4 => (0..OWNERS, 0u8..3, acct_idx(), amount(), proptest::option::of(prop_oneof![Just(0u64), Just(FEE), Just(FEE + 1)]), proptest::option::of(0u8..2), age())
            .prop_map(|(caller, from_sub, to, amount, fee, memo, age)| Call::Transfer(TransferCall { caller, from_sub, to, amount, fee, memo, age })),
        3 => (0..OWNERS, 0u8..3, acct_idx(), amount(), proptest::option::of(prop_oneof![Just(0u64), 0u64..300_000]), proptest::option::of(0u64..200), age())
            .prop_map(|(caller, from_sub, spender, amount, expected, expires_in, age)| Call::Approve(ApproveCall { caller, from_sub, spender, amount, expected, expires_in, age })),
        3 => (0..OWNERS, 0u8..3, acct_idx(), acct_idx(), amount(), age())
            .prop_map(|(caller, spender_sub, from, to, amount, age)| Call::TransferFrom(TransferFromCall { caller, spender_sub, from, to, amount, age })),
        1 => Just(Call::Repeat),
        1 => prop_oneof![0u64..100, Just(24 * 3600)].prop_map(Call::Advance),
    ]
}

/// What the model expects the ledger to hold.
#[derive(Default)]
struct Model {
    balances: BTreeMap<Account, u64>,
    /// (owner, spender) -> (amount, expires_at)
    allowances: BTreeMap<(Account, Account), (u64, Option<u64>)>,
}

impl Model {
    fn balance(&self, a: &Account) -> u64 {
        self.balances.get(a).copied().unwrap_or(0)
    }

    fn add(&mut self, a: Account, delta: u64) {
        let b = self.balance(&a) + delta;
        self.balances.insert(a, b);
    }

    fn sub(&mut self, a: Account, delta: u64) {
        let b = self
            .balance(&a)
            .checked_sub(delta)
            .expect("model: debit above balance");
        if b == 0 {
            self.balances.remove(&a);
        } else {
            self.balances.insert(a, b);
        }
    }

    fn allowance(&self, from: &Account, spender: &Account, now: u64) -> u64 {
        match self.allowances.get(&(*from, *spender)) {
            Some((a, exp)) if exp.is_none_or(|t| t > now) => *a,
            _ => 0,
        }
    }

    /// Applies a block as the ledger should have.
    fn apply(&mut self, block: &Block) {
        match &block.operation {
            Operation::Mint { to, amount } => self.add(*to, *amount),
            Operation::Burn { from, amount, .. } => self.sub(*from, *amount),
            Operation::Transfer {
                from,
                to,
                amount,
                fee,
                ..
            } => {
                self.sub(*from, amount + fee);
                self.add(*to, *amount);
            }
            Operation::Approve {
                from,
                spender,
                amount,
                expires_at,
                fee,
                ..
            } => {
                self.sub(*from, *fee);
                if *amount == 0 {
                    self.allowances.remove(&(*from, *spender));
                } else {
                    self.allowances
                        .insert((*from, *spender), (*amount, *expires_at));
                }
            }
        }
    }
}

/// Whether the ledger must accept (`Some(true)`) or refuse (`Some(false)`)
/// the call, and the block it must write; `None` when dedup may decide.
fn predict(c: &Call, model: &Model, supply: u64, now: u64) -> Option<(bool, Option<Operation>)> {
    let refuse = Some((false, None));
    let age_ok = |age: &Option<u64>| match age {
        None => Some(true),
        Some(a) if a * SEC > TX_WINDOW_NANOS + PERMITTED_DRIFT_NANOS => Some(false),
        Some(_) => None,
    };
    let m = minter();
    match c {
        Call::Transfer(t) => {
            let (from, to, amount) = (t.from(), t.to(), t.amount);
            if from == m && to == m {
                return refuse;
            }
            let expected_fee = if from == m || to == m { 0 } else { FEE };
            if t.fee.is_some_and(|f| f != expected_fee) {
                return refuse;
            }
            if to == m && amount < FEE {
                return refuse;
            }
            if !age_ok(&t.age)? {
                return refuse;
            }
            if from == m {
                return match supply.checked_add(amount) {
                    None => refuse,
                    Some(_) => Some((true, Some(Operation::Mint { to, amount }))),
                };
            }
            match amount.checked_add(expected_fee) {
                Some(d) if d <= model.balance(&from) => {
                    Some((true, Some(debit_block(from, to, None, amount))))
                }
                _ => refuse,
            }
        }
        Call::Approve(a) => {
            let (from, spender) = (a.from(), a.spender());
            if from == m || spender.owner == owner(a.caller) {
                return refuse;
            }
            if a.expires_in == Some(0) {
                return refuse;
            }
            if !age_ok(&a.age)? {
                return refuse;
            }
            if model.balance(&from) < FEE {
                return refuse;
            }
            if a.expected
                .is_some_and(|e| e != model.allowance(&from, &spender, now))
            {
                return refuse;
            }
            Some((
                true,
                Some(Operation::Approve {
                    from,
                    spender,
                    amount: a.amount,
                    expected_allowance: a.expected,
                    expires_at: a.expires_in.map(|s| now + s * SEC),
                    fee: FEE,
                }),
            ))
        }
        Call::TransferFrom(t) => {
            let (spender, from, to, amount) = (t.spender(), t.from(), t.to(), t.amount);
            if from == m {
                return refuse;
            }
            let fee = if to == m { 0 } else { FEE };
            if to == m && amount < FEE {
                return refuse;
            }
            if !age_ok(&t.age)? {
                return refuse;
            }
            let Some(debit) = amount.checked_add(fee) else {
                return refuse;
            };
            if spender != from && model.allowance(&from, &spender, now) < debit {
                return refuse;
            }
            if model.balance(&from) < debit {
                return refuse;
            }
            Some((true, Some(debit_block(from, to, Some(spender), amount))))
        }
        Call::Repeat | Call::Advance(_) => None,
    }
}

/// The block of a transfer (or transfer_from) out of an ordinary account:
/// a burn when it goes to the minting account, else a transfer paying the fee.
fn debit_block(from: Account, to: Account, spender: Option<Account>, amount: u64) -> Operation {
    if to == minter() {
        Operation::Burn {
            from,
            spender,
            amount,
        }
    } else {
        Operation::Transfer {
            from,
            to,
            spender,
            amount,
            fee: FEE,
        }
    }
}

fn cat(age: Option<u64>, now: u64) -> Option<u64> {
    age.map(|a| now - a * SEC)
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok(u64),
    Duplicate(u64),
    Err(String),
}

/// The block an endpoint's error names as the original of a duplicate.
trait DuplicateOf: std::fmt::Debug {
    fn duplicate_of(&self) -> Option<&Nat>;
}

/// Each endpoint's error type names the original in its `Duplicate` variant.
macro_rules! impl_duplicate_of {
    ($($error:ident),*) => {$(
        impl DuplicateOf for $error {
            fn duplicate_of(&self) -> Option<&Nat> {
                match self {
                    $error::Duplicate { duplicate_of } => Some(duplicate_of),
                    _ => None,
                }
            }
        }
    )*};
}

impl_duplicate_of!(TransferError, TransferFromError, ApproveError);

fn run(state: &mut State, c: &Call, now: u64) -> Outcome {
    fn out<E: DuplicateOf>(r: Result<u64, E>) -> Outcome {
        match r {
            Ok(i) => Outcome::Ok(i),
            Err(e) => match e.duplicate_of().and_then(to_u64) {
                Some(i) => Outcome::Duplicate(i),
                None => Outcome::Err(format!("{e:?}")),
            },
        }
    }
    match c {
        Call::Transfer(t) => {
            let mut a = xfer(t.to(), t.amount);
            a.from_subaccount = subaccount(t.from_sub);
            a.fee = t.fee.map(Nat::from);
            a.memo = t.memo.map(|n| memo(n as usize));
            a.created_at_time = cat(t.age, now);
            out(operations::transfer(state, owner(t.caller), &a, now))
        }
        Call::Approve(c) => {
            let mut a = approval(c.spender(), c.amount);
            a.from_subaccount = subaccount(c.from_sub);
            a.expected_allowance = c.expected.map(Nat::from);
            a.expires_at = c.expires_in.map(|s| now + s * SEC);
            a.created_at_time = cat(c.age, now);
            out(operations::approve(state, owner(c.caller), &a, now))
        }
        Call::TransferFrom(t) => {
            let mut a = xfer_from(t.from(), t.to(), t.amount);
            a.spender_subaccount = subaccount(t.spender_sub);
            a.created_at_time = cat(t.age, now);
            out(operations::transfer_from(state, owner(t.caller), &a, now))
        }
        Call::Repeat | Call::Advance(_) => unreachable!(),
    }
}

fn sets_created_at_time(c: &Call) -> bool {
    matches!(
        c,
        Call::Transfer(TransferCall { age: Some(_), .. })
            | Call::Approve(ApproveCall { age: Some(_), .. })
            | Call::TransferFrom(TransferFromCall { age: Some(_), .. })
    )
}

fn all_accounts() -> Vec<Account> {
    (0..OWNERS)
        .flat_map(|o| (0u8..3).map(move |s| account(o, s)))
        .collect()
}

/// Compares the ledger's allowances with the model's for `pairs`.
fn check_allowances(
    state: &State,
    model: &Model,
    now: u64,
    pairs: impl IntoIterator<Item = (Account, Account)>,
) -> Result<(), TestCaseError> {
    for (from, spender) in pairs {
        let args = AllowanceArgs {
            account: from,
            spender,
        };
        let got = operations::allowance(state, &args, now);
        prop_assert_eq!(
            got.allowance,
            Nat::from(model.allowance(&from, &spender, now))
        );
    }
    Ok(())
}

/// The (owner, spender) pair whose allowance a call may change.
fn touched_pair(c: &Call) -> Option<(Account, Account)> {
    match c {
        Call::Approve(a) => Some((a.from(), a.spender())),
        Call::TransferFrom(t) => Some((t.from(), t.spender())),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_calls_agree_with_the_model(calls in proptest::collection::vec(call(), 1..60)) {
        let initial = [(account(1, 0), 400_000), (account(2, 2), 250_000), (account(3, 0), 30_000)];
        let mut state = ledger(&initial);
        let mut model = Model::default();
        for i in 0..state.block_count() {
            model.apply(&state.block(i).unwrap());
        }
        let mut now = T0;
        // The last call sent, with the time it was sent and its outcome.
        let mut last: Option<(Call, u64, Outcome)> = None;
        for c in calls {
            let c = match c {
                Call::Advance(secs) => { now += secs * SEC; continue; }
                Call::Repeat => match &last { Some((prev, _, _)) => prev.clone(), None => continue },
                c => c,
            };
            let blocks_before = state.block_count();
            let balances_before = state.balances();
            let prediction = predict(&c, &model, state.total_supply(), now);
            let outcome = run(&mut state, &c, now);
            if let Some((accept, op)) = &prediction {
                prop_assert_eq!(*accept, matches!(outcome, Outcome::Ok(_)), "call {:?} gave {:?}", c, outcome);
                if let (Some(op), Outcome::Ok(idx)) = (op, &outcome) {
                    prop_assert_eq!(&state.block(*idx).unwrap().operation, op);
                }
            }
            match &outcome {
                Outcome::Ok(idx) => {
                    prop_assert_eq!(*idx, blocks_before);
                    prop_assert_eq!(state.block_count(), blocks_before + 1);
                    let block = state.block(*idx).unwrap();
                    prop_assert_eq!(block.timestamp, now);
                    // The allowance spent by a transfer_from, as the model sees it.
                    if let Call::TransferFrom(t) = &c {
                        let (spender, from) = (t.spender(), t.from());
                        if spender != from {
                            let spent = match &block.operation {
                                Operation::Transfer { amount, fee, .. } => amount + fee,
                                Operation::Burn { amount, .. } => *amount,
                                other => return Err(TestCaseError::fail(format!("unexpected block {other:?}"))),
                            };
                            let before = model.allowance(&from, &spender, now);
                            prop_assert!(before >= spent, "spent {} of allowance {}", spent, before);
                            let exp = model.allowances[&(from, spender)].1;
                            if before == spent {
                                model.allowances.remove(&(from, spender));
                            } else {
                                model.allowances.insert((from, spender), (before - spent, exp));
                            }
                        }
                    }
                    model.apply(&block);
                }
                Outcome::Duplicate(idx) => {
                    // Only a repeat of an earlier success within the window is a duplicate.
                    let (prev, _, prev_outcome) =
                        last.as_ref().expect("duplicate with no earlier call");
                    let same_block = matches!(prev_outcome, Outcome::Ok(i) | Outcome::Duplicate(i) if i == idx);
                    prop_assert!(same_block, "duplicate_of {} after {:?}", idx, prev_outcome);
                    prop_assert_eq!(state.block_count(), blocks_before);
                    prop_assert_eq!(state.balances(), balances_before);
                    prop_assert!(sets_created_at_time(prev));
                }
                Outcome::Err(_) => {
                    prop_assert_eq!(state.block_count(), blocks_before);
                    prop_assert_eq!(state.balances(), balances_before);
                }
            }
            // A repeated success with created_at_time is refused as a duplicate
            // (or as too old once time has moved on).
            if let Some((prev, sent_at, Outcome::Ok(_) | Outcome::Duplicate(_))) = &last {
                // `age` is relative to the time of sending: identical arguments
                // need the same time too.
                let same = format!("{prev:?}") == format!("{c:?}") && *sent_at == now;
                let dedups = sets_created_at_time(prev);
                if same && dedups {
                    prop_assert!(!matches!(outcome, Outcome::Ok(_)), "a repeated call with created_at_time executed twice: {:?}", c);
                }
            }
            // Invariants after every call.
            prop_assert_eq!(sum_of_balances(&state), state.total_supply());
            prop_assert_eq!(state.balance(&minter()), 0);
            let model_balances: Vec<(Account, u64)> = model.balances.iter().map(|(a, b)| (*a, *b)).collect();
            let mut got = state.balances();
            got.sort();
            prop_assert_eq!(got, model_balances);
            let pairs: Vec<_> = model.allowances.keys().copied().chain(touched_pair(&c)).collect();
            check_allowances(&state, &model, now, pairs)?;
            last = Some((c, now, outcome));
        }
        let every_pair: Vec<_> = all_accounts()
            .into_iter()
            .flat_map(|a| all_accounts().into_iter().map(move |b| (a, b)))
            .collect();
        check_allowances(&state, &model, now, every_pair)?;
        // Replaying the whole log from nothing gives the same balances.
        let mut replay = Model::default();
        for i in 0..state.block_count() {
            replay.apply(&state.block(i).unwrap());
        }
        prop_assert_eq!(replay.balances.values().sum::<u64>(), state.total_supply());
        prop_assert_eq!(replay.balances, model.balances);
    }

    #[test]
    fn dedup_window_holds_for_any_time(offset in 0u64..(2 * (TX_WINDOW_NANOS + PERMITTED_DRIFT_NANOS)), later in 0u64..(2 * TX_WINDOW_NANOS)) {
        let mut state = ledger(&[(acct(1), 1_000_000)]);
        let now = T0 + TX_WINDOW_NANOS + PERMITTED_DRIFT_NANOS;
        let created = now - (TX_WINDOW_NANOS + PERMITTED_DRIFT_NANOS) + offset - PERMITTED_DRIFT_NANOS;
        let mut a = xfer(acct(2), 1);
        a.created_at_time = Some(created);
        let first = operations::transfer(&mut state, user(1), &a, now);
        let too_old = created < now - TX_WINDOW_NANOS - PERMITTED_DRIFT_NANOS;
        let in_future = created > now + PERMITTED_DRIFT_NANOS;
        match &first {
            Err(TransferError::TooOld) => prop_assert!(too_old),
            Err(TransferError::CreatedInFuture { ledger_time }) => { prop_assert!(in_future); prop_assert_eq!(*ledger_time, now); }
            Ok(_) => prop_assert!(!too_old && !in_future),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
        if let Ok(idx) = first {
            let t = now + later;
            let again = operations::transfer(&mut state, user(1), &a, t);
            if created < t - TX_WINDOW_NANOS - PERMITTED_DRIFT_NANOS {
                prop_assert_eq!(again, Err(TransferError::TooOld));
            } else if created > t + PERMITTED_DRIFT_NANOS {
                let in_future = matches!(again, Err(TransferError::CreatedInFuture { .. }));
                prop_assert!(in_future);
            } else {
                prop_assert_eq!(again, Err(TransferError::Duplicate { duplicate_of: Nat::from(idx) }));
            }
            prop_assert_eq!(state.balance(&acct(2)), 1);
        }
    }
}
