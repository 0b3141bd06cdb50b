//! The cycles minting canister stand-in's `notify_top_up`: ICP sent to the
//! CMC's account for a canister, with the memo TPUP, becomes that
//! canister's cycles once, read from the block of the devnet's wasm ICP
//! ledger.

mod common;

use candid::{Decode, Encode, Nat, Principal};
use common::*;
use devnet::top_up::{
    MEMO_TOP_UP, NotifyError, NotifyTopUpArg, NotifyTopUpResult, XDR_PERMYRIAD_PER_ICP,
    top_up_subaccount,
};
use devnet::{CMC_ID, Devnet};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{Memo, TransferArg, TransferError};
use ledger::{InitArgs, LedgerArg};

const ICP: u64 = 100_000_000;

/// A devnet with an ICP ledger (the user holds 10 ICP) named as the
/// CMC's, and a probe canister to top up.
fn setup() -> (Devnet, Principal, Principal) {
    let (mut dn, [target]) = with_probes(["target"]);
    let ledger = dn.create_canister(vec![admin()]);
    let arg = LedgerArg::Init(InitArgs {
        token_name: "Internet Computer (local)".into(),
        token_symbol: "ICP".into(),
        decimals: Some(8),
        transfer_fee: Some(Nat::from(10_000u64)),
        minting_account: Account::from(admin()),
        initial_balances: vec![(Account::from(user()), Nat::from(10 * ICP))],
    });
    dn.install_canister(
        ledger,
        &canister_wasm("ledger"),
        Encode!(&arg).unwrap(),
        admin(),
    )
    .expect("install the ledger");
    dn.set_icp_ledger(ledger);
    (dn, ledger, target)
}

/// The user sends `amount` e8s to the CMC's account for `canister` with
/// `memo`; the block's index.
fn send(dn: &mut Devnet, ledger: Principal, canister: Principal, amount: u64, memo: u64) -> u64 {
    let arg = TransferArg {
        from_subaccount: None,
        to: Account {
            owner: CMC_ID,
            subaccount: Some(top_up_subaccount(canister)),
        },
        fee: None,
        created_at_time: None,
        memo: Some(Memo::from(memo.to_le_bytes().to_vec())),
        amount: Nat::from(amount),
    };
    let reply = dn
        .update_call(ledger, user(), "icrc1_transfer", Encode!(&arg).unwrap())
        .expect("the transfer is answered");
    let block = Decode!(&reply, Result<Nat, TransferError>)
        .unwrap()
        .expect("the transfer is made");
    u64::try_from(block.0).unwrap()
}

fn notify(dn: &mut Devnet, block_index: u64, canister_id: Principal) -> NotifyTopUpResult {
    let arg = NotifyTopUpArg {
        block_index,
        canister_id,
    };
    let reply = dn
        .update_call(CMC_ID, user(), "notify_top_up", Encode!(&arg).unwrap())
        .expect("the CMC answers");
    Decode!(&reply, NotifyTopUpResult).unwrap()
}

fn invalid(result: &NotifyTopUpResult) -> bool {
    matches!(
        result,
        NotifyTopUpResult::Err(NotifyError::InvalidTransaction(_))
    )
}

#[test]
fn a_top_up_turns_the_icp_into_cycles_once() {
    let (mut dn, ledger, target) = setup();
    let before = dn.cycle_balance(target).unwrap();
    let block = send(&mut dn, ledger, target, ICP, MEMO_TOP_UP);
    // 1 ICP at 5 XDR per ICP: 5 T cycles.
    let cycles = u128::from(ICP) * u128::from(XDR_PERMYRIAD_PER_ICP);
    assert_eq!(cycles, 5_000_000_000_000);
    assert_eq!(
        notify(&mut dn, block, target),
        NotifyTopUpResult::Ok(Nat::from(cycles))
    );
    assert_eq!(dn.cycle_balance(target).unwrap(), before + cycles);
    // Notified again: the same answer, no more cycles.
    assert_eq!(
        notify(&mut dn, block, target),
        NotifyTopUpResult::Ok(Nat::from(cycles))
    );
    assert_eq!(dn.cycle_balance(target).unwrap(), before + cycles);
    // It survives a save and a load of the devnet's state.
    let saved = dn.save_state().unwrap();
    let mut dn = Devnet::load_state(Default::default(), &saved).unwrap();
    assert_eq!(
        notify(&mut dn, block, target),
        NotifyTopUpResult::Ok(Nat::from(cycles))
    );
    assert_eq!(dn.cycle_balance(target).unwrap(), before + cycles);
}

#[test]
fn a_block_that_is_not_there_yet_can_be_notified_once_it_is() {
    let (mut dn, ledger, target) = setup();
    let before = dn.cycle_balance(target).unwrap();
    // The ledger's log holds its initial mint (block 0): block 1 is next.
    let early = notify(&mut dn, 1, target);
    assert!(invalid(&early), "{early:?}");
    assert_eq!(send(&mut dn, ledger, target, ICP, MEMO_TOP_UP), 1);
    assert!(matches!(
        notify(&mut dn, 1, target),
        NotifyTopUpResult::Ok(_)
    ));
    assert!(dn.cycle_balance(target).unwrap() > before);
}

#[test]
fn a_block_that_is_no_top_up_of_the_canister_is_refused_for_good() {
    let (mut dn, ledger, target) = setup();
    let other = install_probe(&mut dn, "other");
    let before = dn.cycle_balance(target).unwrap();
    // The mint of the initial balances.
    assert!(invalid(&notify(&mut dn, 0, target)));
    // The wrong memo.
    let wrong_memo = send(&mut dn, ledger, target, ICP, 0x4352_4541);
    assert!(invalid(&notify(&mut dn, wrong_memo, target)));
    assert!(invalid(&notify(&mut dn, wrong_memo, target)), "for good");
    assert_eq!(dn.cycle_balance(target).unwrap(), before);
    // Sent for one canister, notified for another: refused, and the
    // right notification still goes through.
    let other_before = dn.cycle_balance(other).unwrap();
    let for_target = send(&mut dn, ledger, target, ICP, MEMO_TOP_UP);
    assert!(invalid(&notify(&mut dn, for_target, other)));
    assert_eq!(dn.cycle_balance(other).unwrap(), other_before);
    assert!(matches!(
        notify(&mut dn, for_target, target),
        NotifyTopUpResult::Ok(_)
    ));
    assert!(dn.cycle_balance(target).unwrap() > before);
}

#[test]
fn without_an_icp_ledger_the_cmc_can_not_read_blocks() {
    let (mut dn, [target]) = with_probes(["target"]);
    let r = notify(&mut dn, 0, target);
    assert!(
        matches!(r, NotifyTopUpResult::Err(NotifyError::Other { .. })),
        "{r:?}"
    );
}
