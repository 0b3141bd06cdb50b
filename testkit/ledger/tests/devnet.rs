//! The ledger's real .wasm on the devnet: ICRC-2 approve and transfer_from
//! with expiry, deduplication of transfers by created_at_time, fees, and
//! state kept across an upgrade.
//!
//! Needs `scripts/build-canisters.sh ledger`.

use candid::{Nat, Principal};
use devnet::Devnet;
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::allowance::{Allowance, AllowanceArgs};
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use ledger::{InitArgs, LedgerArg};
use std::time::Duration;

const FEE: u64 = 10_000;
const HOUR: u64 = 3_600 * 1_000_000_000;

fn p(n: u8) -> Principal {
    Principal::from_slice(&[0x77, n])
}

fn acct(owner: Principal) -> Account {
    Account {
        owner,
        subaccount: None,
    }
}

fn setup() -> (Devnet, Principal) {
    let mut dn = Devnet::new();
    let arg = LedgerArg::Init(InitArgs {
        token_name: "Internet Computer".into(),
        token_symbol: "ICP".into(),
        decimals: None,
        transfer_fee: Some(Nat::from(FEE)),
        minting_account: acct(p(0)),
        initial_balances: vec![(acct(p(1)), Nat::from(1_000_000u64))],
    });
    let ledger = dn
        .deploy(p(9), &market_artifacts::canister_wasm("ledger"), &arg)
        .expect("install ledger");
    (dn, ledger)
}

fn balance(dn: &mut Devnet, ledger: Principal, owner: Principal) -> Nat {
    dn.query(ledger, owner, "icrc1_balance_of", &acct(owner))
        .unwrap()
}

fn approve(
    dn: &mut Devnet,
    ledger: Principal,
    amount: u64,
    expires_at: Option<u64>,
) -> Result<Nat, ApproveError> {
    let args = ApproveArgs {
        from_subaccount: None,
        spender: acct(p(2)),
        amount: Nat::from(amount),
        expected_allowance: None,
        expires_at,
        fee: None,
        memo: None,
        created_at_time: None,
    };
    dn.update(ledger, p(1), "icrc2_approve", &args).unwrap()
}

fn transfer_from(
    dn: &mut Devnet,
    ledger: Principal,
    amount: u64,
) -> Result<Nat, TransferFromError> {
    let args = TransferFromArgs {
        spender_subaccount: None,
        from: acct(p(1)),
        to: acct(p(3)),
        amount: Nat::from(amount),
        fee: None,
        memo: None,
        created_at_time: None,
    };
    dn.update(ledger, p(2), "icrc2_transfer_from", &args)
        .unwrap()
}

#[test]
fn approve_and_transfer_from_with_expiry() {
    let (mut dn, ledger) = setup();
    let now = dn.time_nanos();
    approve(&mut dn, ledger, 100_000, Some(now + HOUR)).unwrap();
    let allowance: Allowance = dn
        .query(
            ledger,
            p(2),
            "icrc2_allowance",
            &AllowanceArgs {
                account: acct(p(1)),
                spender: acct(p(2)),
            },
        )
        .unwrap();
    assert_eq!(allowance.allowance, Nat::from(100_000u64));
    // amount + fee comes out of the allowance and the owner's balance.
    transfer_from(&mut dn, ledger, 50_000).unwrap();
    assert_eq!(balance(&mut dn, ledger, p(3)), Nat::from(50_000u64));
    assert_eq!(
        balance(&mut dn, ledger, p(1)),
        Nat::from(1_000_000u64 - FEE - 50_000 - FEE)
    );
    assert!(matches!(
        transfer_from(&mut dn, ledger, 50_000),
        Err(TransferFromError::InsufficientAllowance { .. })
    ));
    // Past its expiry the allowance is gone.
    dn.advance_time(Duration::from_secs(3_601));
    assert!(matches!(
        transfer_from(&mut dn, ledger, 1_000),
        Err(TransferFromError::InsufficientAllowance { .. })
    ));
    // An expiry in the past is refused.
    let past = dn.time_nanos() - 1;
    assert!(matches!(
        approve(&mut dn, ledger, 1, Some(past)),
        Err(ApproveError::Expired { .. })
    ));
}

#[test]
fn transfers_are_deduplicated_and_survive_an_upgrade() {
    let (mut dn, ledger) = setup();
    let arg = TransferArg {
        from_subaccount: None,
        to: acct(p(4)),
        fee: None,
        created_at_time: Some(dn.time_nanos()),
        memo: None,
        amount: Nat::from(1_000u64),
    };
    let first: Result<Nat, TransferError> =
        dn.update(ledger, p(1), "icrc1_transfer", &arg).unwrap();
    let block = first.unwrap();
    let again: Result<Nat, TransferError> =
        dn.update(ledger, p(1), "icrc1_transfer", &arg).unwrap();
    assert_eq!(
        again,
        Err(TransferError::Duplicate {
            duplicate_of: block
        })
    );
    assert_eq!(balance(&mut dn, ledger, p(4)), Nat::from(1_000u64));

    dn.upgrade_canister(
        ledger,
        &market_artifacts::canister_wasm("ledger"),
        candid::encode_one(Option::<LedgerArg>::None).unwrap(),
        p(9),
    )
    .expect("upgrade");
    let after: Result<Nat, TransferError> =
        dn.update(ledger, p(1), "icrc1_transfer", &arg).unwrap();
    assert!(
        matches!(after, Err(TransferError::Duplicate { .. })),
        "dedup survives the upgrade"
    );
    assert_eq!(balance(&mut dn, ledger, p(4)), Nat::from(1_000u64));

    dn.advance_time(Duration::from_secs(25 * 3_600));
    let old: Result<Nat, TransferError> = dn.update(ledger, p(1), "icrc1_transfer", &arg).unwrap();
    assert_eq!(old, Err(TransferError::TooOld));
    let bad_fee = TransferArg {
        fee: Some(Nat::from(1u64)),
        created_at_time: None,
        ..arg
    };
    let r: Result<Nat, TransferError> =
        dn.update(ledger, p(1), "icrc1_transfer", &bad_fee).unwrap();
    assert_eq!(
        r,
        Err(TransferError::BadFee {
            expected_fee: Nat::from(FEE)
        })
    );
}
