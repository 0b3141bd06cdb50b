//! Through ic-agent, a canister that runs short of cycles: frozen, its
//! calls refused with IC0207, then working again after a top-up.

mod common;

use candid::{Encode, Nat, Principal};
use common::*;
use devnet::costs;
use ic_agent::AgentError;
use ic_agent::agent::RejectCode;
use ic_management_canister_types::{
    CanisterSettings, ProvisionalTopUpCanisterArgs, UpdateSettingsArgs,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_canister_refuses_calls_until_topped_up() {
    let (server, agent, id) = server_with_probe(21, "p").await;
    let n: u64 = update_as(&agent, id, "inc").await;
    assert_eq!(n, 1);

    // A freezing threshold that leaves less than an update's prepayment.
    let secs = server.node().with_devnet(|dn| {
        let status = dn.canister_status(id).unwrap();
        let bytes = u64::try_from(status.memory_size.0).unwrap();
        let per_day = costs::idle_cycles_per_day(bytes, 0);
        let spare = costs::execution_cost(dn.config().update_instruction_limit) / 2;
        (dn.cycle_balance(id).unwrap() - spare) * 86_400 / per_day
    });
    let arg = UpdateSettingsArgs {
        canister_id: id,
        settings: CanisterSettings {
            freezing_threshold: Some(Nat::from(secs)),
            ..Default::default()
        },
        sender_canister_version: None,
    };
    agent
        .update(&Principal::management_canister(), "update_settings")
        .with_effective_canister_id(id)
        .with_arg(Encode!(&arg).unwrap())
        .await
        .expect("update_settings");

    let err = update(&agent, id, "inc", no_args()).await.unwrap_err();
    let reject = match err {
        AgentError::CertifiedReject { reject, .. }
        | AgentError::UncertifiedReject { reject, .. } => reject,
        other => panic!("expected a reject, got {other:?}"),
    };
    assert_eq!(reject.error_code.as_deref(), Some("IC0207"));
    assert_eq!(reject.reject_code, RejectCode::SysTransient);
    assert!(reject.reject_message.contains("out of cycles"));

    let top_up = ProvisionalTopUpCanisterArgs {
        canister_id: id,
        amount: Nat::from(100_000_000_000u64),
    };
    agent
        .update(
            &Principal::management_canister(),
            "provisional_top_up_canister",
        )
        .with_effective_canister_id(id)
        .with_arg(Encode!(&top_up).unwrap())
        .await
        .expect("top up");
    let n: u64 = update_as(&agent, id, "inc").await;
    assert_eq!(n, 2);
    server.shutdown().await.unwrap();
}
