//! The management canister's lifecycle, settings and logs, and the cycles
//! ledger and cycles minting canister stand-ins: canister ids, stopping,
//! starting, deleting, settings kept and checked, log records and their
//! visibility, creating and topping up canisters with ledger cycles.

mod common;

use std::time::Duration;

use candid::{Decode, Encode, Nat, Principal};
use common::*;
use devnet::{
    CANISTER_CREATION_FEE, CMC_ID, CYCLES_LEDGER_FEE, CYCLES_LEDGER_ID, CanisterSettings, Devnet,
    DevnetConfig, ErrorCode, FIRST_CANISTER_ID, RejectCode, RunStatus, cycles_account,
};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterStatusResult, CanisterStatusType, FetchCanisterLogsArgs,
    FetchCanisterLogsResult, LogVisibility, UpdateSettingsArgs,
};

fn mgmt() -> Principal {
    Principal::management_canister()
}

fn id_arg(canister: Principal) -> Vec<u8> {
    Encode!(&CanisterIdRecord {
        canister_id: canister
    })
    .unwrap()
}

fn manage(
    dn: &mut Devnet,
    sender: Principal,
    method: &str,
    canister: Principal,
) -> Result<(), devnet::Reject> {
    dn.update_call(mgmt(), sender, method, id_arg(canister))
        .map(|_| ())
}

#[test]
fn ids_are_those_of_a_local_application_subnet() {
    let mut dn = Devnet::new();
    let ids: Vec<Principal> = (0..6).map(|_| dn.create_canister(vec![admin()])).collect();
    assert_eq!(ids[0], FIRST_CANISTER_ID);
    assert_eq!(ids[0].to_text(), "bkyz2-fmaaa-aaaaa-qaaaq-cai");
    assert_eq!(ids[1].to_text(), "bd3sg-teaaa-aaaaa-qaaba-cai");
    let ledger = Principal::from_text("ryjl3-tyaaa-aaaaa-aaaba-cai").unwrap();
    for system in [ledger, CMC_ID, CYCLES_LEDGER_ID] {
        assert!(!ids.contains(&system), "{system} was given to a canister");
    }
}

#[test]
fn a_stopped_canister_refuses_requests_and_fires_no_timers() {
    let (mut dn, [a, b]) = with_probes(["a", "b"]);
    let _: () = dn.update(a, user(), "set_timer", &5u64).unwrap();
    manage(&mut dn, admin(), "stop_canister", a).unwrap();
    assert_eq!(dn.run_status(a), Some(RunStatus::Stopped));

    let err = dn.update_call(a, user(), "inc", no_args()).unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterStopped));
    assert_eq!(err.code, RejectCode::CanisterError);
    let err = dn.query_call(a, user(), "get", no_args()).unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterStopped));
    // A call from another canister is rejected with the same code (5).
    let (out,): (CallOutcome,) = dn
        .update_args(
            b,
            user(),
            "call",
            (a, "inc".to_string(), no_args(), None::<u32>),
        )
        .unwrap();
    assert!(
        matches!(out, CallOutcome::Reject(5, ref m) if m.contains("stopped")),
        "{out:?}"
    );

    dn.advance_time(Duration::from_secs(10));
    dn.tick();
    manage(&mut dn, admin(), "start_canister", a).unwrap();
    assert_eq!(dn.run_status(a), Some(RunStatus::Running));
    assert_eq!(
        dn.query::<_, u64>(a, user(), "timer_fires", &()).unwrap(),
        0,
        "no timer while stopped"
    );
    dn.tick();
    assert_eq!(
        dn.query::<_, u64>(a, user(), "timer_fires", &()).unwrap(),
        1,
        "the timer fires once started"
    );
    assert_eq!(inc(&mut dn, a), 1);
}

#[test]
fn stopping_waits_for_open_call_contexts() {
    let (mut dn, [a, b]) = with_probes(["a", "b"]);
    let arg = Encode!(&b, &"inc".to_string(), &no_args(), &None::<u32>).unwrap();
    let call = dn.submit_call(a, user(), "call", arg).unwrap();
    assert!(dn.step(), "a runs and calls b");
    let stop = dn
        .submit_call(mgmt(), admin(), "stop_canister", id_arg(a))
        .unwrap();
    assert_eq!(dn.run_status(a), Some(RunStatus::Stopping));
    assert_eq!(dn.ingress_status(stop), devnet::IngressStatus::Pending);
    let err = dn.update_call(a, user(), "inc", no_args()).unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterStopping));
    let status = dn.canister_status(a).unwrap();
    assert_eq!(status.status, CanisterStatusType::Stopping);

    // b answers, a's callback still runs, and the stop call is answered.
    dn.tick();
    assert!(dn.await_call(call).is_ok());
    assert!(dn.await_call(stop).is_ok());
    assert_eq!(dn.run_status(a), Some(RunStatus::Stopped));
    assert_eq!(get(&mut dn, b), 1);
}

#[test]
fn starting_a_stopping_canister_rejects_the_stop_call() {
    let (mut dn, [a, b]) = with_probes(["a", "b"]);
    let arg = Encode!(&b, &"inc".to_string(), &no_args(), &None::<u32>).unwrap();
    dn.submit_call(a, user(), "call", arg).unwrap();
    assert!(dn.step());
    let stop = dn
        .submit_call(mgmt(), admin(), "stop_canister", id_arg(a))
        .unwrap();
    manage(&mut dn, admin(), "start_canister", a).unwrap();
    let err = dn.await_call(stop).unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterStoppingCancelled));
    assert_eq!(dn.run_status(a), Some(RunStatus::Running));
}

#[test]
fn only_controllers_stop_and_delete_and_only_stopped_canisters_go() {
    let (mut dn, [a]) = with_probes(["a"]);
    let err = manage(&mut dn, user(), "stop_canister", a).unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterInvalidController));
    let err = manage(&mut dn, admin(), "delete_canister", a).unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterNotStopped));
    assert_eq!(err.code, RejectCode::CanisterError);
    manage(&mut dn, admin(), "stop_canister", a).unwrap();
    let err = manage(&mut dn, user(), "delete_canister", a).unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterInvalidController));
    manage(&mut dn, admin(), "delete_canister", a).unwrap();

    assert!(!dn.canister_exists(a));
    let err = dn.update_call(a, user(), "inc", no_args()).unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterNotFound));
    assert_eq!(err.code, RejectCode::DestinationInvalid);
    let err = manage(&mut dn, admin(), "start_canister", a).unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterNotFound));
    // The id is never given again.
    let next = dn.create_canister(vec![admin()]);
    assert_ne!(next, a);
}

#[test]
fn uninstall_code_leaves_an_empty_canister() {
    let (mut dn, [a]) = with_probes(["a"]);
    inc(&mut dn, a);
    manage(&mut dn, admin(), "uninstall_code", a).unwrap();
    assert_eq!(dn.module_hash(a), None);
    let err = dn.update_call(a, user(), "inc", no_args()).unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterWasmModuleNotFound));
}

#[test]
fn update_settings_keeps_every_setting_and_checks_them() {
    let (mut dn, [a]) = with_probes(["a"]);
    let viewer = Principal::from_slice(&[0x77; 29]);
    let settings = CanisterSettings {
        compute_allocation: Some(Nat::from(7u8)),
        memory_allocation: Some(Nat::from(1u64 << 30)),
        freezing_threshold: Some(Nat::from(600u32)),
        reserved_cycles_limit: Some(Nat::from(1_000u32)),
        log_visibility: Some(LogVisibility::AllowedViewers(vec![viewer])),
        log_memory_limit: Some(Nat::from(2048u32)),
        wasm_memory_limit: Some(Nat::from(1u64 << 31)),
        wasm_memory_threshold: Some(Nat::from(1u64 << 20)),
        environment_variables: Some(vec![ic_management_canister_types::EnvironmentVariable {
            name: "MODE".into(),
            value: "test".into(),
        }]),
        ..Default::default()
    };
    let arg = UpdateSettingsArgs {
        canister_id: a,
        settings: settings.clone(),
        sender_canister_version: None,
    };
    dn.update_call(mgmt(), admin(), "update_settings", Encode!(&arg).unwrap())
        .unwrap();
    let reply = dn
        .update_call(mgmt(), admin(), "canister_status", id_arg(a))
        .unwrap();
    let status = Decode!(&reply, CanisterStatusResult).unwrap();
    let s = status.settings;
    assert_eq!(s.controllers, vec![admin()], "unset fields are kept");
    assert_eq!(s.compute_allocation, Nat::from(7u8));
    assert_eq!(s.memory_allocation, Nat::from(1u64 << 30));
    assert_eq!(s.freezing_threshold, Nat::from(600u32));
    assert_eq!(s.reserved_cycles_limit, Nat::from(1_000u32));
    assert_eq!(
        s.log_visibility,
        LogVisibility::AllowedViewers(vec![viewer])
    );
    assert_eq!(s.log_memory_limit, Nat::from(2048u32));
    assert_eq!(s.wasm_memory_limit, Nat::from(1u64 << 31));
    assert_eq!(s.wasm_memory_threshold, Nat::from(1u64 << 20));
    assert_eq!(s.environment_variables.len(), 1);

    for bad in [
        CanisterSettings {
            compute_allocation: Some(Nat::from(101u8)),
            ..Default::default()
        },
        CanisterSettings {
            controllers: Some((0..11u8).map(|i| Principal::from_slice(&[i; 29])).collect()),
            ..Default::default()
        },
    ] {
        let arg = UpdateSettingsArgs {
            canister_id: a,
            settings: bad,
            sender_canister_version: None,
        };
        let err = dn
            .update_call(mgmt(), admin(), "update_settings", Encode!(&arg).unwrap())
            .unwrap_err();
        assert_eq!(
            err.error_code,
            Some(ErrorCode::CanisterContractViolation),
            "{err}"
        );
    }
    let status = dn.canister_status(a).unwrap();
    assert_eq!(
        status.settings.compute_allocation,
        Nat::from(7u8),
        "a refused update changes nothing"
    );
    assert_eq!(status.settings.controllers, vec![admin()]);

    // The status is the controllers' unless status_visibility opens it.
    let err = dn
        .query_call(mgmt(), user(), "canister_status", id_arg(a))
        .unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterInvalidController));
    let open = CanisterSettings {
        status_visibility: Some(ic_management_canister_types::StatusVisibility::Public),
        ..Default::default()
    };
    dn.update_settings(admin(), a, open).unwrap();
    assert!(
        dn.query_call(mgmt(), user(), "canister_status", id_arg(a))
            .is_ok()
    );

    // create_canister keeps the settings it is given too.
    let created = dn
        .create_canister_with_settings(
            admin(),
            CanisterSettings {
                freezing_threshold: Some(Nat::from(42u8)),
                ..Default::default()
            },
        )
        .unwrap();
    let status = dn.canister_status(created).unwrap();
    assert_eq!(status.settings.freezing_threshold, Nat::from(42u8));
    assert_eq!(status.settings.controllers, vec![admin()]);
}

/// A canister whose `print` update `debug_print`s its argument bytes and
/// whose `boom` update traps.
fn printer_wasm() -> Vec<u8> {
    wat::parse_str(
        r#"(module
          (import "ic0" "msg_arg_data_size" (func $size (result i32)))
          (import "ic0" "msg_arg_data_copy" (func $copy (param i32 i32 i32)))
          (import "ic0" "debug_print" (func $print (param i32 i32)))
          (import "ic0" "trap" (func $trap (param i32 i32)))
          (import "ic0" "msg_reply" (func $reply))
          (memory (export "memory") 1)
          (data (i32.const 60000) "boom!")
          (func (export "canister_update print")
            (call $copy (i32.const 0) (i32.const 0) (call $size))
            (call $print (i32.const 0) (call $size))
            (call $reply))
          (func (export "canister_update boom")
            (call $trap (i32.const 60000) (i32.const 5))))"#,
    )
    .unwrap()
}

fn logs(
    dn: &mut Devnet,
    sender: Principal,
    canister: Principal,
) -> Result<FetchCanisterLogsResult, devnet::Reject> {
    let arg = Encode!(&FetchCanisterLogsArgs {
        canister_id: canister,
        filter: None,
    })
    .unwrap();
    dn.query_call(mgmt(), sender, "fetch_canister_logs", arg)
        .map(|r| Decode!(&r, FetchCanisterLogsResult).unwrap())
}

#[test]
fn logs_hold_prints_and_traps_within_the_limit_for_allowed_viewers() {
    let mut dn = Devnet::new();
    let c = dn.create_canister(vec![admin()]);
    dn.install_canister(c, &printer_wasm(), vec![], admin())
        .unwrap();
    dn.update_call(c, user(), "print", b"hello".to_vec())
        .unwrap();
    dn.advance_time(Duration::from_secs(1));
    let err = dn.update_call(c, user(), "boom", vec![]).unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterCalledTrap));

    let records = logs(&mut dn, admin(), c).unwrap().canister_log_records;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].content, b"hello");
    assert_eq!(records[0].idx, 0);
    assert!(String::from_utf8_lossy(&records[1].content).contains("boom!"));
    assert_eq!(
        records[1].timestamp_nanos,
        records[0].timestamp_nanos + 1_000_000_000
    );
    // The old accessor still sees the printed lines.
    assert_eq!(dn.canister_logs(c), ["hello"]);

    // Controllers only, by default.
    let err = logs(&mut dn, user(), c).unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterReject);
    let public = CanisterSettings {
        log_visibility: Some(LogVisibility::Public),
        log_memory_limit: Some(Nat::from(100u32)),
        ..Default::default()
    };
    dn.update_settings(admin(), c, public).unwrap();
    for i in 0..30 {
        dn.update_call(c, user(), "print", format!("line {i:02}").into_bytes())
            .unwrap();
    }
    let records = logs(&mut dn, user(), c).unwrap().canister_log_records;
    let bytes: usize = records.iter().map(|r| r.content.len()).sum();
    assert!(bytes <= 100, "{bytes} bytes kept");
    assert_eq!(records.last().unwrap().content, b"line 29");
    assert_eq!(
        records.len(),
        14,
        "the oldest lines are dropped (7 bytes each)"
    );

    // The IC's filters: half-open ranges of indices or times.
    let last = records.last().unwrap().idx;
    let arg = Encode!(&FetchCanisterLogsArgs {
        canister_id: c,
        filter: Some(ic_management_canister_types::CanisterLogFilter::ByIdx {
            start: last - 1,
            end: last + 5,
        }),
    })
    .unwrap();
    let reply = dn
        .query_call(mgmt(), user(), "fetch_canister_logs", arg)
        .unwrap();
    let filtered = Decode!(&reply, FetchCanisterLogsResult).unwrap();
    let idx: Vec<u64> = filtered
        .canister_log_records
        .iter()
        .map(|r| r.idx)
        .collect();
    assert_eq!(idx, [last - 1, last]);
}

fn ledger_balance(dn: &mut Devnet, owner: Principal) -> u128 {
    let reply = dn
        .query_call(
            CYCLES_LEDGER_ID,
            user(),
            "icrc1_balance_of",
            Encode!(&cycles_account(owner)).unwrap(),
        )
        .unwrap();
    u128::try_from(Decode!(&reply, Nat).unwrap().0).unwrap()
}

#[derive(candid::CandidType)]
struct CreateArgs {
    from_subaccount: Option<Vec<u8>>,
    created_at_time: Option<u64>,
    amount: Nat,
    creation_args: Option<CreationArgs>,
}

#[derive(candid::CandidType)]
struct CreationArgs {
    subnet_selection: Option<SubnetSelection>,
    settings: Option<CanisterSettings>,
}

#[derive(candid::CandidType)]
enum SubnetSelection {
    Subnet { subnet: Principal },
}

#[derive(candid::CandidType, candid::Deserialize, Debug)]
enum CreateResponse {
    Ok {
        block_id: Nat,
        canister_id: Principal,
    },
    Err(CreateError),
}

#[derive(candid::CandidType, candid::Deserialize, Debug)]
enum CreateError {
    InsufficientFunds {
        balance: Nat,
    },
    FailedToCreate {
        error: String,
        refund_block: Option<Nat>,
        fee_block: Option<Nat>,
    },
    TooOld,
    CreatedInFuture {
        ledger_time: u64,
    },
    TemporarilyUnavailable,
    Duplicate {
        duplicate_of: Nat,
        canister_id: Option<Principal>,
    },
    GenericError {
        message: String,
        error_code: Nat,
    },
}

#[derive(candid::CandidType)]
struct WithdrawArgs {
    amount: Nat,
    from_subaccount: Option<Vec<u8>>,
    to: Principal,
    created_at_time: Option<u64>,
}

#[derive(candid::CandidType, candid::Deserialize, Debug)]
enum WithdrawError {
    InsufficientFunds {
        balance: Nat,
    },
    InvalidReceiver {
        receiver: Principal,
    },
    TooOld,
    CreatedInFuture {
        ledger_time: u64,
    },
    TemporarilyUnavailable,
    Duplicate {
        duplicate_of: Nat,
    },
    BadFee {
        expected_fee: Nat,
    },
    GenericError {
        message: String,
        error_code: Nat,
    },
    FailedToWithdraw {
        fee_block: Option<Nat>,
        rejection_code: candid::Reserved,
        rejection_reason: String,
    },
}

fn create_through_ledger(
    dn: &mut Devnet,
    sender: Principal,
    amount: u128,
    subnet: Principal,
) -> CreateResponse {
    let arg = CreateArgs {
        from_subaccount: None,
        created_at_time: None,
        amount: Nat::from(amount),
        creation_args: Some(CreationArgs {
            subnet_selection: Some(SubnetSelection::Subnet { subnet }),
            settings: Some(CanisterSettings {
                freezing_threshold: Some(Nat::from(99u8)),
                ..Default::default()
            }),
        }),
    };
    let reply = dn
        .update_call(
            CYCLES_LEDGER_ID,
            sender,
            "create_canister",
            Encode!(&arg).unwrap(),
        )
        .unwrap();
    Decode!(&reply, CreateResponse).unwrap()
}

#[test]
fn the_cycles_ledger_creates_and_tops_up_canisters() {
    let mut dn = Devnet::new();
    let subnet = Principal::from_slice(&[0x42; 29]);
    dn.set_subnet_id(subnet);
    let reply = dn
        .query_call(CMC_ID, user(), "get_default_subnets", Encode!().unwrap())
        .unwrap();
    assert_eq!(Decode!(&reply, Vec<Principal>).unwrap(), vec![subnet]);

    let t = 1_000_000_000_000u128;
    dn.mint_cycles(cycles_account(user()), 3 * t);
    assert_eq!(ledger_balance(&mut dn, user()), 3 * t);

    let CreateResponse::Ok { canister_id, .. } = create_through_ledger(&mut dn, user(), t, subnet)
    else {
        panic!("creation failed");
    };
    assert_eq!(ledger_balance(&mut dn, user()), 2 * t - CYCLES_LEDGER_FEE);
    assert_eq!(
        dn.cycle_balance(canister_id),
        Some(t - CANISTER_CREATION_FEE)
    );
    assert_eq!(dn.controllers(canister_id), Some(vec![user()]));
    assert_eq!(
        dn.canister_status(canister_id)
            .unwrap()
            .settings
            .freezing_threshold,
        Nat::from(99u8)
    );

    // Too much, a foreign subnet, too little for the creation fee.
    match create_through_ledger(&mut dn, user(), 5 * t, subnet) {
        CreateResponse::Err(CreateError::InsufficientFunds { balance }) => {
            assert_eq!(balance, Nat::from(2 * t - CYCLES_LEDGER_FEE))
        }
        other => panic!("{other:?}"),
    }
    let before = ledger_balance(&mut dn, user());
    match create_through_ledger(&mut dn, user(), t, Principal::from_slice(&[1; 29])) {
        CreateResponse::Err(CreateError::FailedToCreate {
            refund_block: Some(_),
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ledger_balance(&mut dn, user()),
        before - CYCLES_LEDGER_FEE,
        "the amount is refunded, the fee kept"
    );
    match create_through_ledger(&mut dn, user(), CANISTER_CREATION_FEE - 1, subnet) {
        CreateResponse::Err(CreateError::FailedToCreate { .. }) => {}
        other => panic!("{other:?}"),
    }

    // withdraw: to a canister, or refused.
    let before = ledger_balance(&mut dn, user());
    let withdraw = |to: Principal, amount: u128| WithdrawArgs {
        amount: Nat::from(amount),
        from_subaccount: None,
        to,
        created_at_time: None,
    };
    let reply = dn
        .update_call(
            CYCLES_LEDGER_ID,
            user(),
            "withdraw",
            Encode!(&withdraw(canister_id, 1_000_000)).unwrap(),
        )
        .unwrap();
    assert!(Decode!(&reply, Result<Nat, WithdrawError>).unwrap().is_ok());
    assert_eq!(
        dn.cycle_balance(canister_id),
        Some(t - CANISTER_CREATION_FEE + 1_000_000)
    );
    assert_eq!(
        ledger_balance(&mut dn, user()),
        before - 1_000_000 - CYCLES_LEDGER_FEE
    );
    let nowhere = Principal::from_slice(&[3; 10]);
    let reply = dn
        .update_call(
            CYCLES_LEDGER_ID,
            user(),
            "withdraw",
            Encode!(&withdraw(nowhere, 1)).unwrap(),
        )
        .unwrap();
    assert!(matches!(
        Decode!(&reply, Result<Nat, WithdrawError>).unwrap(),
        Err(WithdrawError::InvalidReceiver { receiver }) if receiver == nowhere
    ));
    let reply = dn
        .update_call(
            CYCLES_LEDGER_ID,
            admin(),
            "withdraw",
            Encode!(&withdraw(canister_id, 1)).unwrap(),
        )
        .unwrap();
    assert!(matches!(
        Decode!(&reply, Result<Nat, WithdrawError>).unwrap(),
        Err(WithdrawError::InsufficientFunds { .. })
    ));
}

/// Writes `bytes` as a WAT string literal.
fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A canister whose `deposit` update calls the cycles ledger's `deposit`
/// with `arg` and `cycles` attached and replies the ledger's answer.
fn depositor_wasm(arg: &[u8], cycles: u64) -> Vec<u8> {
    let ledger = wat_bytes(CYCLES_LEDGER_ID.as_slice());
    let len = arg.len();
    let arg = wat_bytes(arg);
    wat::parse_str(format!(
        r#"(module
          (import "ic0" "call_new" (func $call_new (param i32 i32 i32 i32 i32 i32 i32 i32)))
          (import "ic0" "call_data_append" (func $append (param i32 i32)))
          (import "ic0" "call_cycles_add128" (func $cycles (param i64 i64)))
          (import "ic0" "call_perform" (func $perform (result i32)))
          (import "ic0" "msg_arg_data_size" (func $size (result i32)))
          (import "ic0" "msg_arg_data_copy" (func $copy (param i32 i32 i32)))
          (import "ic0" "msg_reply_data_append" (func $reply_append (param i32 i32)))
          (import "ic0" "msg_reply" (func $reply))
          (import "ic0" "msg_reject" (func $reject (param i32 i32)))
          (memory (export "memory") 1)
          (table 2 funcref)
          (elem (i32.const 0) $on_reply $on_reject)
          (data (i32.const 0) "{ledger}")
          (data (i32.const 16) "deposit")
          (data (i32.const 32) "rejected")
          (data (i32.const 64) "{arg}")
          (func $on_reply (param i32)
            (call $copy (i32.const 4096) (i32.const 0) (call $size))
            (call $reply_append (i32.const 4096) (call $size))
            (call $reply))
          (func $on_reject (param i32)
            (call $reject (i32.const 32) (i32.const 8)))
          (func (export "canister_update deposit")
            (call $call_new (i32.const 0) (i32.const 10) (i32.const 16) (i32.const 7)
              (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0))
            (call $append (i32.const 64) (i32.const {len}))
            (call $cycles (i64.const 0) (i64.const {cycles}))
            (drop (call $perform))))"#
    ))
    .unwrap()
}

#[test]
fn a_canister_deposits_cycles_to_an_account() {
    #[derive(candid::CandidType)]
    struct DepositArgs {
        to: devnet::Account,
        memo: Option<Vec<u8>>,
    }
    #[derive(candid::CandidType, candid::Deserialize)]
    struct DepositResult {
        block_index: Nat,
        balance: Nat,
    }
    let arg = Encode!(&DepositArgs {
        to: cycles_account(user()),
        memo: None,
    })
    .unwrap();
    let mut dn = Devnet::new();
    let amount = 2_000_000_000u64;
    let c = dn.create_canister(vec![admin()]);
    dn.install_canister(c, &depositor_wasm(&arg, amount), vec![], admin())
        .unwrap();
    dn.reset_cycles_burned();
    let before = dn.cycle_balance(c).unwrap();
    let reply = dn.update_call(c, user(), "deposit", vec![]).unwrap();
    let result = Decode!(&reply, DepositResult).unwrap();
    assert_eq!(result.balance, Nat::from(amount));
    assert_eq!(ledger_balance(&mut dn, user()), u128::from(amount));
    assert_eq!(
        dn.cycle_balance(c),
        Some(before - u128::from(amount) - running_costs(&dn, c))
    );

    // Too few cycles: the ledger traps and every cycle comes back.
    let c = dn.create_canister(vec![admin()]);
    dn.install_canister(c, &depositor_wasm(&arg, 1000), vec![], admin())
        .unwrap();
    dn.reset_cycles_burned();
    let before = dn.cycle_balance(c).unwrap();
    let err = dn.update_call(c, user(), "deposit", vec![]).unwrap_err();
    assert_eq!(err.message, "rejected");
    assert_eq!(dn.cycle_balance(c), Some(before - running_costs(&dn, c)));
    assert_eq!(ledger_balance(&mut dn, user()), u128::from(amount));
}

#[test]
fn lifecycle_settings_logs_and_ledger_survive_save_and_load() {
    let mut dn = Devnet::new();
    let c = dn.create_canister(vec![admin()]);
    dn.install_canister(c, &printer_wasm(), vec![], admin())
        .unwrap();
    dn.update_call(c, user(), "print", b"kept".to_vec())
        .unwrap();
    dn.update_settings(
        admin(),
        c,
        CanisterSettings {
            compute_allocation: Some(Nat::from(3u8)),
            ..Default::default()
        },
    )
    .unwrap();
    manage(&mut dn, admin(), "stop_canister", c).unwrap();
    dn.mint_cycles(cycles_account(user()), 12345);
    let subnet = Principal::from_slice(&[0x42; 29]);
    dn.set_subnet_id(subnet);

    let bytes = dn.save_state().unwrap();
    let mut back = Devnet::load_state(DevnetConfig::default(), &bytes).unwrap();
    assert_eq!(back.run_status(c), Some(RunStatus::Stopped));
    assert_eq!(
        back.canister_status(c).unwrap().settings.compute_allocation,
        Nat::from(3u8)
    );
    assert_eq!(
        logs(&mut back, admin(), c).unwrap().canister_log_records[0].content,
        b"kept"
    );
    assert_eq!(ledger_balance(&mut back, user()), 12345);
    assert_eq!(back.subnet_id(), subnet);
    let next = back.create_canister(vec![]);
    assert_ne!(next, c);
}

#[test]
fn snapshots_bring_a_canister_back_and_survive_save_and_load() {
    let (mut dn, [a]) = with_probes(["a"]);
    inc(&mut dn, a);
    stable_write(&mut dn, a, 10, vec![1, 2, 3]);
    let snapshot = dn.take_canister_snapshot(admin(), a, None, false).unwrap();
    assert_eq!(&snapshot.id[8..], a.as_slice(), "the IC's id layout");
    let err = dn
        .take_canister_snapshot(user(), a, None, false)
        .unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterInvalidController));

    inc(&mut dn, a);
    stable_write(&mut dn, a, 10, vec![9, 9, 9]);
    let arg = Encode!(&ic_management_canister_types::LoadCanisterSnapshotArgs {
        canister_id: a,
        snapshot_id: snapshot.id.clone(),
        sender_canister_version: None,
    })
    .unwrap();
    dn.update_call(mgmt(), admin(), "load_canister_snapshot", arg)
        .unwrap();
    assert_eq!(get(&mut dn, a), 1, "the heap is the snapshot's");
    assert_eq!(stable_read(&mut dn, a, 10, 3), vec![1, 2, 3]);

    let bytes = dn.save_state().unwrap();
    let mut back = Devnet::load_state(DevnetConfig::default(), &bytes).unwrap();
    let reply = back
        .update_call(mgmt(), admin(), "list_canister_snapshots", id_arg(a))
        .unwrap();
    let list = Decode!(&reply, Vec<ic_management_canister_types::Snapshot>).unwrap();
    assert_eq!(list, vec![snapshot.clone()]);
    inc(&mut back, a);
    back.load_canister_snapshot(admin(), a, &snapshot.id)
        .unwrap();
    assert_eq!(get(&mut back, a), 1, "a loaded state's snapshot loads");

    back.delete_canister_snapshot(admin(), a, &snapshot.id)
        .unwrap();
    assert!(back.list_canister_snapshots(admin(), a).unwrap().is_empty());
    let err = back
        .load_canister_snapshot(admin(), a, &snapshot.id)
        .unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterSnapshotNotFound));
}

#[test]
fn provisional_top_up_adds_the_amount() {
    let mut dn = Devnet::new();
    let c = dn.create_canister(vec![admin()]);
    let before = dn.cycle_balance(c).unwrap();
    let arg = Encode!(
        &ic_management_canister_types::ProvisionalTopUpCanisterArgs {
            canister_id: c,
            amount: Nat::from(12_345u32),
        }
    )
    .unwrap();
    dn.update_call(mgmt(), user(), "provisional_top_up_canister", arg)
        .unwrap();
    assert_eq!(dn.cycle_balance(c), Some(before + 12_345));
}

#[test]
fn icrc1_transfer_moves_cycles_less_the_fee() {
    #[derive(candid::CandidType)]
    struct TransferArg {
        from_subaccount: Option<Vec<u8>>,
        to: devnet::Account,
        fee: Option<Nat>,
        created_at_time: Option<u64>,
        memo: Option<Vec<u8>>,
        amount: Nat,
    }
    use icrc_ledger_types::icrc1::transfer::TransferError;
    let mut dn = Devnet::new();
    dn.mint_cycles(cycles_account(user()), 1_000_000_000);
    let transfer = |dn: &mut Devnet, amount: u128, fee: Option<u128>, at: Option<u64>| {
        let arg = TransferArg {
            from_subaccount: None,
            to: cycles_account(admin()),
            fee: fee.map(Nat::from),
            created_at_time: at,
            memo: None,
            amount: Nat::from(amount),
        };
        let reply = dn
            .update_call(
                CYCLES_LEDGER_ID,
                user(),
                "icrc1_transfer",
                Encode!(&arg).unwrap(),
            )
            .unwrap();
        Decode!(&reply, Result<Nat, TransferError>).unwrap()
    };
    assert!(transfer(&mut dn, 500_000_000, Some(CYCLES_LEDGER_FEE), None).is_ok());
    assert_eq!(ledger_balance(&mut dn, admin()), 500_000_000);
    assert_eq!(ledger_balance(&mut dn, user()), 400_000_000);
    match transfer(&mut dn, 1, Some(1), None) {
        Err(TransferError::BadFee { expected_fee }) => {
            assert_eq!(expected_fee, Nat::from(CYCLES_LEDGER_FEE))
        }
        other => panic!("{other:?}"),
    }
    match transfer(&mut dn, 300_000_001, None, None) {
        Err(TransferError::InsufficientFunds { balance }) => {
            assert_eq!(balance, Nat::from(400_000_000u32))
        }
        other => panic!("{other:?}"),
    }
    let now = dn.time_nanos();
    assert!(matches!(
        transfer(&mut dn, 1, None, Some(now - 25 * 3600 * 1_000_000_000)),
        Err(TransferError::TooOld)
    ));
    assert!(matches!(
        transfer(&mut dn, 1, None, Some(now + 3600 * 1_000_000_000)),
        Err(TransferError::CreatedInFuture { .. })
    ));
    assert!(transfer(&mut dn, 300_000_000, None, Some(now)).is_ok());
    assert_eq!(ledger_balance(&mut dn, user()), 0);
    // The metadata icp-cli and wallets read.
    let reply = dn
        .query_call(CYCLES_LEDGER_ID, user(), "icrc1_fee", Encode!().unwrap())
        .unwrap();
    assert_eq!(Decode!(&reply, Nat).unwrap(), Nat::from(CYCLES_LEDGER_FEE));
    let reply = dn
        .query_call(
            CYCLES_LEDGER_ID,
            user(),
            "icrc1_decimals",
            Encode!().unwrap(),
        )
        .unwrap();
    assert_eq!(Decode!(&reply, u8).unwrap(), 12);
    let reply = dn
        .query_call(CYCLES_LEDGER_ID, user(), "icrc1_symbol", Encode!().unwrap())
        .unwrap();
    assert_eq!(Decode!(&reply, String).unwrap(), "TCYCLES");
}
