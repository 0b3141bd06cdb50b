//! Install, update, query, rollback on trap, queries not persisting,
//! inspect_message, payload limits, unknown imports.

mod common;

use candid::{Encode, Principal};
use common::*;
use devnet::{Devnet, ErrorCode, InstallError, RejectCode};

#[test]
fn update_persists_and_query_reads() {
    let (mut dn, [c]) = with_probes(["a"]);
    assert_eq!(inc(&mut dn, c), 1);
    assert_eq!(inc(&mut dn, c), 2);
    assert_eq!(get(&mut dn, c), 2);
    let label: String = dn.query(c, user(), "label", &()).unwrap();
    assert_eq!(label, "a");
    let who: Principal = dn.query(c, user(), "whoami", &()).unwrap();
    assert_eq!(who, user());
    let is_ctl: bool = dn.query(c, user(), "is_controller", &admin()).unwrap();
    assert!(is_ctl);
    let is_ctl: bool = dn.query(c, user(), "is_controller", &user()).unwrap();
    assert!(!is_ctl);
}

#[test]
fn query_changes_do_not_persist() {
    let (mut dn, [c]) = with_probes([""]);
    inc(&mut dn, c);
    let seen: u64 = dn.query(c, user(), "inc_in_query", &()).unwrap();
    assert_eq!(seen, 2);
    assert_eq!(get(&mut dn, c), 1);
    // A query method called as an update does not keep state either.
    let seen: u64 = dn.update(c, user(), "inc_in_query", &()).unwrap();
    assert_eq!(seen, 2);
    assert_eq!(get(&mut dn, c), 1);
}

#[test]
fn trap_rolls_back_heap_and_stable_memory() {
    let (mut dn, [c]) = with_probes([""]);
    stable_write(&mut dn, c, 0, vec![1, 2, 3]);
    inc(&mut dn, c);
    // Writes past the current end grow the memory, which must be undone too.
    let err = dn
        .update_call(
            c,
            user(),
            "write_then_trap",
            Encode!(&0u64, &vec![9u8; 200_000]).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError);
    assert!(err.message.contains("trap after write"), "{}", err.message);
    assert_eq!(get(&mut dn, c), 1);
    assert_eq!(stable_read(&mut dn, c, 0, 4), vec![1, 2, 3, 0]);
    // The canister still works after the rollback.
    assert_eq!(inc(&mut dn, c), 2);
}

#[test]
fn explicit_reject_and_missing_method() {
    let (mut dn, [c]) = with_probes([""]);
    let err = dn
        .update_call(c, user(), "reject_with", Encode!(&"nope").unwrap())
        .unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterReject);
    assert_eq!(err.error_code, Some(ErrorCode::CanisterRejectedMessage));
    assert_eq!(err.message, "nope");
    // As on the IC: a missing method is the canister's error (IC0536), a
    // missing canister an invalid destination (IC0301).
    let err = dn.update_call(c, user(), "no_such", no_args()).unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError);
    assert_eq!(err.error_code, Some(ErrorCode::CanisterMethodNotFound));
    let err = dn
        .update_call(Principal::from_slice(&[9; 10]), user(), "inc", no_args())
        .unwrap_err();
    assert_eq!(err.code, RejectCode::DestinationInvalid);
    assert_eq!(err.error_code, Some(ErrorCode::CanisterNotFound));
}

#[test]
fn inspect_message_refuses_ingress() {
    let (mut dn, [c]) = with_probes([""]);
    let err = dn
        .update_call(c, user(), "refused_by_inspect", no_args())
        .unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterReject);
    assert_eq!(get(&mut dn, c), 0);
    // The same method called by another canister is not filtered.
    let caller = install_probe(&mut dn, "");
    let (out,): (CallOutcome,) = dn
        .update_args(
            caller,
            user(),
            "call",
            (c, "refused_by_inspect", no_args(), None::<u32>),
        )
        .unwrap();
    assert!(matches!(out, CallOutcome::Reply(_)), "{out:?}");
    assert_eq!(get(&mut dn, c), 1);
}

#[test]
fn payloads_over_2_mib_are_refused() {
    let (mut dn, [c]) = with_probes([""]);
    let big = Encode!(&vec![0u8; 2 * 1024 * 1024]).unwrap();
    assert!(dn.update_call(c, user(), "echo", big).is_err());
    let ok = Encode!(&vec![7u8; 1024 * 1024]).unwrap();
    let reply = dn.update_call(c, user(), "echo", ok).unwrap();
    assert_eq!(
        candid::decode_one::<Vec<u8>>(&reply).unwrap().len(),
        1024 * 1024
    );
}

#[test]
fn unknown_import_fails_install_naming_it() {
    // (module (import "ic0" "msg_caller_info_data_size" (func (result i32)))
    //         (memory (export "memory") 1))
    fn section(id: u8, body: &[u8]) -> Vec<u8> {
        let mut s = vec![id, body.len() as u8];
        s.extend_from_slice(body);
        s
    }
    let name = b"msg_caller_info_data_size";
    let mut import = vec![0x01, 0x03, b'i', b'c', b'0', name.len() as u8];
    import.extend_from_slice(name);
    import.extend_from_slice(&[0x00, 0x00]);
    let mut wasm = vec![0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    wasm.extend(section(1, &[0x01, 0x60, 0x00, 0x01, 0x7f]));
    wasm.extend(section(2, &import));
    wasm.extend(section(5, &[0x01, 0x00, 0x01]));
    wasm.extend(section(
        7,
        &[0x01, 0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00],
    ));
    let mut dn = Devnet::new();
    let c = dn.create_canister(vec![admin()]);
    let err = dn.install_canister(c, &wasm, vec![], admin()).unwrap_err();
    assert_eq!(
        err,
        InstallError::UnsupportedImport("ic0.msg_caller_info_data_size".into())
    );
    assert!(err.to_string().contains("msg_caller_info_data_size"));
}

#[test]
fn only_controllers_install() {
    let mut dn = Devnet::new();
    let c = dn.create_canister(vec![admin()]);
    let err = dn
        .install_canister(c, &probe_wasm(), vec![], user())
        .unwrap_err();
    assert_eq!(err, InstallError::NotController(user()));
}
