//! Bad input to every update method of the registry, escrow and matcher,
//! on the real modules: malformed Candid, missing arguments, oversized
//! arguments, from an ordinary and from the anonymous principal, and
//! boundary numbers (0, the largest values, amounts below the ledger fee) on
//! the value-moving methods. Each is refused cleanly and changes nothing:
//! the canisters' metrics and event logs are as before, the conservation
//! audit passes, and the marketplace still works afterwards.

use candid::{Nat, Principal};
use localnet::{ICP, Localnet, Settings, account, principal};
use market_api::escrow::{DepositArgs, EscrowError, WithdrawArgs};
use market_api::matcher::{
    HeartbeatAck, HeartbeatItem, JobLimits, JobSpec, MatcherError, ModuleSource, OfferSpec,
};
use market_api::registry::{RegistryError, Unbonding};
use market_api::{JobId, Tokens};

fn buyer() -> Principal {
    principal(1)
}
fn provider() -> Principal {
    principal(101)
}

/// Everything observable that a refused call must leave unchanged.
fn snapshot(net: &Localnet) -> Vec<String> {
    let ids = net.ids;
    let mut out: Vec<String> = [ids.registry, ids.escrow, ids.matcher]
        .iter()
        .map(|c| net.metrics(*c).unwrap())
        .collect();
    for who in [buyer(), provider()] {
        out.push(format!("{:?}", net.escrow_balance(who).unwrap()));
        out.push(format!("{:?}", net.balance(account(who)).unwrap()));
    }
    out
}

fn spec(net: &Localnet) -> JobSpec {
    JobSpec {
        module: ModuleSource::Url {
            url: "https://example.org/job.wasm".into(),
            sha256: [1; 32],
        },
        input: vec![],
        args: vec![],
        env: vec![],
        limits: JobLimits {
            memory_mib: 64,
            fuel_per_interval: 1_000,
        },
        interval_secs: 60,
        max_intervals: 10,
        max_price_per_interval: 1_000_000,
        ledger: net.ids.ledger,
        min_provider_stake: 0,
        max_retries: 0,
        callback: None,
    }
}

fn market() -> Localnet {
    let net = Localnet::deploy(Settings::default()).expect("deploy");
    net.mint(buyer(), 100 * ICP).unwrap();
    net.deposit(buyer(), 50 * ICP).unwrap();
    net.onboard_provider(provider(), principal(201), 50 * ICP)
        .unwrap();
    net
}

#[test]
fn malformed_and_oversized_arguments_are_refused_and_change_nothing() {
    let net = market();
    let before = snapshot(&net);
    let garbage: Vec<Vec<u8>> = vec![
        b"not candid at all".to_vec(),
        b"DIDL".to_vec(),
        // A well-formed message whose one argument is a ~1.9 MiB text.
        candid::encode_one("x".repeat(1_900_000)).unwrap(),
        // A deeply nested type table.
        {
            let mut v = b"DIDL\x01\x6e\x00".to_vec();
            v.extend([0x01, 0x00]);
            v.extend(std::iter::repeat_n(1u8, 100_000));
            v
        },
    ];
    let mut calls = 0;
    for (name, canister) in [
        ("registry", net.ids.registry),
        ("escrow", net.ids.escrow),
        ("matcher", net.ids.matcher),
    ] {
        let did = std::fs::read_to_string(
            market_tests::repo_root()
                .join("src")
                .join(name)
                .join(format!("{name}.did")),
        )
        .unwrap();
        for (method, query) in market_tests::did_methods(&did) {
            if query {
                continue;
            }
            for caller in [principal(66), Principal::anonymous()] {
                for arg in &garbage {
                    let r = net
                        .devnet()
                        .update_call(canister, caller, &method, arg.clone());
                    calls += 1;
                    if let Ok(reply) = r {
                        // Methods without arguments ignore what they are
                        // sent; their answer must then be an error.
                        let text = format!("{:?}", candid::IDLArgs::from_bytes(&reply));
                        assert!(
                            text.contains("Err") || text.contains("variant"),
                            "{name}.{method} accepted garbage from {caller}: {text}"
                        );
                    }
                }
            }
        }
    }
    assert!(calls > 100, "{calls} calls made");
    assert_eq!(snapshot(&net), before, "a refused call changed something");
    net.audit().unwrap();
}

#[test]
fn boundary_numbers_are_refused_cleanly() {
    let net = market();
    let ids = net.ids;
    let fee = net.settings.fee;
    net.mint(provider(), ICP).unwrap();
    net.approve(buyer(), ids.escrow, 10 * ICP).unwrap();
    net.approve(provider(), ids.registry, 10 * ICP).unwrap();
    let before = snapshot(&net);

    // (A pull deposit of 1 e8s is fine: the depositor pays the fee on top.)
    for amount in [0, u128::MAX] {
        let r: Result<Tokens, EscrowError> = net
            .update(
                ids.escrow,
                buyer(),
                "deposit",
                &DepositArgs {
                    ledger: ids.ledger,
                    amount,
                    from_subaccount: None,
                },
            )
            .unwrap();
        assert!(r.is_err(), "deposit {amount}: {r:?}");
    }
    for amount in [0, fee, u128::MAX] {
        let r: Result<Tokens, EscrowError> = net
            .update(
                ids.escrow,
                buyer(),
                "withdraw",
                &WithdrawArgs {
                    ledger: ids.ledger,
                    amount,
                    to: account(buyer()),
                },
            )
            .unwrap();
        assert!(r.is_err(), "withdraw {amount}: {r:?}");
    }
    for amount in [0u128, u128::MAX] {
        let r: Result<Nat, RegistryError> = net
            .update(ids.registry, provider(), "stake", &Nat::from(amount))
            .unwrap();
        assert!(r.is_err(), "stake {amount}: {r:?}");
        let r: Result<Unbonding, RegistryError> = net
            .update(ids.registry, provider(), "unstake", &amount)
            .unwrap();
        assert!(r.is_err(), "unstake {amount}: {r:?}");
    }
    let base = spec(&net);
    let bad_specs = [
        JobSpec {
            max_intervals: 0,
            ..base.clone()
        },
        JobSpec {
            max_intervals: u32::MAX,
            ..base.clone()
        },
        JobSpec {
            max_price_per_interval: 0,
            ..base.clone()
        },
        JobSpec {
            max_price_per_interval: u128::MAX,
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
                fuel_per_interval: u64::MAX,
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
            max_price_per_interval: 100 * ICP,
            ..base.clone()
        },
    ];
    for s in &bad_specs {
        let r: Result<JobId, MatcherError> =
            net.update(ids.matcher, buyer(), "submit_job", s).unwrap();
        assert!(
            r.is_err(),
            "accepted {:?}",
            (s.max_intervals, s.interval_secs)
        );
    }
    let offer = OfferSpec {
        slots: 1,
        memory_per_slot_mib: 64,
        max_fuel_per_interval: 1_000,
        price_per_interval: 1_000,
        ledger: ids.ledger,
        min_interval_secs: 10,
        max_interval_secs: 100,
        tags: vec![],
    };
    for bad in [
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
            min_interval_secs: 101,
            ..offer.clone()
        },
        OfferSpec {
            tags: vec!["t".into(); 17],
            ..offer.clone()
        },
    ] {
        let r: Result<u64, MatcherError> = net
            .update(ids.matcher, provider(), "post_offer", &bad)
            .unwrap();
        assert!(r.is_err(), "offer {bad:?}");
    }
    let flood: Vec<HeartbeatItem> = (0..1_001)
        .map(|i| HeartbeatItem {
            job_id: i,
            attempt: 1,
            fuel_used: u64::MAX,
        })
        .collect();
    let r: Result<Vec<HeartbeatAck>, MatcherError> = net
        .update(ids.matcher, principal(201), "heartbeat", &flood)
        .unwrap();
    assert!(r.is_err(), "a heartbeat over the batch limit");
    assert_eq!(snapshot(&net), before, "a refused call changed something");
    net.audit().unwrap();

    // The marketplace still works.
    let r: Result<JobId, MatcherError> = net
        .update(ids.matcher, buyer(), "submit_job", &base)
        .unwrap();
    r.unwrap();
}
