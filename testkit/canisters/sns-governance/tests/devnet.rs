//! The stand-in on a devnet: proposals validated and executed against a
//! small hand-written "dapp" canister, and treasury transfers on the local
//! ledger. Needs `scripts/build-canisters.sh sns-governance-standin ledger`.

use market_artifacts::canister_wasm;

use candid::{CandidType, Deserialize, Nat, Principal};
use devnet::Devnet;
use market_api::Account;
use market_api::sns::{
    ExecuteGenericNervousSystemFunction, FunctionType, GenericNervousSystemFunction,
    NervousSystemFunction,
};
use market_fixture::ledger_types::{ListBlocksArgs, ListBlocksResult, local_icp};
use serde_bytes::ByteBuf;

/// A dapp canister answering governance's calls:
/// - `echo` replies with its argument bytes, so the payload a test submits
///   is the validator's reply (and must arrive unchanged to be accepted);
/// - `record` keeps its argument and caller and replies with bytes that are
///   not Candid (any reply counts as success);
/// - `trap` traps;
/// - queries `last_arg` and `last_caller` return what `record` kept.
const DAPP: &str = r#"(module
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (import "ic0" "msg_caller_size" (func $caller_size (result i32)))
  (import "ic0" "msg_caller_copy" (func $caller_copy (param i32 i32 i32)))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "trap" (func $trap (param i32 i32)))
  (memory (export "memory") 3)
  ;; 0: length of the kept argument; 4: length of the kept caller;
  ;; 64: the caller; 256: a constant; 1024: the argument; 131072: scratch.
  (data (i32.const 256) "not candid")
  (func (export "canister_update echo")
    (call $arg_copy (i32.const 131072) (i32.const 0) (call $arg_size))
    (call $append (i32.const 131072) (call $arg_size))
    (call $reply))
  (func (export "canister_update record")
    (i32.store (i32.const 0) (call $arg_size))
    (call $arg_copy (i32.const 1024) (i32.const 0) (call $arg_size))
    (i32.store (i32.const 4) (call $caller_size))
    (call $caller_copy (i32.const 64) (i32.const 0) (call $caller_size))
    (call $append (i32.const 256) (i32.const 10))
    (call $reply))
  (func (export "canister_update trap")
    (call $trap (i32.const 256) (i32.const 10)))
  (func (export "canister_query last_arg")
    (call $append (i32.const 1024) (i32.load (i32.const 0)))
    (call $reply))
  (func (export "canister_query last_caller")
    (call $append (i32.const 64) (i32.load (i32.const 4)))
    (call $reply)))"#;

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
enum ProposalStatus {
    Open,
    Executed,
    Failed(String),
}

#[derive(CandidType, Deserialize, Clone, Debug)]
struct Proposal {
    id: u64,
    function_id: u64,
    payload: ByteBuf,
    rendering: String,
    status: ProposalStatus,
}

#[derive(CandidType)]
struct TransferTreasuryFunds {
    ledger: Principal,
    to_principal: Principal,
    to_subaccount: Option<ByteBuf>,
    memo: Option<u64>,
    amount_e8s: u64,
}

fn admin() -> Principal {
    Principal::from_slice(&[0xad; 29])
}

fn user() -> Principal {
    Principal::from_slice(&[0x05; 29])
}

/// A devnet with the stand-in and the dapp canister.
fn setup() -> (Devnet, Principal, Principal) {
    let mut dn = Devnet::new();
    let governance = dn
        .deploy(admin(), &canister_wasm("sns-governance-standin"), &())
        .expect("install the stand-in");
    let dapp = dn.create_canister(vec![admin()]);
    dn.install_canister(dapp, &wat::parse_str(DAPP).unwrap(), vec![], admin())
        .expect("install the dapp");
    (dn, governance, dapp)
}

fn function(id: u64, canister: Principal, validator: &str, target: &str) -> NervousSystemFunction {
    NervousSystemFunction {
        id,
        name: format!("function {id}"),
        description: None,
        function_type: Some(FunctionType::GenericNervousSystemFunction(
            GenericNervousSystemFunction {
                topic: None,
                validator_canister_id: Some(canister),
                target_canister_id: Some(canister),
                validator_method_name: Some(validator.into()),
                target_method_name: Some(target.into()),
            },
        )),
    }
}

fn add(dn: &mut Devnet, gov: Principal, f: &NervousSystemFunction) -> Result<(), String> {
    dn.update(gov, user(), "add_function", f).unwrap()
}

fn submit(
    dn: &mut Devnet,
    gov: Principal,
    function_id: u64,
    payload: Vec<u8>,
) -> Result<u64, String> {
    let proposal = ExecuteGenericNervousSystemFunction {
        function_id,
        payload,
    };
    dn.update(gov, user(), "submit_proposal", &proposal)
        .unwrap()
}

fn execute(dn: &mut Devnet, gov: Principal, id: u64) -> Result<(), String> {
    dn.update(gov, user(), "execute_proposal", &id).unwrap()
}

fn proposal(dn: &mut Devnet, gov: Principal, id: u64) -> Option<Proposal> {
    dn.query(gov, user(), "get_proposal", &id).unwrap()
}

/// A payload the `echo` validator turns into this verdict.
fn verdict(v: Result<&str, &str>) -> Vec<u8> {
    let v: Result<String, String> = v.map(Into::into).map_err(Into::into);
    candid::encode_one(v).unwrap()
}

#[test]
fn a_proposal_is_validated_then_executed_once_with_the_payload_bytes() {
    let (mut dn, gov, dapp) = setup();
    add(&mut dn, gov, &function(1000, dapp, "echo", "record")).unwrap();

    let payload = verdict(Ok("reserve 4 slots"));
    let id = submit(&mut dn, gov, 1000, payload.clone()).unwrap();
    let p = proposal(&mut dn, gov, id).expect("stored");
    assert_eq!((p.id, p.function_id), (id, 1000));
    assert_eq!(p.rendering, "reserve 4 slots");
    assert_eq!(p.payload.as_slice(), payload.as_slice());
    assert_eq!(p.status, ProposalStatus::Open);

    // The target replies with bytes that are not Candid: still executed.
    execute(&mut dn, gov, id).unwrap();
    assert_eq!(
        proposal(&mut dn, gov, id).unwrap().status,
        ProposalStatus::Executed
    );
    let arg = dn.query_call(dapp, user(), "last_arg", vec![]).unwrap();
    assert_eq!(arg, payload);
    let caller = dn.query_call(dapp, user(), "last_caller", vec![]).unwrap();
    assert_eq!(caller, gov.as_slice());

    let again = execute(&mut dn, gov, id).unwrap_err();
    assert!(again.contains("already executed"), "{again}");
}

#[test]
fn refused_validations_store_nothing_and_a_trapping_target_fails_the_proposal() {
    let (mut dn, gov, dapp) = setup();
    add(&mut dn, gov, &function(1000, dapp, "echo", "trap")).unwrap();
    add(&mut dn, gov, &function(1001, dapp, "trap", "record")).unwrap();
    add(
        &mut dn,
        gov,
        &function(1002, dapp, "no_such_method", "record"),
    )
    .unwrap();

    let err = submit(&mut dn, gov, 1000, verdict(Err("no capacity"))).unwrap_err();
    assert_eq!(err, "Invalid proposal: no capacity");
    let err = submit(&mut dn, gov, 1000, candid::encode_one(7u64).unwrap()).unwrap_err();
    assert!(err.contains("decoding"), "{err}");
    let err = submit(&mut dn, gov, 1001, verdict(Ok("x"))).unwrap_err();
    assert!(err.contains("reject code 5"), "{err}");
    let err = submit(&mut dn, gov, 1002, verdict(Ok("x"))).unwrap_err();
    assert!(
        err.contains("reject code 5") && err.contains("no update method 'no_such_method'"),
        "{err}"
    );
    let err = submit(&mut dn, gov, 1003, verdict(Ok("x"))).unwrap_err();
    assert!(
        err.contains("no NervousSystemFunction with id: 1003"),
        "{err}"
    );
    assert!(proposal(&mut dn, gov, 1).is_none());

    let id = submit(&mut dn, gov, 1000, verdict(Ok("x"))).unwrap();
    assert_eq!(id, 1);
    let err = execute(&mut dn, gov, id).unwrap_err();
    assert!(err.starts_with("reject code 5"), "{err}");
    assert_eq!(
        proposal(&mut dn, gov, id).unwrap().status,
        ProposalStatus::Failed(err)
    );
    assert!(execute(&mut dn, gov, id).is_err());
}

#[test]
fn functions_are_checked_before_registration() {
    let (mut dn, gov, dapp) = setup();
    let err = add(&mut dn, gov, &function(999, dapp, "echo", "record")).unwrap_err();
    assert!(err.contains("ids starting at 1000"), "{err}");
    let mut untyped = function(1000, dapp, "echo", "record");
    untyped.function_type = None;
    assert!(add(&mut dn, gov, &untyped).is_err());
    let err = add(&mut dn, gov, &function(1000, gov, "echo", "record")).unwrap_err();
    assert!(err.contains("ic00"), "{err}");
    let err = add(&mut dn, gov, &function(1000, dapp, "", "record")).unwrap_err();
    assert!(err.contains("validator_method_name"), "{err}");
    add(&mut dn, gov, &function(1000, dapp, "echo", "record")).unwrap();
    let err = add(&mut dn, gov, &function(1000, dapp, "echo", "record")).unwrap_err();
    assert!(err.contains("already"), "{err}");
}

// The local ledger's init argument (testkit/ledger/ledger.did).

#[test]
fn treasury_transfers_pay_from_the_default_account_with_the_memo() {
    let (mut dn, gov, _) = setup();
    let fee = 10_000u64;
    let treasury = Account {
        owner: gov,
        subaccount: None,
    };
    let init = local_icp(
        fee.into(),
        Account {
            owner: Principal::from_slice(&[0x0e; 29]),
            subaccount: None,
        },
        vec![(treasury, 1_000_000)],
    );
    let ledger = dn
        .deploy(admin(), &canister_wasm("ledger"), &init)
        .expect("install the ledger");
    let to = Account {
        owner: user(),
        subaccount: Some([7; 32]),
    };
    let transfer = |amount_e8s, to_subaccount: Option<ByteBuf>| TransferTreasuryFunds {
        ledger,
        to_principal: user(),
        to_subaccount,
        memo: Some(42),
        amount_e8s,
    };

    let r: Result<Nat, String> = dn
        .update(
            gov,
            user(),
            "transfer_treasury_funds",
            &transfer(250_000, to.subaccount.map(|s| ByteBuf::from(s.to_vec()))),
        )
        .unwrap();
    let block = r.unwrap();
    let balance = |dn: &mut Devnet, a: &Account| -> Nat {
        dn.query(ledger, user(), "icrc1_balance_of", a).unwrap()
    };
    assert_eq!(balance(&mut dn, &to), Nat::from(250_000u64));
    assert_eq!(
        balance(&mut dn, &treasury),
        Nat::from(1_000_000u64 - 250_000 - fee)
    );
    let page: ListBlocksResult = dn
        .query(
            ledger,
            user(),
            "list_blocks",
            &ListBlocksArgs {
                start: 0,
                length: 10,
            },
        )
        .unwrap();
    assert_eq!(Nat::from(page.log_length - 1), block);
    let last = page.blocks.last().unwrap();
    assert_eq!(
        last.memo.clone().map(|m| m.0.into_vec()),
        Some(42u64.to_be_bytes().to_vec())
    );
    assert_eq!(last.created_at_time, None);

    let r: Result<Nat, String> = dn
        .update(
            gov,
            user(),
            "transfer_treasury_funds",
            &transfer(10_000_000, None),
        )
        .unwrap();
    let err = r.unwrap_err();
    assert!(err.contains("InsufficientFunds"), "{err}");
    let r: Result<Nat, String> = dn
        .update(
            gov,
            user(),
            "transfer_treasury_funds",
            &transfer(1, Some(ByteBuf::from(vec![1; 3]))),
        )
        .unwrap();
    assert!(r.unwrap_err().contains("32 bytes"));
}
