//! The bytes the client sends decode to the values meant, and every kind of
//! failure becomes the right [`ClientError`].

use std::collections::VecDeque;
use std::sync::Mutex;

use candid::{Decode, Encode, Nat, Principal};
use icrc_ledger_types::icrc2::approve::ApproveArgs;
use market_api::Account;
use market_api::matcher::{HeartbeatAck, HeartbeatItem, JobResult, RunOutcome, SubmitResultArgs};
use market_api::registry::RegistryError;

use super::*;
use crate::transport::{Call, RejectCode, TransportError};

/// One recorded call.
#[derive(Debug, Clone)]
struct Sent {
    canister: Principal,
    method: String,
    arg: Vec<u8>,
    update: bool,
}

/// Records calls and answers from a script.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Sent>>,
    replies: Mutex<VecDeque<Result<Vec<u8>, TransportError>>>,
}

impl Recorder {
    fn answer(&self, reply: Result<Vec<u8>, TransportError>) {
        self.replies.lock().unwrap().push_back(reply);
    }
    fn last(&self) -> Sent {
        self.sent.lock().unwrap().last().cloned().expect("a call")
    }
    /// The last call, checked to be `canister`'s `method`, an update or
    /// a query as `update` says.
    fn last_call(&self, canister: Principal, method: &str, update: bool) -> Sent {
        let sent = self.last();
        assert_eq!(
            (sent.canister, sent.method.as_str(), sent.update),
            (canister, method, update)
        );
        sent
    }
    fn record(&self, call: Call<'_>, update: bool) -> Result<Vec<u8>, TransportError> {
        self.sent.lock().unwrap().push(Sent {
            canister: call.canister,
            method: call.method.into(),
            arg: call.arg,
            update,
        });
        self.replies
            .lock()
            .unwrap()
            .pop_front()
            .expect("a scripted reply")
    }
}

impl Transport for std::sync::Arc<Recorder> {
    fn sender(&self) -> Principal {
        Principal::from_slice(&[9; 29])
    }
    async fn update(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        self.record(call, true)
    }
    async fn query(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        self.record(call, false)
    }
    async fn time_ns(&self) -> Result<u64, TransportError> {
        Ok(42)
    }
}

fn ids() -> CanisterIds {
    CanisterIds {
        ledger: Principal::from_slice(&[1]),
        registry: Principal::from_slice(&[2]),
        escrow: Principal::from_slice(&[3]),
        matcher: Principal::from_slice(&[4]),
    }
}

fn client() -> (
    std::sync::Arc<Recorder>,
    MarketClient<std::sync::Arc<Recorder>>,
) {
    let rec = std::sync::Arc::new(Recorder::default());
    (rec.clone(), MarketClient::new(rec, ids()))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn stake_sends_a_nat_to_the_registry_as_an_update() {
    let (rec, c) = client();
    rec.answer(Ok(
        Encode!(&Ok::<Nat, RegistryError>(Nat::from(7u32))).unwrap()
    ));
    assert_eq!(block_on(c.stake(250_000_000)), Ok(7));
    let sent = rec.last_call(ids().registry, "stake", true);
    assert_eq!(Decode!(&sent.arg, Nat).unwrap(), Nat::from(250_000_000u64));
}

#[test]
fn heartbeat_sends_one_batch() {
    let (rec, c) = client();
    let items = vec![
        HeartbeatItem {
            job_id: 3,
            attempt: 1,
            fuel_used: 10,
            endpoint: None,
            tcp_address: None,
        },
        HeartbeatItem {
            job_id: 5,
            attempt: 2,
            fuel_used: 0,
            endpoint: None,
            tcp_address: None,
        },
    ];
    let acks = vec![
        HeartbeatAck::Accepted {
            next_deadline_ns: 99,
        },
        HeartbeatAck::Refused {
            reason: "no".into(),
        },
    ];
    rec.answer(Ok(Encode!(&Ok::<_, MatcherError>(acks.clone())).unwrap()));
    assert_eq!(block_on(c.heartbeat(items.clone())), Ok(acks));
    let sent = rec.last();
    assert_eq!(
        (sent.canister, sent.method.as_str()),
        (ids().matcher, "heartbeat")
    );
    assert_eq!(Decode!(&sent.arg, Vec<HeartbeatItem>).unwrap(), items);
}

#[test]
fn module_chunk_is_a_query_of_blob_and_nat32() {
    let (rec, c) = client();
    rec.answer(Ok(Encode!(&Ok::<serde_bytes::ByteBuf, MatcherError>(
        serde_bytes::ByteBuf::from(vec![1, 2, 3])
    ))
    .unwrap()));
    assert_eq!(block_on(c.module_chunk([7; 32], 4)), Ok(vec![1, 2, 3]));
    let sent = rec.last();
    assert!(!sent.update);
    let (sha, index) = Decode!(&sent.arg, serde_bytes::ByteBuf, u32).unwrap();
    assert_eq!((sha.into_vec(), index), (vec![7; 32], 4));
}

#[test]
fn submit_result_and_approve_encode_their_records() {
    let (rec, c) = client();
    let args = SubmitResultArgs {
        job_id: 11,
        attempt: 2,
        result: JobResult {
            outcome: RunOutcome::Exited { code: 0 },
            output: b"hello".to_vec(),
            output_sha256: [1; 32],
            fuel_used: 1234,
            engine: "e".into(),
        },
    };
    rec.answer(Ok(Encode!(&Ok::<(), MatcherError>(())).unwrap()));
    block_on(c.submit_result(args.clone())).unwrap();
    assert_eq!(Decode!(&rec.last().arg, SubmitResultArgs).unwrap(), args);

    let approve = ApproveArgs {
        from_subaccount: None,
        spender: Account::from(ids().registry),
        amount: Nat::from(100_010_000u64),
        expected_allowance: None,
        expires_at: None,
        fee: None,
        memo: None,
        created_at_time: Some(5),
    };
    rec.answer(Ok(Encode!(&Ok::<
        Nat,
        icrc_ledger_types::icrc2::approve::ApproveError,
    >(Nat::from(1u8)))
    .unwrap()));
    block_on(c.approve(approve.clone())).unwrap();
    let sent = rec.last();
    assert_eq!(
        (sent.canister, sent.method.as_str()),
        (ids().ledger, "icrc2_approve")
    );
    assert_eq!(Decode!(&sent.arg, ApproveArgs).unwrap(), approve);
}

#[test]
fn canister_errors_become_actionable_messages() {
    let (rec, c) = client();
    rec.answer(Ok(Encode!(&Err::<Nat, RegistryError>(
        RegistryError::NotRegistered
    ))
    .unwrap()));
    let err = block_on(c.stake(1)).unwrap_err();
    assert_eq!(err, ClientError::Registry(RegistryError::NotRegistered));
    assert!(err.to_string().contains("provider-node register"), "{err}");
    assert!(!err.is_transient());

    rec.answer(Ok(
        Encode!(&Err::<Nat, RegistryError>(RegistryError::Busy)).unwrap()
    ));
    assert!(block_on(c.stake(1)).unwrap_err().is_transient());

    rec.answer(Ok(Encode!(&Err::<u64, MatcherError>(
        MatcherError::UnknownModule { sha256: [0xab; 32] }
    ))
    .unwrap()));
    let err = block_on(c.post_offer(sample_offer())).unwrap_err();
    assert!(
        err.to_string().contains("abab") && err.to_string().contains("upload"),
        "{err}"
    );
}

#[test]
fn rejects_and_bad_answers_name_the_canister_and_a_remedy() {
    let (rec, c) = client();
    rec.answer(Err(TransportError::Reject {
        code: RejectCode::DestinationInvalid,
        message: "Canister aaaaa-aa not found".into(),
        error_code: Some("IC0301".into()),
    }));
    let err = block_on(c.assignments(Principal::anonymous())).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("matcher.assignments:"), "{text}");
    assert!(text.contains("canister id"), "{text}");
    assert!(!err.is_transient());

    rec.answer(Err(TransportError::Network("connection refused".into())));
    let err = block_on(c.assignments(Principal::anonymous())).unwrap_err();
    assert!(err.is_transient());
    assert!(err.to_string().contains("network URL"), "{err}");

    // A reply of the wrong type (e.g. the id names another canister).
    rec.answer(Ok(Encode!(&"surprise").unwrap()));
    let err = block_on(c.assignments(Principal::anonymous())).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Candid {
                canister: "matcher",
                ..
            }
        ),
        "{err}"
    );
}

fn sample_offer() -> OfferSpec {
    OfferSpec {
        currency: None,
        slots: 1,
        memory_per_slot_mib: 64,
        max_fuel_per_interval: 1,
        price_per_gfuel: 1,
        fuel_per_sec: 1_000_000_000,
        price_per_interval: 1,
        ledger: ids().ledger,
        min_interval_secs: 1,
        max_interval_secs: 10,
        tags: vec![],
        audits: None,
    }
}

#[test]
fn reservation_calls_go_to_the_matcher_as_updates_and_queries() {
    let (rec, c) = client();
    rec.answer(Ok(Encode!(&Ok::<Vec<Principal>, MatcherError>(vec![
        ids().ledger
    ]))
    .unwrap()));
    let args = SetDelegatesArgs {
        reservation: 5,
        add: vec![ids().ledger],
        remove: vec![],
    };
    assert_eq!(
        block_on(c.set_delegates(args.clone())),
        Ok(vec![ids().ledger])
    );
    let sent = rec.last();
    assert_eq!(
        (sent.canister, sent.method.as_str()),
        (ids().matcher, "set_delegates")
    );
    assert!(sent.update);
    assert_eq!(Decode!(&sent.arg, SetDelegatesArgs).unwrap(), args);

    rec.answer(Ok(Encode!(&None::<Reservation>).unwrap()));
    assert_eq!(block_on(c.get_reservation(5)), Ok(None));
    let sent = rec.last_call(ids().matcher, "get_reservation", false);
    assert_eq!(Decode!(&sent.arg, u64).unwrap(), 5);

    rec.answer(Ok(
        Encode!(&None::<market_api::matcher::ServiceView>).unwrap()
    ));
    assert_eq!(block_on(c.get_service(6)), Ok(None));
    let sent = rec.last_call(ids().matcher, "get_service", false);
    assert_eq!(Decode!(&sent.arg, u64).unwrap(), 6);

    rec.answer(Ok(
        Encode!(&Err::<(), MatcherError>(MatcherError::Busy)).unwrap()
    ));
    let err = block_on(c.cancel_reservation(CancelReservationArgs { reservation: 5 }));
    assert_eq!(err, Err(ClientError::Matcher(MatcherError::Busy)));
}

#[test]
fn unstake_and_withdraw_unbonded_go_to_the_registry() {
    let (rec, c) = client();
    let entry = Unbonding {
        amount: 5 * 100_000_000,
        release_at_ns: 77,
    };
    rec.answer(Ok(
        Encode!(&Ok::<Unbonding, RegistryError>(entry.clone())).unwrap()
    ));
    assert_eq!(block_on(c.unstake(5 * 100_000_000)), Ok(entry));
    let sent = rec.last_call(ids().registry, "unstake", true);
    assert_eq!(Decode!(&sent.arg, Nat).unwrap(), Nat::from(500_000_000u64));

    rec.answer(Ok(
        Encode!(&Ok::<Nat, RegistryError>(Nat::from(12u8))).unwrap()
    ));
    assert_eq!(block_on(c.withdraw_unbonded()), Ok(12));
    let sent = rec.last_call(ids().registry, "withdraw_unbonded", true);
    Decode!(&sent.arg).expect("no arguments");
    assert!(
        Decode!(&sent.arg, Nat).is_err(),
        "withdraw_unbonded takes no argument"
    );

    rec.answer(Ok(Encode!(&Err::<Nat, RegistryError>(
        RegistryError::NothingToWithdraw
    ))
    .unwrap()));
    assert_eq!(
        block_on(c.withdraw_unbonded()),
        Err(ClientError::Registry(RegistryError::NothingToWithdraw))
    );
}

#[test]
fn update_offer_sends_the_id_then_the_new_terms() {
    let (rec, c) = client();
    let mut spec = sample_offer();
    spec.price_per_interval = 250_000;
    spec.price_per_gfuel = 40;
    spec.tags = vec!["gpu".into()];
    rec.answer(Ok(Encode!(&Ok::<u64, MatcherError>(9)).unwrap()));
    assert_eq!(block_on(c.update_offer(9, spec.clone())), Ok(9));
    let sent = rec.last_call(ids().matcher, "update_offer", true);
    assert_eq!(Decode!(&sent.arg, u64, OfferSpec).unwrap(), (9, spec));
}

#[test]
fn update_profile_sends_the_whole_profile() {
    let (rec, c) = client();
    let profile = ProviderProfile {
        display_name: "acme".into(),
        region: "eu-west".into(),
        node: Principal::from_slice(&[5; 29]),
        total_slots: 3,
        memory_per_slot_mib: 2048,
        tags: vec!["avx2".into()],
        endpoint: Some("https://acme.example".into()),
    };
    rec.answer(Ok(Encode!(&Ok::<(), RegistryError>(())).unwrap()));
    block_on(c.update_profile(profile.clone())).unwrap();
    let sent = rec.last_call(ids().registry, "update_profile", true);
    assert_eq!(Decode!(&sent.arg, ProviderProfile).unwrap(), profile);
}

#[test]
fn hand_back_sends_the_job_and_its_attempt() {
    let (rec, c) = client();
    rec.answer(Ok(Encode!(&Ok::<(), MatcherError>(())).unwrap()));
    block_on(c.hand_back(31, 4)).unwrap();
    let sent = rec.last_call(ids().matcher, "hand_back", true);
    assert_eq!(Decode!(&sent.arg, u64, u32).unwrap(), (31, 4));

    rec.answer(Ok(Encode!(&Err::<(), MatcherError>(
        MatcherError::UnknownJob { job_id: 31 }
    ))
    .unwrap()));
    assert_eq!(
        block_on(c.hand_back(31, 4)),
        Err(ClientError::Matcher(MatcherError::UnknownJob {
            job_id: 31
        }))
    );
}

#[test]
fn dispute_job_is_an_update_of_the_job_id_and_refusals_read_plainly() {
    let (rec, c) = client();
    rec.answer(Ok(Encode!(&Ok::<(), MatcherError>(())).unwrap()));
    block_on(c.dispute_job(12)).unwrap();
    let sent = rec.last_call(ids().matcher, "dispute_job", true);
    assert_eq!(Decode!(&sent.arg, u64).unwrap(), 12);

    let refused = MatcherError::Unauthorized {
        reason: "not the job's owner".into(),
    };
    rec.answer(Ok(
        Encode!(&Err::<(), MatcherError>(refused.clone())).unwrap()
    ));
    let err = block_on(c.dispute_job(12)).unwrap_err();
    assert_eq!(err, ClientError::Matcher(refused));
    assert!(!err.is_transient());
    assert!(
        err.to_string()
            .contains("matcher: not allowed: not the job's owner"),
        "{err}"
    );
}

#[test]
fn rates_is_a_query_of_the_matcher_without_arguments() {
    use market_api::prices::{LedgerRate, RatesView, Valuation};
    let (rec, c) = client();
    let view = RatesView {
        ledgers: vec![LedgerRate {
            ledger: ids().ledger,
            source: None,
            valuation: Some(Valuation::cycles()),
            last_error: None,
        }],
        max_rate_age_secs: 1_800,
        rate_buffer_ppm: 100_000,
    };
    rec.answer(Ok(Encode!(&view).unwrap()));
    assert_eq!(block_on(c.rates()), Ok(view));
    let sent = rec.last();
    assert!(!sent.update);
    assert_eq!(
        (sent.canister, sent.method.as_str()),
        (ids().matcher, "get_rates")
    );
    Decode!(&sent.arg).unwrap();
}
