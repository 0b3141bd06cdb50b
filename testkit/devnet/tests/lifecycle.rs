//! Timers, upgrades, stable memory across upgrades, instruction limits,
//! the management canister.

mod common;

use std::time::Duration;

use candid::{Encode, Principal};
use common::*;
use devnet::{Devnet, DevnetConfig, InstallMode, RejectCode};

fn timer_fires(dn: &mut Devnet, c: Principal) -> u64 {
    dn.query(c, user(), "timer_fires", &()).unwrap()
}

#[test]
fn timers_fire_once_their_time_has_passed() {
    let (mut dn, [c]) = with_probes([""]);
    let _: () = dn.update(c, user(), "set_timer", &10u64).unwrap();
    dn.advance_time(Duration::from_secs(5));
    dn.tick();
    assert_eq!(timer_fires(&mut dn, c), 0);
    dn.advance_time(Duration::from_secs(5));
    dn.tick();
    assert_eq!(timer_fires(&mut dn, c), 1);
    dn.advance_time(Duration::from_secs(100));
    dn.tick();
    assert_eq!(timer_fires(&mut dn, c), 1);
}

#[test]
fn timer_task_can_call_other_canisters() {
    let (mut dn, [a, b]) = with_probes(["", ""]);
    dn.update_call(a, user(), "set_timer_calling", Encode!(&1u64, &b).unwrap())
        .unwrap();
    dn.advance_time(Duration::from_secs(1));
    dn.tick();
    assert_eq!(get(&mut dn, b), 1);
    assert_eq!(events(&mut dn, a), ["timer call done: true"]);
}

#[test]
fn upgrade_keeps_stable_memory_drops_heap_and_timers() {
    let (mut dn, [c]) = with_probes(["v1"]);
    inc(&mut dn, c);
    stable_write(&mut dn, c, 70_000, vec![5, 6]);
    let _: () = dn.update(c, user(), "set_timer", &10u64).unwrap();
    let version: u64 = dn.query(c, user(), "canister_version", &()).unwrap();

    let arg = Encode!(&Some(ProbeArg { label: "v2".into() })).unwrap();
    dn.upgrade_canister(c, &probe_wasm(), arg, admin()).unwrap();

    assert_eq!(get(&mut dn, c), 0, "heap is dropped");
    let label: String = dn.query(c, user(), "label", &()).unwrap();
    assert_eq!(label, "v2", "post_upgrade got the argument");
    let upgrades: u64 = dn.query(c, user(), "upgrades", &()).unwrap();
    assert_eq!(upgrades, 1);
    assert_eq!(stable_read(&mut dn, c, 70_000, 2), vec![5, 6]);
    let v2: u64 = dn.query(c, user(), "canister_version", &()).unwrap();
    assert!(v2 > version);

    dn.advance_time(Duration::from_secs(60));
    dn.tick();
    assert_eq!(
        timer_fires(&mut dn, c),
        0,
        "timers are gone after an upgrade"
    );
    assert!(
        dn.canister_logs(c).is_empty()
            || !dn.canister_logs(c).iter().any(|l| l.contains("panicked"))
    );
}

#[test]
fn reinstall_drops_stable_memory() {
    let (mut dn, [c]) = with_probes([""]);
    stable_write(&mut dn, c, 0, vec![1]);
    dn.reinstall_canister(
        c,
        &probe_wasm(),
        Encode!(&None::<ProbeArg>).unwrap(),
        admin(),
    )
    .unwrap();
    assert_eq!(stable_read(&mut dn, c, 0, 1), vec![0]);
    assert!(
        dn.install_code(admin(), c, InstallMode::Install, &probe_wasm(), vec![])
            .is_err()
    );
}

#[test]
fn instruction_limit_traps_and_counter_is_reported() {
    let mut dn = Devnet::with_config(DevnetConfig {
        update_instruction_limit: 50_000_000,
        query_instruction_limit: 20_000_000,
        ..DevnetConfig::default()
    });
    let c = install_probe(&mut dn, "");
    let counted: u64 = dn.update(c, user(), "burn", &1_000u64).unwrap();
    let reported = dn.last_instructions().unwrap();
    assert!(
        counted > 1_000 && counted <= reported,
        "{counted} {reported}"
    );
    let more: u64 = dn.update(c, user(), "burn", &100_000u64).unwrap();
    assert!(more > counted * 10, "{more} vs {counted}");

    let err = dn
        .update_call(c, user(), "burn", Encode!(&100_000_000u64).unwrap())
        .unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError);
    assert!(err.message.contains("instruction limit"), "{}", err.message);
    assert_eq!(dn.last_instructions(), Some(50_000_000));
    let err = dn
        .query_call(c, user(), "burn_query", Encode!(&10_000_000u64).unwrap())
        .unwrap_err();
    assert!(err.message.contains("instruction limit"), "{}", err.message);
    // The canister still answers after running out.
    assert_eq!(inc(&mut dn, c), 1);
}

#[test]
fn management_canister_from_a_canister_and_raw_rand() {
    let mut dn = Devnet::with_config(DevnetConfig {
        seed: 42,
        ..DevnetConfig::default()
    });
    let c = install_probe(&mut dn, "");
    let r1: Vec<u8> = dn.update(c, user(), "raw_rand", &()).unwrap();
    let r2: Vec<u8> = dn.update(c, user(), "raw_rand", &()).unwrap();
    assert_eq!(r1.len(), 32);
    assert_ne!(r1, r2);
    let mut again = Devnet::with_config(DevnetConfig {
        seed: 42,
        ..DevnetConfig::default()
    });
    let c2 = install_probe(&mut again, "");
    let s1: Vec<u8> = again.update(c2, user(), "raw_rand", &()).unwrap();
    assert_eq!(r1, s1, "same seed, same randomness");

    // create_canister + install_code + canister_status through ingress.
    #[derive(candid::CandidType, candid::Deserialize)]
    struct Id {
        canister_id: Principal,
    }
    let mgmt = Principal::management_canister();
    #[derive(candid::CandidType)]
    struct CreateArgs {
        settings: Option<devnet::CanisterSettings>,
    }
    let bytes = dn
        .update_call(
            mgmt,
            admin(),
            "create_canister",
            Encode!(&CreateArgs { settings: None }).unwrap(),
        )
        .unwrap();
    let id: Id = candid::decode_one(&bytes).unwrap();
    assert_eq!(dn.controllers(id.canister_id), Some(vec![admin()]));
    let status = dn.canister_status(id.canister_id).unwrap();
    assert_eq!(status.module_hash, None);
    dn.install_canister(id.canister_id, &probe_wasm(), vec![], admin())
        .unwrap();
    assert_eq!(inc(&mut dn, id.canister_id), 1);
    assert!(
        dn.canister_status(id.canister_id)
            .unwrap()
            .module_hash
            .is_some()
    );
}
