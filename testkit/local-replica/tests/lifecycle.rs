//! Through ic-agent, what deployment tools do to a canister's life on the
//! devnet: create it through the cycles ledger (the subnet from the cycles
//! minting canister), top it up, stop, start and delete it, change its
//! settings, read its logs; the IC's error codes on the way.

mod common;

use candid::{CandidType, Decode, Deserialize, Encode, Nat, Principal};
use common::*;
use devnet::{
    CANISTER_CREATION_FEE, CMC_ID, CYCLES_LEDGER_FEE, CYCLES_LEDGER_ID, FIRST_CANISTER_ID,
    cycles_account,
};
use ic_agent::agent::RejectCode;
use ic_agent::{Agent, AgentError};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterSettings, CanisterStatusResult, CanisterStatusType,
    FetchCanisterLogsArgs, FetchCanisterLogsResult, LogVisibility, UpdateSettingsArgs,
};

#[derive(CandidType)]
struct CreateArgs {
    from_subaccount: Option<Vec<u8>>,
    created_at_time: Option<u64>,
    amount: Nat,
    creation_args: Option<CreationArgs>,
}

#[derive(CandidType)]
struct CreationArgs {
    subnet_selection: Option<SubnetSelection>,
    settings: Option<CanisterSettings>,
}

#[derive(CandidType)]
enum SubnetSelection {
    Subnet { subnet: Principal },
}

#[derive(CandidType, Deserialize, Debug)]
enum CreateResponse {
    Ok {
        block_id: Nat,
        canister_id: Principal,
    },
    Err(candid::Reserved),
}

#[derive(CandidType)]
struct WithdrawArgs {
    amount: Nat,
    from_subaccount: Option<Vec<u8>>,
    to: Principal,
    created_at_time: Option<u64>,
}

fn mgmt() -> Principal {
    Principal::management_canister()
}

fn id_arg(canister: Principal) -> Vec<u8> {
    Encode!(&CanisterIdRecord {
        canister_id: canister
    })
    .unwrap()
}

async fn status(agent: &Agent, canister: Principal) -> Result<CanisterStatusResult, AgentError> {
    let reply = manage(agent, "canister_status", canister, id_arg(canister)).await?;
    Ok(Decode!(&reply, CanisterStatusResult).unwrap())
}

/// Calls the management canister's `method` about `canister`, addressed
/// to it as the effective canister id.
async fn manage(
    agent: &Agent,
    method: &str,
    canister: Principal,
    arg: Vec<u8>,
) -> Result<Vec<u8>, AgentError> {
    agent
        .update(&mgmt(), method)
        .with_effective_canister_id(canister)
        .with_arg(arg)
        .await
}

fn cycles(n: &Nat) -> u128 {
    u128::try_from(n.0.clone()).unwrap()
}

/// The reject of a failed call, whether certified or not.
fn reject_of(err: AgentError) -> ic_agent::agent::RejectResponse {
    match err {
        AgentError::CertifiedReject { reject, .. }
        | AgentError::UncertifiedReject { reject, .. } => reject,
        other => panic!("expected a reject, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_top_up_stop_start_settings_logs_delete() {
    let server = start_server(1.0, std::time::Duration::from_secs(5)).await;
    let agent = agent(&server, ed25519_identity(7)).await;
    let me = agent.get_principal().unwrap();
    let t = 1_000_000_000_000u128;
    server
        .node()
        .with_devnet(|dn| dn.mint_cycles(cycles_account(me), 10 * t));

    // The CMC names the subnet read_state serves.
    let reply = query(&agent, CMC_ID, "get_default_subnets", no_args())
        .await
        .unwrap();
    let subnets = Decode!(&reply, Vec<Principal>).unwrap();
    assert_eq!(subnets, vec![server.node().keys().subnet_id()]);

    // Creation through the cycles ledger, as icp-cli does it.
    let arg = CreateArgs {
        from_subaccount: None,
        created_at_time: None,
        amount: Nat::from(2 * t),
        creation_args: Some(CreationArgs {
            subnet_selection: Some(SubnetSelection::Subnet { subnet: subnets[0] }),
            settings: Some(CanisterSettings {
                controllers: Some(vec![me]),
                ..Default::default()
            }),
        }),
    };
    let reply = update(
        &agent,
        CYCLES_LEDGER_ID,
        "create_canister",
        Encode!(&arg).unwrap(),
    )
    .await
    .unwrap();
    let CreateResponse::Ok {
        canister_id: id, ..
    } = Decode!(&reply, CreateResponse).unwrap()
    else {
        panic!("creation failed");
    };
    assert_eq!(
        id, FIRST_CANISTER_ID,
        "the first canister of a local application subnet"
    );
    let reply = query(
        &agent,
        CYCLES_LEDGER_ID,
        "icrc1_balance_of",
        Encode!(&cycles_account(me)).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        cycles(&Decode!(&reply, Nat).unwrap()),
        8 * t - CYCLES_LEDGER_FEE
    );
    assert_eq!(
        cycles(&status(&agent, id).await.unwrap().cycles),
        2 * t - CANISTER_CREATION_FEE
    );
    install_code(
        &agent,
        id,
        &probe_wasm(),
        Encode!(&None::<ProbeArg>).unwrap(),
    )
    .await;

    // Top-up: the ledger's withdraw.
    let arg = WithdrawArgs {
        amount: Nat::from(t),
        from_subaccount: None,
        to: id,
        created_at_time: None,
    };
    let reply = update(&agent, CYCLES_LEDGER_ID, "withdraw", Encode!(&arg).unwrap())
        .await
        .unwrap();
    assert!(
        Decode!(&reply, Result<Nat, candid::Reserved>)
            .unwrap()
            .is_ok()
    );
    // The top-up arrived; installing and storing the probe cost a little.
    let reported = cycles(&status(&agent, id).await.unwrap().cycles);
    assert!(reported < 3 * t - CANISTER_CREATION_FEE);
    assert!(reported > 3 * t - CANISTER_CREATION_FEE - 1_000_000_000);
    let (balance, burned) = server
        .node()
        .with_devnet(|dn| (dn.cycle_balance(id).unwrap(), dn.cycles_burned(id).unwrap()));
    assert_eq!(burned.creation, CANISTER_CREATION_FEE);
    assert_eq!(balance + burned.total(), 3 * t);

    // Stop: requests are refused with IC0508; start: they run again.
    manage(&agent, "stop_canister", id, id_arg(id))
        .await
        .unwrap();
    assert_eq!(
        status(&agent, id).await.unwrap().status,
        CanisterStatusType::Stopped
    );
    let reject = reject_of(update(&agent, id, "inc", no_args()).await.unwrap_err());
    assert_eq!(reject.reject_code, RejectCode::CanisterError);
    assert_eq!(reject.error_code.as_deref(), Some("IC0508"));
    let reject = reject_of(query(&agent, id, "get", no_args()).await.unwrap_err());
    assert_eq!(reject.error_code.as_deref(), Some("IC0508"));
    // Deleting a running canister is refused (IC0510) ... after start.
    manage(&agent, "start_canister", id, id_arg(id))
        .await
        .unwrap();
    assert_eq!(update_as::<u64>(&agent, id, "inc").await, 1);
    let reject = reject_of(
        manage(&agent, "delete_canister", id, id_arg(id))
            .await
            .unwrap_err(),
    );
    assert_eq!(reject.error_code.as_deref(), Some("IC0510"));

    // Settings: kept, reported; invalid ones refused with IC0504.
    let settings = |s: CanisterSettings| UpdateSettingsArgs {
        canister_id: id,
        settings: s,
        sender_canister_version: None,
    };
    let arg = settings(CanisterSettings {
        compute_allocation: Some(Nat::from(9u8)),
        freezing_threshold: Some(Nat::from(1234u32)),
        log_visibility: Some(LogVisibility::Public),
        ..Default::default()
    });
    manage(&agent, "update_settings", id, Encode!(&arg).unwrap())
        .await
        .unwrap();
    let s = status(&agent, id).await.unwrap().settings;
    assert_eq!(s.compute_allocation, Nat::from(9u8));
    assert_eq!(s.freezing_threshold, Nat::from(1234u32));
    assert_eq!(s.log_visibility, LogVisibility::Public);
    assert_eq!(s.controllers, vec![me]);
    let arg = settings(CanisterSettings {
        compute_allocation: Some(Nat::from(200u8)),
        ..Default::default()
    });
    let reject = reject_of(
        manage(&agent, "update_settings", id, Encode!(&arg).unwrap())
            .await
            .unwrap_err(),
    );
    assert_eq!(reject.error_code.as_deref(), Some("IC0504"));

    // Logs: a trap is a record, public logs are readable by anyone.
    let reject = reject_of(update(&agent, id, "trap_now", no_args()).await.unwrap_err());
    assert_eq!(reject.error_code.as_deref(), Some("IC0503"));
    let stranger = common::agent(&server, ed25519_identity(8)).await;
    let arg = Encode!(&FetchCanisterLogsArgs {
        canister_id: id,
        filter: None
    })
    .unwrap();
    let reply = query(&stranger, mgmt(), "fetch_canister_logs", arg)
        .await
        .unwrap();
    let logs = Decode!(&reply, FetchCanisterLogsResult).unwrap();
    assert_eq!(logs.canister_log_records.len(), 1);
    assert!(String::from_utf8_lossy(&logs.canister_log_records[0].content).contains("trap_now"));

    // Delete: only stopped; then gone, its calls "not found" (IC0301).
    manage(&agent, "stop_canister", id, id_arg(id))
        .await
        .unwrap();
    let reject = reject_of(
        manage(&stranger, "delete_canister", id, id_arg(id))
            .await
            .unwrap_err(),
    );
    assert_eq!(reject.error_code.as_deref(), Some("IC0512"));
    manage(&agent, "delete_canister", id, id_arg(id))
        .await
        .unwrap();
    let reject = reject_of(status(&agent, id).await.unwrap_err());
    assert_eq!(reject.error_code.as_deref(), Some("IC0301"));
    let reject = reject_of(update(&agent, id, "inc", no_args()).await.unwrap_err());
    assert_eq!(reject.reject_code, RejectCode::DestinationInvalid);
    assert_eq!(reject.error_code.as_deref(), Some("IC0301"));
    server.shutdown().await.unwrap();
}
