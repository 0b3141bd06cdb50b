//! The audit's cross-canister checks catch what they are there for. A
//! stranger is made the registry's (or the escrow's) matcher by the
//! controller, so that it can do what the real matcher never should: slash
//! one missed deadline a second time, slash a deadline that was never
//! missed, lock a buyer's funds for a job the matcher doesn't have. Each
//! time the audit, which passed just before, names the fault.

mod cast;

use candid::Principal;
use cast::{buyer, node, provider};
use market_api::blocks::LogArchivingStatus;
use market_api::escrow::{EscrowError, EscrowInit, JobLock, LockArgs, NotifyDepositArgs};
use market_api::matcher::{Job, JobStatus, MatcherError, OfferSpec};
use market_api::registry::{
    RegistryConfig, RegistryConfigUpdate, RegistryError, SlashArgs, SlashOutcome,
};
use market_api::{Account, JobId, Tokens};
use market_fixture::{ICP, MarketFixture, Settings, admin, principal};

const PRICE: Tokens = 1_000_000;

/// Who the controller wrongly names as the matcher.
fn impostor() -> Principal {
    principal(0x51)
}

/// A market where one job was assigned, missed its first deadline and was
/// slashed by the matcher (its value times the slash multiple); the audit
/// passes. Returns the job's id.
fn slashed_job() -> (MarketFixture, JobId) {
    slashed_job_in(Settings::default())
}

/// [`slashed_job`] in a market deployed with `settings`.
fn slashed_job_in(settings: Settings) -> (MarketFixture, JobId) {
    let net = MarketFixture::deploy(settings).expect("deploy");
    net.mint(buyer(), 100 * ICP).unwrap();
    net.deposit(buyer(), 50 * ICP).unwrap();
    net.onboard_provider(provider(), node(), 50 * ICP).unwrap();
    net.post_offer(
        provider(),
        &OfferSpec {
            currency: None,
            slots: 1,
            memory_per_slot_mib: 256,
            max_fuel_per_interval: 1_000_000,
            price_per_gfuel: PRICE,
            fuel_per_sec: market_fixture::FUEL_PER_SEC,
            price_per_interval: PRICE,
            ledger: net.ids.ledger,
            min_interval_secs: 1,
            max_interval_secs: 3_600,
            tags: vec![],
            audits: None,
        },
    )
    .unwrap();
    // A budget of 4 billion fuel at PRICE per billion: the job is worth
    // 4 x PRICE, and a missed deadline costs `slash_multiple` times that.
    let spec = net.url_job(30, 4, PRICE);
    let r: Result<JobId, MatcherError> = net
        .update(net.ids.matcher, buyer(), "submit_job", &spec)
        .unwrap();
    let id = r.unwrap();
    // The provider never heartbeats: the deadline (interval plus grace)
    // passes, the job fails and the provider is slashed.
    net.wait_secs(30 + net.settings.grace_secs + 10);
    net.settle_outbox();
    let job: Option<Job> = net.query(net.ids.matcher, "get_job", &id).unwrap();
    assert_eq!(job.unwrap().status, JobStatus::Failed);
    let audit = net.audit().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(audit.slashes, 1);
    assert_eq!(
        audit.slashed,
        4 * PRICE * u128::from(net.settings.slash_multiple)
    );
    (net, id)
}

/// The controller makes the impostor the registry's matcher.
fn impostor_may_slash(net: &MarketFixture) {
    let r: Result<RegistryConfig, RegistryError> = net
        .update(
            net.ids.registry,
            admin(),
            "update_config",
            &RegistryConfigUpdate {
                matcher: Some(impostor()),
                ..Default::default()
            },
        )
        .unwrap();
    r.unwrap();
}

/// The impostor slashes the provider under `key`, paying the buyer.
fn slash(net: &MarketFixture, key: String) {
    let args = SlashArgs {
        key,
        provider: provider(),
        beneficiary: Account {
            owner: net.ids.escrow,
            subaccount: market_api::escrow::deposit_subaccount(buyer()),
        },
        amount: PRICE * 5,
        reason: "impostor".into(),
    };
    let r: Result<SlashOutcome, RegistryError> = net
        .update(net.ids.registry, impostor(), "slash", &args)
        .unwrap();
    assert!(r.unwrap().slashed > 0);
}

/// A second slash of job `id`'s first deadline, made by an impostor,
/// fails the next audit as a double slash. The registry dedups on the key,
/// so another spelling of the same deadline's key takes the stake again.
fn second_slash_is_caught(net: &MarketFixture, id: JobId) {
    impostor_may_slash(net);
    slash(net, format!("job/{id}/slash/01"));
    let e = net.audit_in_flight().unwrap_err().to_string();
    assert!(
        e.contains(&format!("job {id} attempt 1 slashed twice")),
        "{e}"
    );
}

#[test]
fn a_second_slash_of_one_deadline_is_caught_at_once() {
    let (net, id) = slashed_job();
    net.audit_in_flight().unwrap_or_else(|e| panic!("{e}"));
    second_slash_is_caught(&net, id);
}

#[test]
fn a_slash_the_matcher_never_recorded_is_caught_once_quiet() {
    let (net, id) = slashed_job();
    impostor_may_slash(&net);
    slash(&net, format!("job/{id}/slash/9"));
    // Mid-flight the matcher may not have recorded a slash it asked for
    // yet; once quiet, every slash must be one it recorded.
    net.audit_in_flight().unwrap_or_else(|e| panic!("{e}"));
    let notify = NotifyDepositArgs {
        ledger: net.ids.ledger,
        beneficiary: buyer(),
    };
    let r: Result<Tokens, EscrowError> = net
        .update(net.ids.escrow, buyer(), "notify_deposit", &notify)
        .unwrap();
    r.unwrap();
    let e = net.audit().unwrap_err().to_string();
    assert!(
        e.contains(&format!("slash job/{id}/slash/9")) && e.contains("the matcher never recorded"),
        "{e}"
    );
}

#[test]
fn an_escrow_lock_without_a_matcher_job_is_caught_at_once() {
    let (net, id) = slashed_job();
    let before = net.escrow_balance(buyer()).unwrap();
    let wasm = market_fixture::canister_wasm("escrow").unwrap();
    let arg = candid::encode_one(Some(EscrowInit {
        matcher: Some(impostor()),
        ledgers: vec![],
        governance: None,
    }))
    .unwrap();
    net.devnet()
        .upgrade_canister(net.ids.escrow, &wasm, arg, admin())
        .unwrap();
    let orphan = id + 1_000;
    let r: Result<JobLock, EscrowError> = net
        .update(
            net.ids.escrow,
            impostor(),
            "lock",
            &LockArgs {
                job_key: format!("job/{orphan}"),
                buyer: buyer(),
                ledger: net.ids.ledger,
                amount: ICP,
                stored_bytes: None,
            },
        )
        .unwrap();
    r.unwrap();
    assert_eq!(net.escrow_balance(buyer()).unwrap().free, before.free - ICP);
    // The books still balance (the lock is a liability like any other), so
    // only the lock check sees the buyer's funds held for nothing.
    net.audit_ledger().unwrap();
    let e = net.audit_in_flight().unwrap_err().to_string();
    assert!(
        e.contains(&format!("lock job/{orphan} holds {ICP} of {}'s", buyer()))
            && e.contains("the matcher doesn't have"),
        "{e}"
    );
    assert!(net.audit().is_err());
}

/// With every canister's event log archived down to a few local blocks,
/// the audit reads the archived events from the archives and still finds
/// the books whole, and still catches a second slash of one deadline.
#[test]
fn the_audit_reads_archived_events_and_still_catches_faults() {
    const KEEP: u64 = 2;
    let (net, id) = slashed_job_in(Settings {
        archive_logs: Some(KEEP),
        ..Settings::default()
    });
    net.wait_secs(canister_common::archiving::ARCHIVE_PERIOD_SECS + 5);
    for canister in [net.ids.registry, net.ids.escrow, net.ids.matcher] {
        let status: LogArchivingStatus = net.query(canister, "get_log_archiving", &()).unwrap();
        assert_eq!(status.last_error, None);
        assert_eq!(
            status.log_length - status.first_local_index,
            KEEP,
            "{canister}: {status:?}"
        );
        assert!(status.first_local_index > 0, "{canister}: {status:?}");
    }
    let audit = net.audit().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(audit.slashes, 1);
    assert_eq!(
        audit.slashed,
        4 * PRICE * u128::from(net.settings.slash_multiple)
    );
    // The first slash is archived by now; a second one of the same
    // deadline must still be caught.
    second_slash_is_caught(&net, id);
}
