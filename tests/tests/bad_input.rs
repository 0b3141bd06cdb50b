//! Bad input to every update method of the ledger, registry, escrow,
//! matcher and example client, on the real modules: malformed Candid, an
//! empty message, a message of no arguments, oversized arguments, from an
//! ordinary and from the anonymous principal; and boundary numbers (0, the
//! largest values, unknown ids, amounts of the ledger fee and one below it)
//! on the value-moving methods. Each is refused, with a reject or with an
//! `Err` its method's `.did` declares, and changes nothing: the canisters'
//! metrics, the ledger's log, the balances and the example client's
//! deliveries are as before, the conservation audit passes, and the
//! marketplace still works afterwards.

mod cast;

use candid::types::{Label, Type};
use candid::{IDLValue, Nat, Principal, TypeEnv};
use cast::{buyer, node, provider};
use market_api::escrow::{DepositArgs, EscrowError, NotifyDepositArgs, WithdrawArgs};
use market_api::matcher::{
    ExtendReservationArgs, HeartbeatAck, HeartbeatItem, JobLimits, JobResult, JobSpec,
    MatcherError, ModuleInfo, ModuleSource, ModuleUpload, OfferSpec, ReservationSpec,
    ReservedJobArgs, RunOutcome, SubmitResultArgs,
};
use market_api::registry::{RegistryError, Unbonding};
use market_api::{JobId, OfferId, Tokens};
use market_fixture::ledger_types::{ApproveArgs, ListBlocksArgs, TransferArg, transfer_arg};
use market_fixture::metrics::{without_cycles, without_timestamps};
use market_fixture::{
    ICP, MarketFixture, Settings, account, heartbeat_item, principal, url_service,
};

/// The example client's controller.
fn developer() -> Principal {
    principal(77)
}

/// The part of the ledger's `list_blocks` answer a snapshot needs.
#[derive(candid::Deserialize, candid::CandidType)]
struct LogLength {
    log_length: u64,
}

/// Everything observable that a refused call must leave unchanged: the
/// metrics of the registry, escrow and matcher (but their cycles, which
/// every message burns); the ledger's log length and
/// supply; the escrow and ledger balances of the buyer, the provider and
/// `client`; the client's deliveries.
fn snapshot(net: &MarketFixture, client: Option<Principal>) -> Vec<String> {
    let ids = net.ids;
    let mut out: Vec<String> = [ids.registry, ids.escrow, ids.matcher]
        .iter()
        .map(|c| without_cycles(&without_timestamps(&net.metrics(*c).unwrap())))
        .collect();
    let log: LogLength = net
        .query(
            ids.ledger,
            "list_blocks",
            &ListBlocksArgs {
                start: 0,
                length: 0,
            },
        )
        .unwrap();
    let supply: Nat = net.query(ids.ledger, "icrc1_total_supply", &()).unwrap();
    out.push(format!("ledger log {} supply {supply}", log.log_length));
    for who in [buyer(), provider()].into_iter().chain(client) {
        out.push(format!("{:?}", net.escrow_balance(who).unwrap()));
        out.push(format!("{:?}", net.balance(account(who)).unwrap()));
    }
    if let Some(c) = client {
        let page = market_api::PageRequest::default();
        let deliveries: IDLValue = net.query(c, "deliveries", &page).unwrap();
        out.push(format!("{deliveries:?}"));
    }
    out
}

fn spec(net: &MarketFixture) -> JobSpec {
    net.url_job(60, 10, 1_000_000)
}

fn market() -> MarketFixture {
    let net = MarketFixture::deploy(Settings::default()).expect("deploy");
    net.mint(buyer(), 100 * ICP).unwrap();
    net.deposit(buyer(), 50 * ICP).unwrap();
    net.onboard_provider(provider(), node(), 50 * ICP).unwrap();
    net
}

/// A service's methods, parsed from its `.did`: name, whether a query,
/// result types.
struct Service {
    env: TypeEnv,
    methods: Vec<(String, bool, Vec<Type>)>,
}

fn service(name: &str) -> Service {
    let did = std::fs::read_to_string(market_artifacts::did_path(name)).unwrap();
    let (env, methods) = market_artifacts::did_service(&did);
    Service { env, methods }
}

/// Whether `reply`, decoded as the method's declared results, is one
/// `Err` case of a variant: a refusal the `.did` declares.
fn declared_error(env: &TypeEnv, rets: &[Type], reply: &[u8]) -> Result<bool, String> {
    let args =
        candid::IDLArgs::from_bytes_with_types(reply, env, rets).map_err(|e| e.to_string())?;
    Ok(match args.args.as_slice() {
        [IDLValue::Variant(v)] => v.0.id.get_id() == Label::Named("Err".into()).get_id(),
        _ => false,
    })
}

#[test]
fn malformed_empty_and_oversized_arguments_are_refused_and_change_nothing() {
    let net = market();
    let client = net.deploy_example_client(developer()).unwrap();
    // The check below tells a declared error from an answer: a transfer
    // that goes through is no refusal.
    let ledger = service("ledger");
    let transfer = ledger.methods.iter().find(|m| m.0 == "icrc1_transfer");
    let arg = candid::encode_one(transfer_arg(account(provider()), 1u8)).unwrap();
    let reply = net
        .devnet()
        .update_call(net.ids.ledger, buyer(), "icrc1_transfer", arg)
        .unwrap();
    assert_eq!(
        declared_error(&ledger.env, &transfer.unwrap().2, &reply),
        Ok(false)
    );
    let before = snapshot(&net, Some(client));
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("an empty message", vec![]),
        ("a message of no arguments", b"DIDL\x00\x00".to_vec()),
        ("bytes that are not Candid", b"not candid at all".to_vec()),
        ("a cut-off header", b"DIDL".to_vec()),
        (
            "a 1.9 MiB text",
            candid::encode_one("x".repeat(1_900_000)).unwrap(),
        ),
        ("a deeply nested type table", {
            let mut v = b"DIDL\x01\x6e\x00".to_vec();
            v.extend([0x01, 0x00]);
            v.extend(std::iter::repeat_n(1u8, 100_000));
            v
        }),
    ];
    let (mut rejected, mut refused, mut updates) = (0, 0, 0);
    for (name, canister) in [
        ("ledger", net.ids.ledger),
        ("registry", net.ids.registry),
        ("escrow", net.ids.escrow),
        ("matcher", net.ids.matcher),
        ("example-client", client),
    ] {
        let Service { env, methods } = service(name);
        for (method, query, rets) in methods {
            if query {
                continue;
            }
            updates += 1;
            for caller in [principal(66), Principal::anonymous()] {
                for (what, arg) in &garbage {
                    let r = net
                        .devnet()
                        .update_call(canister, caller, &method, arg.clone());
                    match r {
                        Err(_) => rejected += 1,
                        Ok(reply) => {
                            // Only a method of no arguments can read "no
                            // arguments"; it must then refuse these callers.
                            let err = declared_error(&env, &rets, &reply);
                            assert_eq!(
                                err,
                                Ok(true),
                                "{name}.{method} accepted {what} from {caller}: {:?}",
                                candid::IDLArgs::from_bytes(&reply)
                            );
                            refused += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "bad input: {updates} update methods, {rejected} calls rejected, {refused} refused with a declared Err"
    );
    assert!(rejected + refused > 500, "{rejected} + {refused} calls");
    assert!(refused > 0, "some methods take no arguments");
    assert_eq!(
        snapshot(&net, Some(client)),
        before,
        "a refused call changed something"
    );
    net.audit().unwrap();
}

/// What the boundary test sets up before its snapshot: an offer, and a
/// reservation and a job that can't match it (their interval is longer than
/// the offer allows), so nothing moves while the test runs; a module
/// upload in progress.
struct Fixture {
    offer: OfferId,
    reservation: u64,
    job: JobId,
    upload: [u8; 32],
}

/// One slot of 64 MiB and a thousand fuel an interval, at 1 000 a billion
/// fuel or an interval, in `ledger`'s token.
fn small_offer(ledger: Principal) -> OfferSpec {
    OfferSpec {
        currency: None,
        slots: 1,
        memory_per_slot_mib: 64,
        max_fuel_per_interval: 1_000,
        price_per_gfuel: 1_000,
        fuel_per_sec: market_fixture::FUEL_PER_SEC,
        price_per_interval: 1_000,
        ledger,
        min_interval_secs: 10,
        max_interval_secs: 100,
        tags: vec![],
        audits: None,
    }
}

fn fixture(net: &MarketFixture) -> Fixture {
    let ids = net.ids;
    let offer = net
        .post_offer(provider(), &small_offer(ids.ledger))
        .unwrap();
    let r: Result<u64, MatcherError> = net
        .update(ids.matcher, buyer(), "reserve", &reservation_spec(net))
        .unwrap();
    let reservation = r.unwrap();
    let r: Result<JobId, MatcherError> = net
        .update(ids.matcher, buyer(), "submit_job", &spec(net))
        .unwrap();
    let job = r.unwrap();
    let upload = [9; 32];
    let r: Result<ModuleInfo, MatcherError> = net
        .update(
            ids.matcher,
            buyer(),
            "begin_module_upload",
            &ModuleUpload {
                sha256: upload,
                size: 10,
            },
        )
        .unwrap();
    r.unwrap();
    net.settle_outbox();
    Fixture {
        offer,
        reservation,
        job,
        upload,
    }
}

fn reservation_spec(net: &MarketFixture) -> ReservationSpec {
    ReservationSpec {
        currency: None,
        slots: 1,
        memory_mib: 64,
        fuel_per_interval: 1_000,
        interval_secs: 600,
        intervals: 2,
        max_price_per_interval: 1_000_000,
        ledger: net.ids.ledger,
        min_provider_stake: 0,
        max_rematches: 1,
        delegates: vec![],
        service: None,
    }
}

/// Calls `method` and asserts an `Err` answer (a reject would be a trap).
fn refused<A, T, E>(
    net: &MarketFixture,
    canister: Principal,
    caller: Principal,
    method: &str,
    arg: &A,
) where
    A: candid::CandidType + std::fmt::Debug,
    T: candid::CandidType + serde::de::DeserializeOwned + std::fmt::Debug,
    E: candid::CandidType + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let r: Result<T, E> = net
        .update(canister, caller, method, arg)
        .unwrap_or_else(|e| panic!("{method} trapped on {arg:?}: {e}"));
    assert!(r.is_err(), "{method} accepted {arg:?}: {r:?}");
}

/// [`refused`] for each of `args`.
fn refused_each<A, T, E>(
    net: &MarketFixture,
    canister: Principal,
    caller: Principal,
    method: &str,
    args: &[A],
) where
    A: candid::CandidType + std::fmt::Debug,
    T: candid::CandidType + serde::de::DeserializeOwned + std::fmt::Debug,
    E: candid::CandidType + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for arg in args {
        refused::<A, T, E>(net, canister, caller, method, arg);
    }
}

#[test]
fn boundary_numbers_are_refused_cleanly() {
    let net = market();
    let ids = net.ids;
    let fee = net.settings.fee;
    net.mint(provider(), ICP).unwrap();
    net.approve(buyer(), ids.escrow, 10 * ICP).unwrap();
    net.approve(provider(), ids.registry, 10 * ICP).unwrap();
    let f = fixture(&net);
    let before = snapshot(&net, None);

    // The escrow and the registry. (A pull deposit of 1 e8s is fine: the
    // depositor pays the fee on top.)
    for amount in [0, u128::MAX] {
        let args = DepositArgs {
            ledger: ids.ledger,
            amount,
            from_subaccount: None,
        };
        refused::<_, Tokens, EscrowError>(&net, ids.escrow, buyer(), "deposit", &args);
    }
    for amount in [0, fee - 1, fee, u128::MAX] {
        let args = WithdrawArgs {
            ledger: ids.ledger,
            amount,
            to: account(buyer()),
        };
        refused::<_, Tokens, EscrowError>(&net, ids.escrow, buyer(), "withdraw", &args);
    }
    for (ledger, beneficiary) in [
        (principal(5), buyer()),
        (ids.ledger, Principal::anonymous()),
    ] {
        let args = NotifyDepositArgs {
            ledger,
            beneficiary,
        };
        refused::<_, Tokens, EscrowError>(&net, ids.escrow, buyer(), "notify_deposit", &args);
    }
    for amount in [0u128, u128::MAX] {
        refused::<_, Nat, RegistryError>(
            &net,
            ids.registry,
            provider(),
            "stake",
            &Nat::from(amount),
        );
        refused::<_, Unbonding, RegistryError>(&net, ids.registry, provider(), "unstake", &amount);
    }

    // The ledger: a fee one below its fee; more than anyone has.
    let ledger = service("ledger");
    let rets = |method: &str| {
        let m = ledger.methods.iter().find(|m| m.0 == method);
        m.expect("the ledger has the method").2.clone()
    };
    let transfer = TransferArg {
        from_subaccount: None,
        to: account(provider()),
        amount: Nat::from(ICP),
        fee: Some(Nat::from(fee - 1)),
        memo: None,
        created_at_time: None,
    };
    let too_much = TransferArg {
        amount: Nat::from(u128::MAX),
        fee: None,
        memo: None,
        from_subaccount: None,
        ..transfer
    };
    let approve = ApproveArgs {
        from_subaccount: None,
        spender: account(provider()),
        amount: Nat::from(ICP),
        expected_allowance: None,
        expires_at: None,
        fee: Some(Nat::from(fee - 1)),
        memo: None,
        created_at_time: None,
    };
    for (method, arg, what) in [
        (
            "icrc1_transfer",
            candid::encode_one(&transfer).unwrap(),
            format!("{transfer:?}"),
        ),
        (
            "icrc1_transfer",
            candid::encode_one(&too_much).unwrap(),
            format!("{too_much:?}"),
        ),
        (
            "icrc2_approve",
            candid::encode_one(&approve).unwrap(),
            format!("{approve:?}"),
        ),
    ] {
        let reply = net
            .devnet()
            .update_call(ids.ledger, buyer(), method, arg)
            .unwrap_or_else(|e| panic!("{method} trapped on {what}: {e}"));
        let err = declared_error(&ledger.env, &rets(method), &reply);
        assert_eq!(err, Ok(true), "{method} accepted {what}");
    }

    // The matcher: jobs.
    let base = spec(&net);
    let bad_specs = [
        JobSpec {
            limits: JobLimits {
                fuel: 0,
                ..base.limits
            },
            ..base.clone()
        },
        JobSpec {
            limits: JobLimits {
                fuel: u64::MAX,
                ..base.limits
            },
            ..base.clone()
        },
        JobSpec {
            max_price_per_gfuel: 0,
            ..base.clone()
        },
        JobSpec {
            max_price_per_gfuel: u128::MAX,
            ..base.clone()
        },
        JobSpec {
            deadline_secs: Some(0),
            ..base.clone()
        },
        JobSpec {
            deadline_secs: Some(u64::MAX),
            ..base.clone()
        },
        JobSpec {
            interval_secs: 0,
            ..base.clone()
        },
        JobSpec {
            interval_secs: u64::MAX,
            ..base.clone()
        },
        JobSpec {
            limits: JobLimits {
                memory_mib: 0,
                fuel: u64::MAX,
            },
            ..base.clone()
        },
        JobSpec {
            max_retries: u32::MAX,
            ..base.clone()
        },
        JobSpec {
            input: vec![0; market_api::matcher::MAX_INPUT_BYTES + 1],
            ..base.clone()
        },
        JobSpec {
            args: vec!["a".into(); market_api::matcher::MAX_ARGS + 1],
            ..base.clone()
        },
        JobSpec {
            callback: Some(String::new()),
            audit_ppm: None,
            ..base.clone()
        },
        JobSpec {
            module: ModuleSource::Url {
                url: "http://insecure.example/job.wasm".into(),
                sha256: [1; 32],
            },
            ..base.clone()
        },
        // Costs more than the buyer holds in the escrow.
        JobSpec {
            max_price_per_gfuel: 100 * ICP,
            ..base.clone()
        },
    ];
    refused_each::<_, JobId, MatcherError>(&net, ids.matcher, buyer(), "submit_job", &bad_specs);
    for id in [u64::MAX, f.reservation] {
        // Not one of the provider's jobs; a reservation isn't a job to cancel.
        refused::<_, (), MatcherError>(&net, ids.matcher, provider(), "cancel_job", &id);
    }
    refused::<_, (), MatcherError>(&net, ids.matcher, buyer(), "cancel_job", &u64::MAX);
    for (job, attempt) in [(u64::MAX, u32::MAX), (f.job, 0), (f.job, u32::MAX)] {
        let r: (Result<(), MatcherError>,) = net
            .update_args(ids.matcher, node(), "hand_back", (job, attempt))
            .unwrap();
        assert!(r.0.is_err(), "hand_back of {job} attempt {attempt}");
    }
    let result = JobResult {
        output: vec![],
        output_sha256: [0; 32],
        fuel_used: u64::MAX,
        outcome: RunOutcome::Exited { code: i32::MIN },
        engine: "bad input".into(),
    };
    for (job_id, attempt, output) in [
        (u64::MAX, 1, 0),
        (f.job, 0, 0),
        (f.job, u32::MAX, 0),
        (f.job, 1, market_api::matcher::MAX_OUTPUT_BYTES + 1),
    ] {
        let args = SubmitResultArgs {
            job_id,
            attempt,
            result: JobResult {
                output: vec![0; output],
                ..result.clone()
            },
        };
        refused::<_, (), MatcherError>(&net, ids.matcher, node(), "submit_result", &args);
    }
    let flood: Vec<HeartbeatItem> = (0..1_001).map(|i| heartbeat_item(i, 1, u64::MAX)).collect();
    refused::<_, Vec<HeartbeatAck>, MatcherError>(&net, ids.matcher, node(), "heartbeat", &flood);

    // The matcher: offers.
    let offer = small_offer(ids.ledger);
    let bad_offers = [
        OfferSpec {
            slots: 0,
            ..offer.clone()
        },
        OfferSpec {
            slots: u32::MAX,
            ..offer.clone()
        },
        OfferSpec {
            price_per_interval: 0,
            ..offer.clone()
        },
        OfferSpec {
            price_per_gfuel: 0,
            ..offer.clone()
        },
        OfferSpec {
            fuel_per_sec: 0,
            ..offer.clone()
        },
        OfferSpec {
            min_interval_secs: 101,
            ..offer.clone()
        },
        OfferSpec {
            tags: vec!["t".into(); 17],
            audits: None,
            ..offer.clone()
        },
    ];
    for bad in &bad_offers {
        refused::<_, OfferId, MatcherError>(&net, ids.matcher, provider(), "post_offer", bad);
        let r: (Result<OfferId, MatcherError>,) = net
            .update_args(
                ids.matcher,
                provider(),
                "update_offer",
                (f.offer, bad.clone()),
            )
            .unwrap();
        assert!(r.0.is_err(), "update_offer to {bad:?}");
    }
    for (who, id) in [(provider(), u64::MAX), (buyer(), f.offer)] {
        let r: (Result<OfferId, MatcherError>,) = net
            .update_args(ids.matcher, who, "update_offer", (id, offer.clone()))
            .unwrap();
        assert!(r.0.is_err(), "update_offer of {id} by {who}");
    }
    refused::<_, (), MatcherError>(&net, ids.matcher, provider(), "withdraw_offer", &u64::MAX);
    refused::<_, (), MatcherError>(&net, ids.matcher, buyer(), "withdraw_offer", &f.offer);

    // The matcher: reservations.
    let rs = reservation_spec(&net);
    let bad_reservations = [
        ReservationSpec {
            slots: 0,
            ..rs.clone()
        },
        ReservationSpec {
            slots: u32::MAX,
            ..rs.clone()
        },
        ReservationSpec {
            memory_mib: 0,
            ..rs.clone()
        },
        ReservationSpec {
            fuel_per_interval: 0,
            ..rs.clone()
        },
        ReservationSpec {
            interval_secs: 0,
            ..rs.clone()
        },
        ReservationSpec {
            interval_secs: u64::MAX,
            ..rs.clone()
        },
        ReservationSpec {
            intervals: 0,
            ..rs.clone()
        },
        ReservationSpec {
            intervals: u32::MAX,
            ..rs.clone()
        },
        ReservationSpec {
            max_price_per_interval: 0,
            ..rs.clone()
        },
        ReservationSpec {
            max_price_per_interval: u128::MAX,
            ..rs.clone()
        },
        ReservationSpec {
            max_rematches: u32::MAX,
            ..rs.clone()
        },
        ReservationSpec {
            delegates: vec![Principal::anonymous()],
            ..rs.clone()
        },
        ReservationSpec {
            delegates: (0..17).map(principal).collect(),
            ..rs.clone()
        },
        // Costs more than the buyer holds in the escrow.
        ReservationSpec {
            max_price_per_interval: 100 * ICP,
            ..rs.clone()
        },
    ];
    refused_each::<_, u64, MatcherError>(&net, ids.matcher, buyer(), "reserve", &bad_reservations);
    for (who, reservation, intervals) in [
        (buyer(), u64::MAX, 1),
        (buyer(), f.reservation, 0),
        (buyer(), f.reservation, u32::MAX),
        (buyer(), f.job, 1),
        (provider(), f.reservation, 1),
    ] {
        let args = ExtendReservationArgs {
            reservation,
            intervals,
        };
        refused::<_, (), MatcherError>(&net, ids.matcher, who, "extend_reservation", &args);
    }
    // The base spec with other limits.
    let with_limits = |limits: JobLimits| JobSpec {
        limits,
        ..base.clone()
    };
    for (who, reservation, s) in [
        (buyer(), u64::MAX, base.clone()),
        (buyer(), f.job, base.clone()),
        (principal(66), f.reservation, base.clone()),
        (
            buyer(),
            f.reservation,
            with_limits(JobLimits {
                fuel: 0,
                ..base.limits
            }),
        ),
        (
            buyer(),
            f.reservation,
            with_limits(JobLimits {
                fuel: u64::MAX,
                ..base.limits
            }),
        ),
        // More than a reserved slot holds. (Its interval and price are the
        // reservation's, whatever the spec says.)
        (
            buyer(),
            f.reservation,
            with_limits(JobLimits {
                memory_mib: 65,
                fuel: u64::MAX,
            }),
        ),
    ] {
        let args = ReservedJobArgs {
            reservation,
            spec: s,
        };
        refused::<_, JobId, MatcherError>(&net, ids.matcher, who, "submit_reserved_job", &args);
    }

    // The matcher: module chunks (the upload is 10 bytes, one chunk).
    for (who, sha, index, len) in [
        (buyer(), f.upload, u32::MAX, 10),
        (buyer(), f.upload, 1, 0),
        (buyer(), f.upload, 0, 11),
        (
            buyer(),
            f.upload,
            0,
            market_api::matcher::MAX_CHUNK_BYTES + 1,
        ),
        (buyer(), [0xEE; 32], 0, 10),
        (provider(), f.upload, 0, 10),
    ] {
        let r: (Result<(), MatcherError>,) = net
            .update_args(
                ids.matcher,
                who,
                "put_module_chunk",
                (sha, index, vec![0u8; len]),
            )
            .unwrap();
        assert!(r.0.is_err(), "chunk {index} of {len} bytes by {who}");
    }

    assert_eq!(
        snapshot(&net, None),
        before,
        "a refused call changed something"
    );
    net.audit().unwrap();

    // The marketplace still works.
    let r: Result<JobId, MatcherError> = net
        .update(ids.matcher, buyer(), "submit_job", &base)
        .unwrap();
    r.unwrap();
    net.settle_outbox();
    net.audit().unwrap();
}

/// A push of one e8s below the ledger fee can't be swept (the sweep would
/// cost the fee): `notify_deposit` refuses it and changes nothing. It is
/// not lost: the next push to the same account carries it, and the audit
/// closes again.
#[test]
fn a_push_below_the_fee_is_refused_and_kept_for_the_next() {
    let net = market();
    let ids = net.ids;
    let fee = net.settings.fee;
    let to: market_api::Account = net.query(ids.escrow, "deposit_account", &buyer()).unwrap();
    net.transfer(buyer(), to, fee - 1).unwrap();
    let before = snapshot(&net, None);
    let notify = NotifyDepositArgs {
        ledger: ids.ledger,
        beneficiary: buyer(),
    };
    let r: Result<Tokens, EscrowError> = net
        .update(ids.escrow, buyer(), "notify_deposit", &notify)
        .unwrap();
    assert_eq!(r, Err(EscrowError::AmountBelowFee { fee }));
    assert_eq!(
        snapshot(&net, None),
        before,
        "a refused call changed something"
    );
    let e = net.audit().unwrap_err().to_string();
    assert!(
        e.contains(&format!("{} sits in deposit accounts", fee - 1)),
        "{e}"
    );

    let free = net.escrow_balance(buyer()).unwrap().free;
    net.transfer(buyer(), to, ICP).unwrap();
    let r: Result<Tokens, EscrowError> = net
        .update(ids.escrow, buyer(), "notify_deposit", &notify)
        .unwrap();
    assert_eq!(r, Ok(ICP - 1));
    assert_eq!(net.escrow_balance(buyer()).unwrap().free, free + ICP - 1);
    net.audit().unwrap();
}

/// A sealed part of a job or service that is no ciphertext, a key id of
/// the wrong size, a sealing on a market without a vetKD key, and transport
/// keys that are no keys: each refused with a declared `Err`, changing
/// nothing; a forged ciphertext of the right shape is taken (only the key's
/// holder can tell) and does not open with the job's key; the job's key is
/// still handed to its provider afterwards.
#[test]
fn forged_ciphertexts_and_transport_keys_are_refused_cleanly() {
    use market_api::matcher::ServiceSpec;
    use market_api::privacy::{
        IBE_HEADER, IBE_OVERHEAD, JobKey, JobKeyRequest, PrivacyKey, Sealed,
    };
    use market_client::sealing::{self, TransportKey};

    let plain = market();
    let net = MarketFixture::deploy(Settings {
        privacy: true,
        ..Settings::default()
    })
    .expect("deploy");
    net.mint(buyer(), 100 * ICP).unwrap();
    net.deposit(buyer(), 50 * ICP).unwrap();
    net.onboard_provider(provider(), node(), 50 * ICP).unwrap();
    let mut pk = None;
    for _ in 0..20 {
        let k: Option<PrivacyKey> = net.query(net.ids.matcher, "privacy_key", &()).unwrap();
        if k.is_some() {
            pk = k;
            break;
        }
        net.wait_secs(1);
        net.settle_outbox();
    }
    let pk = pk.expect("the matcher reads its public key").public_key;
    let key_id = sealing::new_key_id();
    let real = sealing::seal(&pk, buyer(), &key_id, b"input").unwrap();
    let mut forged = IBE_HEADER.to_vec();
    forged.resize(IBE_OVERHEAD + 16, 0xA5);
    let sealed = |input: bool, env: Option<Vec<u8>>, key_id: &[u8]| Sealed {
        key_id: key_id.to_vec(),
        input,
        env: env.map(Into::into),
        output: false,
    };
    let job = |input: Vec<u8>, s: Sealed| JobSpec {
        input,
        sealed: Some(s),
        ..spec(&net)
    };
    let mut wrong_header = real.clone();
    wrong_header[0] ^= 0xff;
    let bad_jobs = vec![
        (
            "a plain input marked sealed",
            job(b"plain".to_vec(), sealed(true, None, &key_id)),
        ),
        (
            "a cut ciphertext",
            job(
                real[..IBE_OVERHEAD - 1].to_vec(),
                sealed(true, None, &key_id),
            ),
        ),
        (
            "an unknown header",
            job(wrong_header, sealed(true, None, &key_id)),
        ),
        (
            "a 31-byte key id",
            job(real.clone(), sealed(true, None, &key_id[..31])),
        ),
        (
            "an empty key id",
            job(real.clone(), sealed(true, None, &[])),
        ),
        (
            "an env that is no ciphertext",
            job(vec![], sealed(false, Some(b"API_KEY=x".to_vec()), &key_id)),
        ),
        (
            "an env past its bound",
            job(
                vec![],
                sealed(
                    false,
                    Some({
                        let mut e = IBE_HEADER.to_vec();
                        e.resize(market_api::privacy::MAX_SEALED_ENV_BYTES + 1, 0);
                        e
                    }),
                    &key_id,
                ),
            ),
        ),
    ];
    let before = snapshot(&net, None);
    for (what, spec) in &bad_jobs {
        let r: Result<JobId, MatcherError> = net
            .update(net.ids.matcher, buyer(), "submit_job", spec)
            .unwrap();
        assert!(
            matches!(r, Err(MatcherError::InvalidArgument { .. })),
            "{what}: {r:?}"
        );
    }
    // A service seals its env only.
    let service = |s: Sealed| ReservationSpec {
        service: Some(ServiceSpec {
            sealed: Some(s),
            ..url_service("https://example.org/hello.wasm", [5; 32])
        }),
        ..reservation_spec(&net)
    };
    for s in [
        sealed(true, None, &key_id),
        Sealed {
            output: true,
            ..sealed(false, None, &key_id)
        },
        sealed(false, Some(b"forged".to_vec()), &key_id),
    ] {
        let r: Result<u64, MatcherError> = net
            .update(net.ids.matcher, buyer(), "reserve", &service(s.clone()))
            .unwrap();
        assert!(
            matches!(r, Err(MatcherError::InvalidArgument { .. })),
            "{s:?}: {r:?}"
        );
    }
    net.settle_outbox();
    assert_eq!(
        snapshot(&net, None),
        before,
        "a refused call changed something"
    );

    // A market without a vetKD key takes no sealed job, however well formed.
    let r: Result<JobId, MatcherError> = plain
        .update(
            plain.ids.matcher,
            buyer(),
            "submit_job",
            &JobSpec {
                input: real.clone(),
                sealed: Some(sealed(true, None, &key_id)),
                ..spec(&plain)
            },
        )
        .unwrap();
    assert!(
        matches!(r, Err(MatcherError::InvalidArgument { .. })),
        "{r:?}"
    );

    // A forged ciphertext of the right shape is taken: only the key can tell.
    net.post_offer(provider(), &net.offer_spec(1, 1_000))
        .unwrap();
    let r: Result<JobId, MatcherError> = net
        .update(
            net.ids.matcher,
            buyer(),
            "submit_job",
            &job(forged.clone(), sealed(true, None, &key_id)),
        )
        .unwrap();
    let id = r.expect("a well-formed ciphertext is taken");
    net.settle_outbox();
    let attempt = net
        .assignments(provider())
        .unwrap()
        .iter()
        .find(|a| a.job_id == id)
        .expect("the provider holds the job")
        .attempt;

    // Transport keys that are no keys: refused, nothing changes.
    let before = snapshot(&net, None);
    let mut not_a_point = vec![0xff; 48];
    not_a_point[0] = 0x9f; // compressed flag set, x past the field's modulus
    for (what, key) in [
        ("an empty key", vec![]),
        ("47 bytes", vec![0x80; 47]),
        ("49 bytes", vec![0x80; 49]),
        ("48 zero bytes", vec![0; 48]),
        ("a point off the curve", not_a_point),
    ] {
        let req = JobKeyRequest {
            job_id: id,
            attempt,
            transport_public_key: key,
        };
        let r: Result<JobKey, MatcherError> = net
            .update(net.ids.matcher, node(), "job_key", &req)
            .unwrap_or_else(|e| panic!("job_key trapped on {what}: {e}"));
        assert!(r.is_err(), "{what} was taken: {r:?}");
    }
    // Nothing changed but the count of derivations the management canister
    // rejected: the two keys of the right length that are no points.
    let failures = "matcher_job_key_failures_total";
    let without = |snap: Vec<String>| -> Vec<String> {
        snap.into_iter()
            .map(|m| {
                m.lines()
                    .filter(|l| !l.starts_with(&format!("{failures} ")))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect()
    };
    assert_eq!(
        without(snapshot(&net, None)),
        without(before),
        "a refused job_key changed something"
    );
    let metrics = net.metrics(net.ids.matcher).unwrap();
    let count = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{failures} ")))
        .and_then(|rest| rest.split_whitespace().next());
    assert_eq!(
        count,
        Some("2"),
        "the management canister rejected the two forged points"
    );

    // The provider's own transport key gets the key, which refuses the forgery.
    let transport = TransportKey::new();
    let r: Result<JobKey, MatcherError> = net
        .update(
            net.ids.matcher,
            node(),
            "job_key",
            &JobKeyRequest {
                job_id: id,
                attempt,
                transport_public_key: transport.public_key(),
            },
        )
        .unwrap();
    let secret = transport
        .open(&r.expect("the holder gets the key"))
        .unwrap();
    assert!(secret.open(&forged).is_err());
    assert_eq!(
        secret.open(&real).unwrap(),
        b"input",
        "the key is the job's"
    );
    net.audit().unwrap();
}
