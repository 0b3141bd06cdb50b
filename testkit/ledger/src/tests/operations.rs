//! Native tests of the ledger's rules, one rule at a time.

use candid::{Nat, Principal};
use icrc_ledger_types::icrc1::transfer::TransferError;
use icrc_ledger_types::icrc2::allowance::AllowanceArgs;
use icrc_ledger_types::icrc2::approve::ApproveError;
use icrc_ledger_types::icrc2::transfer_from::TransferFromError;

use super::support::*;
use crate::block::Operation;
use crate::config::{
    MAX_BLOCKS_PER_PAGE, PERMITTED_DRIFT_NANOS, PRUNE_BATCH, TX_WINDOW_NANOS, UpgradeArgs,
};
use crate::operations::{self, *};
use crate::state::State;

fn generic_code<T: std::fmt::Debug>(e: T) -> String {
    format!("{e:?}")
}

fn allowance_of(state: &State, owner: Account, spender: Account, now: u64) -> (Nat, Option<u64>) {
    let a = operations::allowance(
        state,
        &AllowanceArgs {
            account: owner,
            spender,
        },
        now,
    );
    (a.allowance, a.expires_at)
}

use icrc_ledger_types::icrc1::account::Account;

#[test]
fn install_mints_initial_balances_as_blocks() {
    let s = ledger(&[(acct(1), 1_000_000), (sub(1, 2), 5)]);
    assert_eq!(s.balance(&acct(1)), 1_000_000);
    assert_eq!(s.balance(&sub(1, 2)), 5);
    assert_eq!(s.total_supply(), 1_000_005);
    assert_eq!(s.block_count(), 2);
    assert_eq!(
        s.block(0).unwrap().operation,
        Operation::Mint {
            to: acct(1),
            amount: 1_000_000
        }
    );
    assert_eq!(s.config().fee, FEE);
    assert_eq!(s.config().decimals, 8);
}

#[test]
fn install_refuses_bad_balances() {
    let mut s = State::open_with_bucket_size(Default::default(), 1);
    let mut args = init_args(&[(minter(), 1)]);
    assert!(operations::install(&mut s, &args, T0).is_err());
    args = init_args(&[(acct(1), u64::MAX), (acct(2), 1)]);
    assert!(operations::install(&mut s, &args, T0).is_err());
    args = init_args(&[]);
    args.initial_balances = vec![(acct(1), Nat::from(u64::MAX) + 1u8)];
    assert!(operations::install(&mut s, &args, T0).is_err());
    assert!(!s.is_installed());
}

#[test]
fn transfer_moves_amount_and_burns_fee() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    let idx = operations::transfer(&mut s, user(1), &xfer(acct(2), 50_000), T0).unwrap();
    assert_eq!(idx, 1);
    assert_eq!(s.balance(&acct(1)), 40_000);
    assert_eq!(s.balance(&acct(2)), 50_000);
    assert_eq!(s.total_supply(), 90_000);
    assert_eq!(
        s.block(1).unwrap().operation,
        Operation::Transfer {
            from: acct(1),
            to: acct(2),
            spender: None,
            amount: 50_000,
            fee: FEE
        }
    );
}

#[test]
fn transfer_checks_an_explicit_fee_exactly() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    for wrong in [0, FEE - 1, FEE + 1] {
        let mut arg = xfer(acct(2), 1);
        arg.fee = Some(Nat::from(wrong));
        assert_eq!(
            operations::transfer(&mut s, user(1), &arg, T0),
            Err(TransferError::BadFee {
                expected_fee: Nat::from(FEE)
            })
        );
    }
    let mut arg = xfer(acct(2), 1);
    arg.fee = Some(Nat::from(FEE));
    assert!(operations::transfer(&mut s, user(1), &arg, T0).is_ok());
}

#[test]
fn transfer_reports_insufficient_funds_with_the_balance() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    assert_eq!(
        operations::transfer(&mut s, user(1), &xfer(acct(2), 90_001), T0),
        Err(TransferError::InsufficientFunds {
            balance: Nat::from(100_000u64)
        })
    );
    let mut huge = xfer(acct(2), 0);
    huge.amount = Nat::from(u64::MAX) * 4u8;
    assert_eq!(
        operations::transfer(&mut s, user(1), &huge, T0),
        Err(TransferError::InsufficientFunds {
            balance: Nat::from(100_000u64)
        })
    );
    // Exactly amount + fee is enough.
    assert!(operations::transfer(&mut s, user(1), &xfer(acct(2), 90_000), T0).is_ok());
    assert_eq!(s.balance(&acct(1)), 0);
    assert_eq!(s.block_count(), 2);
}

#[test]
fn transfer_between_own_subaccounts_and_to_self() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    operations::transfer(&mut s, user(1), &xfer(sub(1, 9), 30_000), T0).unwrap();
    let mut back = xfer(acct(1), 10_000);
    back.from_subaccount = Some([9; 32]);
    operations::transfer(&mut s, user(1), &back, T0).unwrap();
    assert_eq!(s.balance(&sub(1, 9)), 10_000);
    // To the same account: only the fee leaves.
    operations::transfer(&mut s, user(1), &xfer(acct(1), 5_000), T0).unwrap();
    assert_eq!(s.balance(&acct(1)), 100_000 - 30_000 - FEE + 10_000 - FEE);
    assert_eq!(sum_of_balances(&s), s.total_supply());
}

#[test]
fn default_subaccount_and_none_are_one_account() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    let mut arg = xfer(acct(1), 0);
    arg.to = Account {
        owner: user(2),
        subaccount: Some([0; 32]),
    };
    arg.amount = Nat::from(1_000u64);
    operations::transfer(&mut s, user(1), &arg, T0).unwrap();
    assert_eq!(s.balance(&acct(2)), 1_000);
}

#[test]
fn minting_account_mints_without_fee() {
    let mut s = ledger(&[]);
    let mint = |to, amount| xfer(to, amount);
    operations::transfer(&mut s, minter().owner, &mint(acct(1), 7), T0).unwrap();
    assert_eq!(s.balance(&acct(1)), 7);
    assert_eq!(s.total_supply(), 7);
    assert_eq!(
        s.block(0).unwrap().operation,
        Operation::Mint {
            to: acct(1),
            amount: 7
        }
    );
    let mut with_fee = mint(acct(1), 1);
    with_fee.fee = Some(Nat::from(FEE));
    assert_eq!(
        operations::transfer(&mut s, minter().owner, &with_fee, T0),
        Err(TransferError::BadFee {
            expected_fee: Nat::from(0u8)
        })
    );
    with_fee.fee = Some(Nat::from(0u8));
    assert!(operations::transfer(&mut s, minter().owner, &with_fee, T0).is_ok());
    // The supply cannot pass u64::MAX.
    let too_much = mint(acct(2), u64::MAX);
    assert!(matches!(
        operations::transfer(&mut s, minter().owner, &too_much, T0),
        Err(TransferError::GenericError { error_code, .. }) if error_code == ERR_SUPPLY_OVERFLOW
    ));
    assert_eq!(s.total_supply(), 8);
    assert_eq!(s.balance(&minter()), 0);
    // Minting account to itself is refused.
    assert!(operations::transfer(&mut s, minter().owner, &mint(minter(), 1), T0).is_err());
}

#[test]
fn transfer_to_minting_account_burns_with_minimum() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    assert_eq!(
        operations::transfer(&mut s, user(1), &xfer(minter(), FEE - 1), T0),
        Err(TransferError::BadBurn {
            min_burn_amount: Nat::from(FEE)
        })
    );
    let mut burn = xfer(minter(), FEE);
    burn.fee = Some(Nat::from(FEE));
    assert_eq!(
        operations::transfer(&mut s, user(1), &burn, T0),
        Err(TransferError::BadFee {
            expected_fee: Nat::from(0u8)
        })
    );
    burn.fee = None;
    operations::transfer(&mut s, user(1), &burn, T0).unwrap();
    assert_eq!(s.balance(&acct(1)), 100_000 - FEE);
    assert_eq!(s.total_supply(), 100_000 - FEE);
    assert_eq!(s.balance(&minter()), 0);
    assert_eq!(
        s.block(1).unwrap().operation,
        Operation::Burn {
            from: acct(1),
            spender: None,
            amount: FEE
        }
    );
}

#[test]
fn memo_of_32_bytes_passes_and_33_is_refused() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    let mut arg = xfer(acct(2), 1);
    arg.memo = Some(memo(32));
    assert!(operations::transfer(&mut s, user(1), &arg, T0).is_ok());
    arg.memo = Some(memo(33));
    let err = operations::transfer(&mut s, user(1), &arg, T0).unwrap_err();
    assert!(
        matches!(err, TransferError::GenericError { ref error_code, .. } if *error_code == ERR_MEMO_TOO_LONG),
        "{}",
        generic_code(err)
    );
    let mut appr = approval(acct(2), 1);
    appr.memo = Some(memo(33));
    assert!(operations::approve(&mut s, user(1), &appr, T0).is_err());
    let mut tf = xfer_from(acct(1), acct(3), 1);
    tf.memo = Some(memo(33));
    assert!(operations::transfer_from(&mut s, user(1), &tf, T0).is_err());
}

#[test]
fn dedup_returns_the_first_block() {
    let mut s = ledger(&[(acct(1), 1_000_000)]);
    let mut arg = xfer(acct(2), 1_000);
    arg.created_at_time = Some(T0);
    let first = operations::transfer(&mut s, user(1), &arg, T0 + SEC).unwrap();
    assert_eq!(
        operations::transfer(&mut s, user(1), &arg, T0 + 2 * SEC),
        Err(TransferError::Duplicate {
            duplicate_of: Nat::from(first)
        })
    );
    assert_eq!(s.balance(&acct(2)), 1_000);
    // A different memo, fee field, or caller is a different transaction.
    let mut other = arg.clone();
    other.memo = Some(memo(1));
    assert!(operations::transfer(&mut s, user(1), &other, T0 + 2 * SEC).is_ok());
    let mut other = arg.clone();
    other.fee = Some(Nat::from(FEE));
    assert!(operations::transfer(&mut s, user(1), &other, T0 + 2 * SEC).is_ok());
    operations::transfer(&mut s, user(1), &xfer(acct(3), 100_000), T0).unwrap();
    let mut from_3 = arg.clone();
    from_3.to = acct(2);
    assert!(operations::transfer(&mut s, user(3), &from_3, T0 + 2 * SEC).is_ok());
    // Without created_at_time nothing is deduplicated.
    let plain = xfer(acct(2), 1_000);
    assert!(operations::transfer(&mut s, user(1), &plain, T0).is_ok());
    assert!(operations::transfer(&mut s, user(1), &plain, T0).is_ok());
}

#[test]
fn dedup_window_edges() {
    let mut s = ledger(&[(acct(1), 1_000_000)]);
    let now = T0 + TX_WINDOW_NANOS + 10 * SEC;
    let oldest = now - TX_WINDOW_NANOS - PERMITTED_DRIFT_NANOS;
    let newest = now + PERMITTED_DRIFT_NANOS;
    let at = |t: u64, amount: u64| {
        let mut a = xfer(acct(2), amount);
        a.created_at_time = Some(t);
        a
    };
    assert_eq!(
        operations::transfer(&mut s, user(1), &at(oldest - 1, 1), now),
        Err(TransferError::TooOld)
    );
    assert!(operations::transfer(&mut s, user(1), &at(oldest, 1), now).is_ok());
    assert_eq!(
        operations::transfer(&mut s, user(1), &at(newest + 1, 1), now),
        Err(TransferError::CreatedInFuture { ledger_time: now })
    );
    assert!(operations::transfer(&mut s, user(1), &at(newest, 1), now).is_ok());
    assert_eq!(
        operations::transfer(&mut s, user(1), &at(u64::MAX, 1), now),
        Err(TransferError::CreatedInFuture { ledger_time: now })
    );
    // A transaction from the future is remembered until it is too old.
    let later = newest + TX_WINDOW_NANOS;
    assert!(matches!(
        operations::transfer(&mut s, user(1), &at(newest, 1), later),
        Err(TransferError::Duplicate { .. })
    ));
    assert_eq!(
        operations::transfer(
            &mut s,
            user(1),
            &at(newest, 1),
            later + PERMITTED_DRIFT_NANOS + 1
        ),
        Err(TransferError::TooOld)
    );
}

#[test]
fn dedup_entries_are_pruned_in_bounded_batches() {
    let mut s = ledger(&[(acct(1), 100_000_000)]);
    let n = 2 * PRUNE_BATCH as u64 + 50;
    for i in 0..n {
        let mut a = xfer(acct(2), i);
        a.created_at_time = Some(T0);
        operations::transfer(&mut s, user(1), &a, T0).unwrap();
    }
    assert_eq!(s.dedup_count(), n);
    let after = T0 + TX_WINDOW_NANOS + PERMITTED_DRIFT_NANOS + 1;
    operations::transfer(&mut s, user(1), &xfer(acct(2), 1), after).unwrap();
    assert_eq!(s.dedup_count(), n - PRUNE_BATCH as u64);
    operations::transfer(&mut s, user(1), &xfer(acct(2), 1), after).unwrap();
    operations::transfer(&mut s, user(1), &xfer(acct(2), 1), after).unwrap();
    assert_eq!(s.dedup_count(), 0);
    // Still refused, as too old rather than as a duplicate.
    let mut a = xfer(acct(2), 0);
    a.created_at_time = Some(T0);
    assert_eq!(
        operations::transfer(&mut s, user(1), &a, after),
        Err(TransferError::TooOld)
    );
}

#[test]
fn approve_sets_allowance_and_charges_fee() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    let idx = operations::approve(&mut s, user(1), &approval(acct(2), 50_000), T0).unwrap();
    assert_eq!(idx, 1);
    assert_eq!(s.balance(&acct(1)), 100_000 - FEE);
    assert_eq!(s.total_supply(), 100_000 - FEE);
    assert_eq!(
        allowance_of(&s, acct(1), acct(2), T0),
        (Nat::from(50_000u64), None)
    );
    assert_eq!(
        allowance_of(&s, acct(1), sub(2, 1), T0),
        (Nat::from(0u8), None)
    );
    // Approving again replaces the allowance.
    operations::approve(&mut s, user(1), &approval(acct(2), 7), T0).unwrap();
    assert_eq!(allowance_of(&s, acct(1), acct(2), T0).0, Nat::from(7u8));
    // Zero removes it.
    operations::approve(&mut s, user(1), &approval(acct(2), 0), T0).unwrap();
    assert_eq!(s.allowance_count(), 0);
}

#[test]
fn approve_refusals() {
    let mut s = ledger(&[(acct(1), 100_000), (acct(5), FEE - 1)]);
    let self_approval = approval(sub(1, 3), 1);
    assert!(matches!(
        operations::approve(&mut s, user(1), &self_approval, T0),
        Err(ApproveError::GenericError { error_code, .. }) if error_code == ERR_SELF_APPROVAL
    ));
    assert!(matches!(
        operations::approve(&mut s, minter().owner, &approval(acct(1), 1), T0),
        Err(ApproveError::GenericError { error_code, .. }) if error_code == ERR_MINTING_ACCOUNT
    ));
    let mut bad_fee = approval(acct(2), 1);
    bad_fee.fee = Some(Nat::from(1u8));
    assert_eq!(
        operations::approve(&mut s, user(1), &bad_fee, T0),
        Err(ApproveError::BadFee {
            expected_fee: Nat::from(FEE)
        })
    );
    let mut past = approval(acct(2), 1);
    past.expires_at = Some(T0);
    assert_eq!(
        operations::approve(&mut s, user(1), &past, T0),
        Err(ApproveError::Expired { ledger_time: T0 })
    );
    assert_eq!(
        operations::approve(&mut s, user(5), &approval(acct(2), 1), T0),
        Err(ApproveError::InsufficientFunds {
            balance: Nat::from(FEE - 1)
        })
    );
    assert_eq!(s.block_count(), 2);
    assert_eq!(s.balance(&acct(1)), 100_000);
}

#[test]
fn approve_with_expected_allowance() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    // (new amount, a wrong expected allowance, the allowance in force):
    // the wrong one is refused naming the one in force, which is accepted.
    let steps = [
        (10u64, Nat::from(5u8), 0u64),
        (20, Nat::from(u64::MAX) + 1u8, 10),
    ];
    for (amount, wrong, current) in steps {
        let mut a = approval(acct(2), amount);
        a.expected_allowance = Some(wrong);
        assert_eq!(
            operations::approve(&mut s, user(1), &a, T0),
            Err(ApproveError::AllowanceChanged {
                current_allowance: Nat::from(current)
            })
        );
        a.expected_allowance = Some(Nat::from(current));
        operations::approve(&mut s, user(1), &a, T0).unwrap();
    }
    assert_eq!(allowance_of(&s, acct(1), acct(2), T0).0, Nat::from(20u8));
}

#[test]
fn allowances_expire() {
    let mut s = ledger(&[(acct(1), 1_000_000)]);
    let mut a = approval(acct(2), 500_000);
    a.expires_at = Some(T0 + 10 * SEC);
    operations::approve(&mut s, user(1), &a, T0).unwrap();
    assert_eq!(
        allowance_of(&s, acct(1), acct(2), T0 + 9 * SEC),
        (Nat::from(500_000u64), Some(T0 + 10 * SEC))
    );
    operations::transfer_from(
        &mut s,
        user(2),
        &xfer_from(acct(1), acct(3), 100),
        T0 + 9 * SEC,
    )
    .unwrap();
    assert_eq!(
        allowance_of(&s, acct(1), acct(2), T0 + 10 * SEC),
        (Nat::from(0u8), None)
    );
    assert_eq!(
        operations::transfer_from(
            &mut s,
            user(2),
            &xfer_from(acct(1), acct(3), 100),
            T0 + 10 * SEC
        ),
        Err(TransferFromError::InsufficientAllowance {
            allowance: Nat::from(0u8)
        })
    );
    // An expired allowance counts as zero for expected_allowance.
    let mut b = approval(acct(2), 1);
    b.expected_allowance = Some(Nat::from(0u8));
    // The failed transfer_from above already pruned the lapsed entry.
    assert_eq!(s.allowance_count(), 0);
    operations::approve(&mut s, user(1), &b, T0 + 11 * SEC).unwrap();
    assert_eq!(
        allowance_of(&s, acct(1), acct(2), T0 + 11 * SEC),
        (Nat::from(1u8), None)
    );
}

#[test]
fn transfer_from_consumes_amount_plus_fee() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    operations::approve(&mut s, user(1), &approval(acct(2), 30_000), T0).unwrap();
    operations::transfer_from(&mut s, user(2), &xfer_from(acct(1), acct(3), 15_000), T0).unwrap();
    assert_eq!(s.balance(&acct(1)), 100_000 - FEE - 15_000 - FEE);
    assert_eq!(s.balance(&acct(3)), 15_000);
    assert_eq!(s.balance(&acct(2)), 0);
    assert_eq!(
        allowance_of(&s, acct(1), acct(2), T0).0,
        Nat::from(5_000u64)
    );
    assert_eq!(
        operations::transfer_from(&mut s, user(2), &xfer_from(acct(1), acct(3), 1), T0),
        Err(TransferFromError::InsufficientAllowance {
            allowance: Nat::from(5_000u64)
        })
    );
    // Another subaccount of the spender has no allowance.
    let mut via_sub = xfer_from(acct(1), acct(3), 0);
    via_sub.spender_subaccount = Some([1; 32]);
    assert_eq!(
        operations::transfer_from(&mut s, user(2), &via_sub, T0),
        Err(TransferFromError::InsufficientAllowance {
            allowance: Nat::from(0u8)
        })
    );
    let last = s.block(s.block_count() - 1).unwrap();
    assert_eq!(
        last.operation,
        Operation::Transfer {
            from: acct(1),
            to: acct(3),
            spender: Some(acct(2)),
            amount: 15_000,
            fee: FEE
        }
    );
    assert_eq!(sum_of_balances(&s), s.total_supply());
}

#[test]
fn transfer_from_insufficient_funds_keeps_allowance() {
    let mut s = ledger(&[(acct(1), 2 * FEE)]);
    operations::approve(&mut s, user(1), &approval(acct(2), 10 * FEE), T0).unwrap();
    assert_eq!(
        operations::transfer_from(&mut s, user(2), &xfer_from(acct(1), acct(3), FEE), T0),
        Err(TransferFromError::InsufficientFunds {
            balance: Nat::from(FEE)
        })
    );
    assert_eq!(
        allowance_of(&s, acct(1), acct(2), T0).0,
        Nat::from(10 * FEE)
    );
    let mut bad_fee = xfer_from(acct(1), acct(3), 1);
    bad_fee.fee = Some(Nat::from(FEE + 1));
    assert_eq!(
        operations::transfer_from(&mut s, user(2), &bad_fee, T0),
        Err(TransferFromError::BadFee {
            expected_fee: Nat::from(FEE)
        })
    );
}

#[test]
fn transfer_from_own_account_needs_no_allowance() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    operations::transfer_from(&mut s, user(1), &xfer_from(acct(1), acct(2), 1_000), T0).unwrap();
    assert_eq!(s.balance(&acct(1)), 100_000 - 1_000 - FEE);
    // A different subaccount of the caller is a different spender.
    let mut other = xfer_from(acct(1), acct(2), 1_000);
    other.spender_subaccount = Some([4; 32]);
    assert!(matches!(
        operations::transfer_from(&mut s, user(1), &other, T0),
        Err(TransferFromError::InsufficientAllowance { .. })
    ));
}

#[test]
fn transfer_from_to_minting_account_burns() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    operations::approve(&mut s, user(1), &approval(acct(2), 30_000), T0).unwrap();
    assert_eq!(
        operations::transfer_from(&mut s, user(2), &xfer_from(acct(1), minter(), FEE - 1), T0),
        Err(TransferFromError::BadBurn {
            min_burn_amount: Nat::from(FEE)
        })
    );
    operations::transfer_from(&mut s, user(2), &xfer_from(acct(1), minter(), 20_000), T0).unwrap();
    assert_eq!(s.balance(&acct(1)), 100_000 - FEE - 20_000);
    assert_eq!(
        allowance_of(&s, acct(1), acct(2), T0).0,
        Nat::from(10_000u64)
    );
    assert_eq!(s.total_supply(), 100_000 - FEE - 20_000);
    // The minting account cannot be spent from.
    assert!(matches!(
        operations::transfer_from(&mut s, user(2), &xfer_from(minter(), acct(3), 1), T0),
        Err(TransferFromError::GenericError { error_code, .. }) if error_code == ERR_MINTING_ACCOUNT
    ));
}

#[test]
fn approve_and_transfer_from_deduplicate() {
    let mut s = ledger(&[(acct(1), 100_000)]);
    let mut a = approval(acct(2), 50_000);
    a.created_at_time = Some(T0);
    let first = operations::approve(&mut s, user(1), &a, T0).unwrap();
    assert_eq!(
        operations::approve(&mut s, user(1), &a, T0),
        Err(ApproveError::Duplicate {
            duplicate_of: Nat::from(first)
        })
    );
    let mut tf = xfer_from(acct(1), acct(3), 1_000);
    tf.created_at_time = Some(T0);
    let first = operations::transfer_from(&mut s, user(2), &tf, T0).unwrap();
    assert_eq!(
        operations::transfer_from(&mut s, user(2), &tf, T0 + SEC),
        Err(TransferFromError::Duplicate {
            duplicate_of: Nat::from(first)
        })
    );
    assert_eq!(s.balance(&acct(3)), 1_000);
    // The same arguments from another spender are not a duplicate.
    operations::approve(&mut s, user(1), &approval(acct(4), 50_000), T0).unwrap();
    assert!(operations::transfer_from(&mut s, user(4), &tf, T0 + SEC).is_ok());
    let mut tf_old = tf.clone();
    tf_old.created_at_time = Some(T0 - TX_WINDOW_NANOS - PERMITTED_DRIFT_NANOS - 1);
    assert_eq!(
        operations::transfer_from(&mut s, user(4), &tf_old, T0),
        Err(TransferFromError::TooOld)
    );
    let mut a_future = approval(acct(2), 1);
    a_future.created_at_time = Some(T0 + PERMITTED_DRIFT_NANOS + 1);
    assert_eq!(
        operations::approve(&mut s, user(1), &a_future, T0),
        Err(ApproveError::CreatedInFuture { ledger_time: T0 })
    );
}

#[test]
fn anonymous_principal_is_an_ordinary_account() {
    let anon = Account::from(Principal::anonymous());
    let mut s = ledger(&[(acct(1), 100_000)]);
    operations::transfer(&mut s, user(1), &xfer(anon, 50_000), T0).unwrap();
    operations::transfer(&mut s, Principal::anonymous(), &xfer(acct(2), 1_000), T0).unwrap();
    assert_eq!(s.balance(&anon), 50_000 - 1_000 - FEE);
}

#[test]
fn upgrade_keeps_state_and_applies_changes() {
    let (mut s, memory) = ledger_with_memory(&[(acct(1), 100_000)]);
    let mut a = approval(acct(2), 30_000);
    a.expires_at = Some(T0 + 100 * SEC);
    operations::approve(&mut s, user(1), &a, T0).unwrap();
    let mut d = xfer(acct(3), 1_000);
    d.created_at_time = Some(T0);
    let first = operations::transfer(&mut s, user(1), &d, T0).unwrap();
    drop(s);

    let mut s = State::open(memory);
    let change = UpgradeArgs {
        transfer_fee: Some(Nat::from(20_000u64)),
        token_symbol: Some("TT2".into()),
        token_name: None,
    };
    operations::upgrade(&mut s, Some(&change)).unwrap();
    assert_eq!(s.config().fee, 20_000);
    assert_eq!(s.config().token_symbol, "TT2");
    assert_eq!(s.config().token_name, "Test Token");
    assert_eq!(s.balance(&acct(1)), 100_000 - 2 * FEE - 1_000);
    assert_eq!(s.total_supply(), 100_000 - 2 * FEE);
    assert_eq!(s.block_count(), 3);
    assert_eq!(
        allowance_of(&s, acct(1), acct(2), T0).0,
        Nat::from(30_000u64)
    );
    assert_eq!(
        operations::transfer(&mut s, user(1), &d, T0 + SEC),
        Err(TransferError::Duplicate {
            duplicate_of: Nat::from(first)
        })
    );
    operations::transfer(&mut s, user(1), &xfer(acct(3), 1), T0).unwrap();
    assert_eq!(s.balance(&acct(1)), 100_000 - 2 * FEE - 1_000 - 1 - 20_000);
}

#[test]
fn upgrade_of_an_empty_memory_is_refused() {
    let mut s = State::open_with_bucket_size(Default::default(), 1);
    assert!(operations::upgrade(&mut s, None).is_err());
}

#[test]
fn blocks_are_paged_with_a_cap() {
    let mut s = ledger(&[(acct(1), u64::MAX / 2)]);
    for i in 0..(MAX_BLOCKS_PER_PAGE + 10) {
        operations::transfer(&mut s, user(1), &xfer(acct(2), i), T0).unwrap();
    }
    let total = MAX_BLOCKS_PER_PAGE + 11;
    let page = s.blocks_page(0, u64::MAX);
    assert_eq!(
        (page.log_length, page.first_index, page.blocks.len() as u64),
        (total, 0, MAX_BLOCKS_PER_PAGE)
    );
    let page = s.blocks_page(total - 3, 10);
    assert_eq!(page.blocks.len(), 3);
    assert_eq!(page.first_index, total - 3);
    let page = s.blocks_page(total + 5, 10);
    assert_eq!((page.first_index, page.blocks.len()), (total, 0));
}

#[test]
fn icrc3_blocks_are_the_log_as_generic_values() {
    use icrc_ledger_types::icrc::generic_value::ICRC3Value;
    use icrc_ledger_types::icrc3::blocks::GetBlocksRequest;
    let mut s = ledger(&[(acct(1), 1_000_000)]);
    let mut arg = xfer(sub(2, 9), 5_000);
    arg.memo = Some(memo(12));
    arg.created_at_time = Some(T0 - 7);
    operations::transfer(&mut s, user(1), &arg, T0).unwrap();
    let range = |start: u64, length: u64| GetBlocksRequest {
        start: Nat::from(start),
        length: Nat::from(length),
    };
    let r = crate::icrc3::get_blocks(&s, &[range(0, 0)]);
    assert_eq!((r.log_length, r.blocks.len()), (Nat::from(2u8), 0));
    let r = crate::icrc3::get_blocks(&s, &[range(1, 5), range(0, 1)]);
    let ids: Vec<Nat> = r.blocks.iter().map(|b| b.id.clone()).collect();
    assert_eq!(ids, [Nat::from(1u8), Nat::from(0u8)]);
    assert!(r.archived_blocks.is_empty());
    let ICRC3Value::Map(block) = &r.blocks[0].block else {
        panic!("a block is a map");
    };
    let ICRC3Value::Map(tx) = &block["tx"] else {
        panic!("its transaction is a map");
    };
    let blob = |b: &[u8]| ICRC3Value::Blob(b.to_vec().into());
    assert_eq!(block["ts"], ICRC3Value::Nat(Nat::from(T0)));
    assert_eq!(block["fee"], ICRC3Value::Nat(Nat::from(FEE)));
    assert_eq!(tx["op"], ICRC3Value::Text("xfer".into()));
    assert_eq!(tx["amt"], ICRC3Value::Nat(Nat::from(5_000u64)));
    assert_eq!(tx["ts"], ICRC3Value::Nat(Nat::from(T0 - 7)));
    assert_eq!(tx["memo"], blob(&memo(12).0));
    assert_eq!(
        tx["from"],
        ICRC3Value::Array(vec![blob(user(1).as_slice())])
    );
    assert_eq!(
        tx["to"],
        ICRC3Value::Array(vec![blob(user(2).as_slice()), blob(&[9; 32])])
    );
    assert!(!tx.contains_key("fee"), "the call named no fee");
}

#[test]
fn metadata_matches_config() {
    let s = ledger(&[]);
    let md = operations::metadata(&s);
    let keys: Vec<&str> = md.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "icrc1:name",
            "icrc1:symbol",
            "icrc1:decimals",
            "icrc1:fee",
            "icrc1:max_memo_length"
        ]
    );
    let names: Vec<String> = operations::supported_standards()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["ICRC-1", "ICRC-2", "ICRC-3", "ICRC-10"]);
}
