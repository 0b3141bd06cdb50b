//! Inter-canister calls: callback order, calls discarded by a trap, cleanup
//! after a trapping callback, injected faults and bounded-wait deadlines.

mod common;

use std::time::Duration;

use candid::{Encode, Principal};
use common::*;
use devnet::{Devnet, Fault, FaultKind, Reject, RejectCode};

fn call(
    dn: &mut Devnet,
    from: Principal,
    to: Principal,
    method: &str,
    timeout: Option<u32>,
) -> CallOutcome {
    let (out,): (CallOutcome,) = dn
        .update_args(
            from,
            user(),
            "call",
            (to, method.to_string(), no_args(), timeout),
        )
        .expect("call");
    out
}

/// Calls `method` of `a` with `b` as its argument, a call that traps.
fn trapping_call(dn: &mut Devnet, a: Principal, method: &str, b: Principal) -> Reject {
    let err = dn
        .update_call(a, user(), method, Encode!(&b).unwrap())
        .unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterError);
    err
}

#[test]
fn reply_runs_callback_in_order() {
    let (mut dn, [a, b, c]) = with_probes(["a", "b", "c"]);
    let bytes = dn
        .update_call(a, user(), "call_chain", Encode!(&vec![b, c, b]).unwrap())
        .unwrap();
    let out: Vec<CallOutcome> = candid::decode_one(&bytes).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(
        events(&mut dn, a),
        [
            "send 0", "reply 0", "send 1", "reply 1", "send 2", "reply 2"
        ]
    );
    assert_eq!(get(&mut dn, b), 2);
    assert_eq!(get(&mut dn, c), 1);
    // Concurrent calls: replies come back in the order the calls were made.
    let bytes = dn
        .update_call(a, user(), "call_parallel", Encode!(&vec![b, c]).unwrap())
        .unwrap();
    assert_eq!(candid::decode_one::<u64>(&bytes).unwrap(), 2);
    assert_eq!(&events(&mut dn, a)[6..], ["reply 0", "reply 1"]);
}

#[test]
fn calls_made_before_a_trap_are_not_sent() {
    let (mut dn, [a, b]) = with_probes(["a", "b"]);
    trapping_call(&mut dn, a, "call_then_trap", b);
    dn.tick();
    assert_eq!(get(&mut dn, b), 0);
    assert_eq!(get(&mut dn, a), 0);
}

#[test]
fn trapping_callback_rolls_back_and_runs_cleanup() {
    let (mut dn, [a, b]) = with_probes(["a", "b"]);
    let err = trapping_call(&mut dn, a, "trap_in_callback", b);
    assert!(err.message.contains("trap in callback"), "{}", err.message);
    // The callee's change stays; the callback's change is rolled back;
    // the cleanup callback ran and its change stays.
    assert_eq!(get(&mut dn, b), 1);
    assert_eq!(get(&mut dn, a), 0);
    let cleanups: u64 = dn.query(a, user(), "cleanups", &()).unwrap();
    assert_eq!(cleanups, 1);
    assert_eq!(events(&mut dn, a), ["before call", "cleanup"]);
}

#[test]
fn reject_codes_of_ordinary_failures() {
    let (mut dn, [a, b]) = with_probes(["a", "b"]);
    let missing = Principal::from_slice(&[7; 10]);
    assert!(matches!(
        call(&mut dn, a, missing, "inc", None),
        CallOutcome::Reject(3, _)
    ));
    assert!(matches!(
        call(&mut dn, a, b, "nope", None),
        CallOutcome::Reject(5, _)
    ));
    assert!(matches!(
        call(&mut dn, a, b, "trap_now", None),
        CallOutcome::Reject(5, _)
    ));
    assert!(matches!(
        call(&mut dn, a, b, "inc", None),
        CallOutcome::Reply(_)
    ));
}

#[test]
fn injected_faults_arrive_as_the_right_reject() {
    let (mut dn, [a, b]) = with_probes(["a", "b"]);

    dn.inject_fault(Fault::new(
        b,
        FaultKind::Reject {
            code: RejectCode::SysTransient,
            message: "overloaded".into(),
        },
        2,
    ));
    for _ in 0..2 {
        assert_eq!(
            call(&mut dn, a, b, "inc", None),
            CallOutcome::Reject(2, "overloaded".into())
        );
    }
    assert!(matches!(
        call(&mut dn, a, b, "inc", None),
        CallOutcome::Reply(_)
    ));
    assert_eq!(get(&mut dn, b), 1);

    dn.inject_fault(Fault::new(b, FaultKind::Trap, 1).method("inc").caller(a));
    assert!(matches!(
        call(&mut dn, a, b, "inc", None),
        CallOutcome::Reject(5, _)
    ));
    assert_eq!(get(&mut dn, b), 1);

    dn.inject_fault(Fault::new(
        b,
        FaultKind::Reject {
            code: RejectCode::DestinationInvalid,
            message: "gone".into(),
        },
        1,
    ));
    assert!(matches!(
        call(&mut dn, a, b, "inc", None),
        CallOutcome::Reject(3, _)
    ));

    // Timeout: the caller learns nothing (SYS_UNKNOWN), the callee did run.
    dn.inject_fault(Fault::new(b, FaultKind::Timeout, 1));
    assert!(matches!(
        call(&mut dn, a, b, "inc", Some(10)),
        CallOutcome::Reject(6, _)
    ));
    dn.tick();
    assert_eq!(get(&mut dn, b), 2);
    assert!(matches!(
        call(&mut dn, a, b, "inc", Some(10)),
        CallOutcome::Reply(_)
    ));
}

#[test]
fn bounded_wait_call_times_out_when_deadline_passes() {
    let (mut dn, [a, b]) = with_probes(["a", "b"]);
    let id = dn
        .submit_call(
            a,
            user(),
            "call",
            Encode!(&b, &"inc", &no_args(), &Some(5u32)).unwrap(),
        )
        .unwrap();
    // a runs and sends its call; before b answers, the deadline passes.
    assert!(dn.step());
    dn.advance_time(Duration::from_secs(6));
    let reply = dn.await_call(id).unwrap();
    let out = candid::decode_one::<CallOutcome>(&reply).unwrap();
    assert!(matches!(out, CallOutcome::Reject(6, _)), "{out:?}");
    // b still executed the request: the outcome was unknown, not a failure.
    assert_eq!(get(&mut dn, b), 1);
    // Within the deadline the same call succeeds.
    assert!(matches!(
        call(&mut dn, a, b, "inc", Some(5)),
        CallOutcome::Reply(_)
    ));
}
