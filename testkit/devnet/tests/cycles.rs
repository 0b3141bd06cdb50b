//! Cycles charging: execution, messages and storage at the IC's prices,
//! the freezing threshold, top-ups and uninstalling an exhausted canister.

mod common;

use std::time::Duration;

use candid::{Nat, Principal};
use common::*;
use devnet::costs::{self, CyclesBurned};
use devnet::{CanisterSettings, Devnet, DevnetConfig, ErrorCode, RejectCode};
use ic_management_canister_types::ProvisionalTopUpCanisterArgs;

/// The instructions of the last execution of `entry` on `canister`.
fn instructions_of(dn: &mut Devnet, canister: Principal, entry: &str) -> u64 {
    dn.take_executions()
        .into_iter()
        .rev()
        .find(|e| e.canister == canister && e.entry == entry)
        .map(|e| e.instructions)
        .expect("the entry ran")
}

fn memory_bytes(dn: &Devnet, canister: Principal) -> u64 {
    let status = dn.canister_status(canister).expect("exists");
    u64::try_from(status.memory_size.0).expect("fits")
}

#[test]
fn an_update_pays_for_its_ingress_bytes_and_instructions() {
    let (mut dn, [probe]) = with_probes(["p"]);
    dn.reset_cycles_burned();
    let before = dn.cycle_balance(probe).unwrap();
    let arg = candid::encode_args((3_000u64,)).unwrap();
    let len = "burn".len() + arg.len();
    dn.update_call(probe, user(), "burn", arg).expect("burn");
    let instructions = instructions_of(&mut dn, probe, "canister_update burn");
    assert!(instructions > 3_000);
    let burned = dn.cycles_burned(probe).unwrap();
    assert_eq!(
        burned,
        CyclesBurned {
            execution: costs::execution_cost(instructions),
            messages: costs::ingress_cost(len),
            ..Default::default()
        }
    );
    assert_eq!(burned.execution, 5_000_000 + u128::from(instructions));
    assert_eq!(burned.messages, 1_200_000 + 2_000 * len as u128);
    assert_eq!(dn.cycle_balance(probe).unwrap(), before - burned.total());
}

#[test]
fn queries_are_free() {
    let (mut dn, [probe]) = with_probes(["p"]);
    let before = dn.cycle_balance(probe).unwrap();
    get(&mut dn, probe);
    assert_eq!(dn.cycle_balance(probe).unwrap(), before);
}

#[test]
fn a_call_costs_the_caller_its_fee_and_bytes() {
    let (mut dn, [caller, callee]) = with_probes(["a", "b"]);
    dn.reset_cycles_burned();
    let inner = no_args();
    let arg = candid::encode_args((callee, "inc".to_string(), inner.clone(), None::<u32>)).unwrap();
    let ingress = costs::ingress_cost("call".len() + arg.len());
    let _: CallOutcome =
        candid::decode_one(&dn.update_call(caller, user(), "call", arg).unwrap()).expect("outcome");
    let reply = candid::encode_one(1u64).unwrap();
    let burned = dn.cycles_burned(caller).unwrap();
    assert_eq!(
        burned.messages,
        ingress + costs::call_cost(3, inner.len() as u64) + costs::response_cost(reply.len())
    );
    // The callee pays for executing the call, the caller for its own two messages.
    let callee_burned = dn.cycles_burned(callee).unwrap();
    assert_eq!(callee_burned.messages, 0);
    assert!(callee_burned.execution > costs::UPDATE_MESSAGE_FEE);
    assert!(burned.execution > 2 * costs::UPDATE_MESSAGE_FEE);
}

#[test]
fn storage_is_charged_as_the_clock_advances() {
    let (mut dn, [probe]) = with_probes(["p"]);
    stable_write(&mut dn, probe, 0, vec![7; 1 << 20]);
    dn.reset_cycles_burned();
    let bytes = memory_bytes(&dn, probe);
    let before = dn.cycle_balance(probe).unwrap();
    dn.advance_time(Duration::from_secs(86_400));
    let per_day = costs::idle_cycles_per_day(bytes, 0);
    assert_eq!(per_day, u128::from(bytes) * 127_000 * 86_400 / (1 << 30));
    assert_eq!(dn.cycles_burned(probe).unwrap().storage, per_day);
    assert_eq!(dn.cycle_balance(probe).unwrap(), before - per_day);
    let status = dn.canister_status(probe).unwrap();
    assert_eq!(status.idle_cycles_burned_per_day, Nat::from(per_day));
    assert_eq!(status.cycles, Nat::from(before - per_day));

    // A compute allocation is charged per percent and second.
    dn.update_settings(
        admin(),
        probe,
        CanisterSettings {
            compute_allocation: Some(Nat::from(2u8)),
            ..Default::default()
        },
    )
    .unwrap();
    dn.reset_cycles_burned();
    dn.advance_time(Duration::from_secs(10));
    assert_eq!(
        dn.cycles_burned(probe).unwrap().storage,
        costs::idle_cost(bytes, 2, 10_000_000_000)
    );
    assert_eq!(costs::idle_cost(0, 2, 10_000_000_000), 2 * 10_000_000 * 10);

    // A memory allocation above the memory used is charged in full.
    dn.update_settings(
        admin(),
        probe,
        CanisterSettings {
            compute_allocation: Some(Nat::from(0u8)),
            memory_allocation: Some(Nat::from(1u64 << 30)),
            ..Default::default()
        },
    )
    .unwrap();
    dn.reset_cycles_burned();
    dn.advance_time(Duration::from_secs(1));
    assert_eq!(dn.cycles_burned(probe).unwrap().storage, 127_000);
}

/// A devnet whose canisters start with `cycles`, and a probe on it.
fn poor_probe(cycles: u128) -> (Devnet, Principal) {
    let mut dn = Devnet::with_config(DevnetConfig {
        initial_cycles: cycles,
        ..Default::default()
    });
    let probe = install_probe(&mut dn, "poor");
    (dn, probe)
}

fn set_freezing_threshold(dn: &mut Devnet, canister: Principal, secs: u64) {
    dn.update_settings(
        admin(),
        canister,
        CanisterSettings {
            freezing_threshold: Some(Nat::from(secs)),
            ..Default::default()
        },
    )
    .unwrap();
}

/// Sets a freezing threshold that leaves the canister 20 B cycles above it:
/// less than an update's prepayment (its fee and 40 B instructions).
fn freeze(dn: &mut Devnet, canister: Principal) {
    let per_day = costs::idle_cycles_per_day(memory_bytes(dn, canister), 0);
    let balance = dn.cycle_balance(canister).unwrap();
    let secs = (balance - 20_000_000_000) * 86_400 / per_day;
    set_freezing_threshold(dn, canister, u64::try_from(secs).unwrap());
}

#[test]
fn a_frozen_canister_refuses_calls_until_topped_up() {
    let (mut dn, probe) = poor_probe(60_000_000_000);
    assert_eq!(inc(&mut dn, probe), 1);
    freeze(&mut dn, probe);
    dn.reset_cycles_burned();
    let threshold = dn.freezing_threshold_cycles(probe).unwrap();
    let balance = dn.cycle_balance(probe).unwrap();
    assert!(balance > threshold, "not below the threshold yet");
    assert!(balance < threshold + costs::execution_cost(40_000_000_000));

    let reject = dn.update_call(probe, user(), "inc", no_args()).unwrap_err();
    assert_eq!(reject.error_code, Some(ErrorCode::CanisterOutOfCycles));
    assert_eq!(reject.code, RejectCode::SysTransient);
    // From a canister too.
    let caller = install_probe(&mut dn, "caller");
    let arg = candid::encode_args((probe, "inc".to_string(), no_args(), None::<u32>)).unwrap();
    let out: CallOutcome =
        candid::decode_one(&dn.update_call(caller, user(), "call", arg).unwrap()).unwrap();
    assert!(
        matches!(&out, CallOutcome::Reject(code, m) if *code == RejectCode::SysTransient as u32 && m.contains("out of cycles")),
        "{out:?}"
    );
    // The ingress message paid its induction, as on the IC; nothing ran.
    let induction = costs::ingress_cost("inc".len() + no_args().len());
    assert_eq!(dn.cycle_balance(probe).unwrap(), balance - induction);
    assert_eq!(dn.cycles_burned(probe).unwrap().execution, 0);
    // Below the threshold itself, ingress is refused before induction.
    set_freezing_threshold(&mut dn, probe, 1_000 * 365 * 86_400);
    let reject = dn.submit_call(probe, user(), "inc", no_args()).unwrap_err();
    assert_eq!(reject.error_code, Some(ErrorCode::CanisterOutOfCycles));
    assert_eq!(dn.cycle_balance(probe).unwrap(), balance - induction);
    freeze(&mut dn, probe);

    let top_up = ProvisionalTopUpCanisterArgs {
        canister_id: probe,
        amount: Nat::from(100_000_000_000u64),
    };
    dn.update_call(
        Principal::management_canister(),
        admin(),
        "provisional_top_up_canister",
        candid::encode_one(&top_up).unwrap(),
    )
    .expect("top up");
    assert_eq!(inc(&mut dn, probe), 2);
}

#[test]
fn a_frozen_canister_fires_no_timers() {
    let (mut dn, probe) = poor_probe(60_000_000_000);
    let () = dn.update(probe, user(), "set_timer", &5u64).unwrap();
    freeze(&mut dn, probe);
    dn.advance_time(Duration::from_secs(10));
    dn.tick();
    let fires: u64 = dn.query(probe, user(), "timer_fires", &()).unwrap();
    assert_eq!(fires, 0);
    dn.add_cycles(probe, 100_000_000_000);
    dn.tick();
    let fires: u64 = dn.query(probe, user(), "timer_fires", &()).unwrap();
    assert_eq!(fires, 1);
}

/// A canister whose `balances` query replies its balance, its liquid
/// balance and `ic0.cost_call(4, 6)`, each 16 little-endian bytes.
fn balances_wasm() -> Vec<u8> {
    wat::parse_str(
        r#"(module
          (import "ic0" "canister_cycle_balance128" (func $balance (param i32)))
          (import "ic0" "canister_liquid_cycle_balance128" (func $liquid (param i32)))
          (import "ic0" "cost_call" (func $cost_call (param i64 i64 i32)))
          (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
          (import "ic0" "msg_reply" (func $reply))
          (memory (export "memory") 1)
          (func (export "canister_query balances")
            (call $balance (i32.const 0))
            (call $liquid (i32.const 16))
            (call $cost_call (i64.const 4) (i64.const 6) (i32.const 32))
            (call $append (i32.const 0) (i32.const 48))
            (call $reply)))"#,
    )
    .unwrap()
}

#[test]
fn the_liquid_balance_is_what_lies_above_the_threshold() {
    let mut dn = Devnet::new();
    let id = dn.create_canister(vec![admin()]);
    dn.install_canister(id, &balances_wasm(), Vec::new(), admin())
        .unwrap();
    set_freezing_threshold(&mut dn, id, 1_000 * 365 * 86_400);
    let bytes = dn.query_call(id, user(), "balances", Vec::new()).unwrap();
    let word = |i: usize| u128::from_le_bytes(bytes[16 * i..16 * (i + 1)].try_into().unwrap());
    let threshold = dn.freezing_threshold_cycles(id).unwrap();
    assert!(threshold > 0);
    assert_eq!(word(0), dn.cycle_balance(id).unwrap());
    assert_eq!(word(1), word(0) - threshold);
    assert_eq!(word(2), costs::call_cost(4, 6));
    assert_eq!(word(2), 260_000 + 10 * 1_000);
}

#[test]
fn an_exhausted_canister_loses_its_code() {
    let (mut dn, probe) = poor_probe(60_000_000_000);
    assert_eq!(inc(&mut dn, probe), 1);
    let per_day = costs::idle_cycles_per_day(memory_bytes(&dn, probe), 0);
    let balance = dn.cycle_balance(probe).unwrap();
    let days = u64::try_from(balance / per_day).unwrap() + 1;
    dn.advance_time(Duration::from_secs(days * 86_400));
    assert_eq!(dn.cycle_balance(probe), Some(0));
    assert_eq!(dn.module_hash(probe), None);
    let reject = dn.query_call(probe, user(), "get", no_args()).unwrap_err();
    assert_eq!(
        reject.error_code,
        Some(ErrorCode::CanisterWasmModuleNotFound)
    );
    // The storage charge took what was left, nothing more.
    assert_eq!(dn.cycles_burned(probe).unwrap().storage, balance);
}
