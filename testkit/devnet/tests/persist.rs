//! Saving a devnet's state and loading it into a new devnet: canisters,
//! their memories and timers, messages in flight and the clock survive.

mod common;

use std::time::Duration;

use candid::Encode;
use common::*;
use devnet::{Devnet, DevnetConfig, IngressStatus};

fn reload(dn: &mut Devnet) -> Devnet {
    let bytes = dn.save_state().expect("save");
    Devnet::load_state(DevnetConfig::default(), &bytes).expect("load")
}

#[test]
fn canisters_heap_stable_memory_and_timers_survive_a_reload() {
    let (mut dn, [a, b]) = with_probes(["first", "second"]);
    for _ in 0..3 {
        inc(&mut dn, a);
    }
    stable_write(&mut dn, a, 70_000, vec![7; 9]);
    let _: () = dn.update(a, user(), "set_timer", &10u64).unwrap();
    dn.advance_time(Duration::from_secs(3));
    let rand_before: Vec<u8> = dn.update(b, user(), "raw_rand", &()).unwrap();
    let time = dn.time_nanos();
    let hash = dn.module_hash(a);
    let version = dn.canister_version(a);

    let mut copy = reload(&mut dn);
    assert_eq!(copy.time_nanos(), time);
    assert_eq!(copy.module_hash(a), hash);
    assert_eq!(copy.canister_version(a), version);
    assert_eq!(copy.controllers(a), Some(vec![admin()]));
    assert_eq!(get(&mut copy, a), 3);
    assert_eq!(get(&mut copy, b), 0);
    let label: String = copy.query(b, user(), "label", &()).unwrap();
    assert_eq!(label, "second");
    let stable = stable_read(&mut copy, a, 70_000, 9);
    assert_eq!(stable, vec![7u8; 9]);
    assert_eq!(copy.stable_memory_size(a), dn.stable_memory_size(a));

    // The timer set before the save fires at its time, once.
    copy.advance_time(Duration::from_secs(5));
    copy.tick();
    let fires: u64 = copy.query(a, user(), "timer_fires", &()).unwrap();
    assert_eq!(fires, 0);
    copy.advance_time(Duration::from_secs(5));
    copy.tick();
    let fires: u64 = copy.query(a, user(), "timer_fires", &()).unwrap();
    assert_eq!(fires, 1);

    // Both copies go on alike: the same counter, the same random bytes,
    // the same id for the next canister.
    assert_eq!(inc(&mut copy, a), 4);
    assert_eq!(inc(&mut dn, a), 4);
    let r1: Vec<u8> = dn.update(b, user(), "raw_rand", &()).unwrap();
    let r2: Vec<u8> = copy.update(b, user(), "raw_rand", &()).unwrap();
    assert_eq!(r1, r2);
    assert_ne!(r1, rand_before);
    assert_eq!(dn.create_canister(vec![]), copy.create_canister(vec![]));

    // Upgrading a loaded canister keeps its stable memory and drops its heap.
    copy.upgrade_canister(
        a,
        &probe_wasm(),
        Encode!(&Some(ProbeArg {
            label: "upgraded".into()
        }))
        .unwrap(),
        admin(),
    )
    .unwrap();
    let stable = stable_read(&mut copy, a, 70_000, 9);
    assert_eq!(stable, vec![7u8; 9]);
    assert_eq!(get(&mut copy, a), 0);
}

#[test]
fn messages_in_flight_are_delivered_after_a_reload() {
    let (mut dn, [a, b, c]) = with_probes(["", "", ""]);
    let msg = dn
        .submit_call(a, user(), "call_chain", Encode!(&vec![b, c]).unwrap())
        .unwrap();
    // Deliver the ingress message only: a's call to b is queued, a's call
    // context and callback are open.
    assert!(dn.step());
    assert_eq!(dn.queued_messages(), 1);
    assert_eq!(dn.ingress_status(msg), IngressStatus::Pending);

    let mut copy = reload(&mut dn);
    assert_eq!(copy.queued_messages(), 1);
    let reply = copy.await_call(msg).unwrap();
    let outcomes = candid::decode_one::<Vec<CallOutcome>>(&reply).unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(get(&mut copy, b), 1);
    assert_eq!(get(&mut copy, c), 1);
    assert_eq!(
        events(&mut copy, a),
        events(
            &mut {
                dn.tick();
                dn
            },
            a
        )
    );
}

#[test]
fn an_empty_canister_and_an_empty_devnet_reload() {
    let mut dn = Devnet::new();
    let empty = dn.create_canister(vec![admin()]);
    let mut copy = reload(&mut dn);
    assert!(copy.canister_exists(empty));
    assert_eq!(copy.module_hash(empty), None);
    copy.install_canister(
        empty,
        &probe_wasm(),
        Encode!(&None::<ProbeArg>).unwrap(),
        admin(),
    )
    .unwrap();
    assert_eq!(inc(&mut copy, empty), 1);
    let mut fresh = reload(&mut Devnet::new());
    assert!(!fresh.canister_exists(empty));
    assert_eq!(fresh.create_canister(vec![]), empty);
}

#[test]
fn damaged_states_are_refused_with_a_reason() {
    let mut dn = Devnet::new();
    install_probe(&mut dn, "x");
    let bytes = dn.save_state().unwrap();
    for bad in [&b"not a devnet state"[..], &bytes[..bytes.len() / 2], &[]] {
        let Err(e) = Devnet::load_state(DevnetConfig::default(), bad) else {
            panic!("a damaged state loaded");
        };
        assert!(e.to_string().contains("decoding the devnet state"), "{e}");
    }
}

/// Removes the map entries named `keys` at any depth of a CBOR value.
fn strip(value: &mut ciborium::Value, keys: &[&str]) {
    match value {
        ciborium::Value::Map(entries) => {
            entries.retain(|(k, _)| !k.as_text().is_some_and(|k| keys.contains(&k)));
            for (_, v) in entries {
                strip(v, keys);
            }
        }
        ciborium::Value::Array(items) => items.iter_mut().for_each(|v| strip(v, keys)),
        _ => {}
    }
}

#[test]
fn a_state_saved_before_lifecycles_and_cycles_loads_with_the_defaults() {
    let (mut dn, [a, b]) = with_probes(["a", "b"]);
    inc(&mut dn, a);
    // A call in flight, so that a call context is saved too.
    let arg = Encode!(&b, &"inc".to_string(), &no_args(), &None::<u32>).unwrap();
    let call = dn.submit_call(a, user(), "call", arg).unwrap();
    assert!(dn.step());
    let bytes = dn.save_state().unwrap();

    // The fields the older format lacks.
    let mut value: ciborium::Value = ciborium::from_reader(bytes.as_slice()).unwrap();
    strip(
        &mut value,
        &[
            "cycles_ledger",
            "cycles_ledger_next_block",
            "subnet_id",
            "status",
            "stop_waiters",
            "settings",
            "log",
            "snapshots",
            "error_code",
        ],
    );
    // Call contexts did not name their canister (callbacks always did).
    if let ciborium::Value::Map(top) = &mut value {
        for (k, v) in top.iter_mut() {
            if k.as_text() == Some("call_contexts") {
                strip(v, &["canister"]);
            }
        }
    }
    let mut old = Vec::new();
    ciborium::into_writer(&value, &mut old).unwrap();
    assert!(old.len() < bytes.len());

    let mut back = Devnet::load_state(DevnetConfig::default(), &old).unwrap();
    assert!(
        back.canister_exists(a) && back.canister_exists(b),
        "the ids are kept"
    );
    assert_eq!(get(&mut back, a), 1);
    assert_eq!(back.run_status(a), Some(devnet::RunStatus::Running));
    let status = back.canister_status(a).unwrap();
    assert_eq!(status.settings.controllers, vec![admin()]);
    assert_eq!(status.settings.log_memory_limit, candid::Nat::from(4096u32));
    assert!(
        back.await_call(call).is_ok(),
        "the call in flight completes"
    );
    assert_eq!(get(&mut back, b), 1);
    let next = back.create_canister(vec![]);
    assert!(next != a && next != b);
}
