//! An SNS DAO buys capacity through proposals, on the devnet with the real
//! .wasm files: a stand-in for the DAO's governance canister
//! (`sns-governance-standin`) calls the matcher's validators when proposals
//! are made and its targets when they are executed, with the raw Candid
//! payload bytes, exactly as SNS governance does.
//!
//! The DAO funds its escrow balance from its treasury (transfer + notify),
//! reserves two slots, names a delegate whose jobs run in them, sees the
//! slots heartbeated and paid, a silent provider slashed and its slot
//! matched anew, extends, cancels (settling), and withdraws. Validators
//! refuse bad payloads and insufficient funds with reasons voters can read
//! and change nothing; targets check again and reject, failing the
//! proposal; callers other than a registered DAO are refused. The
//! conservation audit passes at the end.
//!
//! Needs `scripts/build-canisters.sh` first.

mod common;

use candid::{CandidType, Deserialize, Principal};
use common::{Net, node, provider};
use market_api::escrow::{Balance, EscrowError, JobLock, NotifyDepositArgs, WithdrawArgs};
use market_api::matcher::{
    Assignment, CancelReservationArgs, ExtendReservationArgs, HeartbeatAck, Job, JobKind, JobSpec,
    JobStatus, MatcherError, MatcherEvent, Reservation, ReservationSpec, ReservationStatus,
    ReservedJobArgs, SetDelegatesArgs, SubmitResultArgs,
};
use market_api::sns::{ExecuteGenericNervousSystemFunction, SNS_ACTIONS, SnsAction, function};
use market_api::{EventPage, JobId, PageRequest, Tokens};
use market_fixture::metrics::metric_value;
use market_fixture::{
    ICP, MarketFixture, Settings, account, admin, exited, heartbeat_items, principal,
};

const PRICE: Tokens = 1_000_000;
const INTERVAL: u64 = 60;

fn delegate() -> Principal {
    principal(9)
}
fn stranger() -> Principal {
    principal(10)
}

#[derive(CandidType, Deserialize, Debug, Clone, PartialEq)]
enum ProposalStatus {
    Open,
    Executed,
    Failed(String),
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct Proposal {
    id: u64,
    function_id: u64,
    status: ProposalStatus,
    rendering: String,
    payload: serde_bytes::ByteBuf,
}

/// The example client canister's record of a delivered result.
#[derive(CandidType, Deserialize, Debug)]
struct Delivery {
    notice: market_api::matcher::JobNotice,
    #[serde(with = "serde_bytes")]
    output: Vec<u8>,
}

/// The marketplace and the DAO's governance canister.
struct Dao {
    net: Net,
    gov: Principal,
}

impl std::ops::Deref for Dao {
    type Target = Net;
    fn deref(&self) -> &Net {
        &self.net
    }
}

impl Dao {
    /// The marketplace, three providers offering one slot each (1, 1.2 and
    /// 1.5 times PRICE), and a DAO with 100 ICP in its treasury whose
    /// governance registered the matcher's six functions (ids 1000..).
    fn new() -> Dao {
        let net = Net::deploy(Settings::default());
        for (n, price) in [(1, PRICE), (2, PRICE * 6 / 5), (3, PRICE * 3 / 2)] {
            net.onboard_provider(provider(n), node(n), 100 * ICP)
                .unwrap();
            net.post_offer(provider(n), &net.offer_spec(1, price))
                .unwrap();
        }
        let gov = net.deploy_sns_dao("Example DAO", 100 * ICP).unwrap();
        let dao = Dao { net, gov };
        for (i, action) in SNS_ACTIONS.iter().enumerate() {
            let f = function(dao.ids.matcher, action, 1000 + i as u64);
            let r: Result<(), String> = dao.update(dao.gov, admin(), "add_function", &f).unwrap();
            r.unwrap();
        }
        dao
    }

    /// Makes a proposal with raw payload bytes: governance asks the validator.
    fn propose_raw(&self, function_id: u64, payload: Vec<u8>) -> Result<u64, String> {
        let arg = ExecuteGenericNervousSystemFunction {
            function_id,
            payload,
        };
        self.update(self.gov, admin(), "submit_proposal", &arg)
            .unwrap()
    }

    fn propose(&self, action: &SnsAction) -> Result<u64, String> {
        let id = 1000
            + SNS_ACTIONS
                .iter()
                .position(|a| *a == action.name())
                .unwrap() as u64;
        self.propose_raw(id, action.payload())
    }

    /// Executes an adopted proposal: governance calls the target.
    fn execute(&self, proposal: u64) -> Result<(), String> {
        let r = self
            .update(self.gov, admin(), "execute_proposal", &proposal)
            .unwrap();
        self.settle_outbox();
        r
    }

    fn proposal(&self, id: u64) -> Proposal {
        let p: Option<Proposal> = self.query(self.gov, "get_proposal", &id).unwrap();
        p.unwrap()
    }

    fn adopt(&self, action: &SnsAction) -> Proposal {
        let id = self
            .propose(action)
            .unwrap_or_else(|e| panic!("{action:?}: {e}"));
        self.execute(id)
            .unwrap_or_else(|e| panic!("{action:?}: {e}"));
        self.proposal(id)
    }

    fn balance(&self, who: Principal) -> Balance {
        self.escrow_balance(who).unwrap()
    }

    fn reservation(&self, id: JobId) -> Reservation {
        let r: Option<Reservation> = self
            .query(self.ids.matcher, "get_reservation", &id)
            .unwrap();
        r.unwrap()
    }

    /// A job as its owner sees it (contents included).
    fn job(&self, id: JobId) -> Job {
        let j: Option<Job> = self.query(self.ids.matcher, "get_job", &id).unwrap();
        let owner = j.unwrap().owner;
        let j: Option<Job> = self
            .devnet()
            .query(self.ids.matcher, owner, "get_job", &id)
            .unwrap();
        j.unwrap()
    }

    fn assignments(&self, n: u8) -> Vec<Assignment> {
        self.net.assignments(provider(n)).unwrap()
    }

    fn event_count(&self) -> u64 {
        let page: EventPage<MatcherEvent> = self
            .query(
                self.ids.matcher,
                "get_events",
                &PageRequest {
                    start: None,
                    limit: Some(1),
                },
            )
            .unwrap();
        page.total
    }

    /// Provider `n` heartbeats everything it holds.
    fn heartbeat_all(&self, n: u8) -> Vec<HeartbeatAck> {
        let items = heartbeat_items(&self.assignments(n), 0);
        let acks: Result<Vec<HeartbeatAck>, MatcherError> = self
            .update(self.ids.matcher, node(n), "heartbeat", &items)
            .unwrap();
        self.settle_outbox();
        acks.unwrap()
    }

    fn lease(&self, slots: u32, intervals: u32) -> ReservationSpec {
        ReservationSpec {
            currency: None,
            slots,
            memory_mib: 128,
            fuel_per_interval: 1_000_000,
            interval_secs: INTERVAL,
            intervals,
            max_price_per_interval: 2 * PRICE,
            ledger: self.ids.ledger,
            min_provider_stake: 0,
            max_rematches: 3,
            delegates: vec![],
            service: None,
        }
    }
}

/// A job of 5 billion fuel with a deadline of five intervals and a retry;
/// its price is ignored in a reservation, whose slots pay.
fn job_spec(net: &MarketFixture) -> JobSpec {
    JobSpec {
        input: b"input".to_vec(),
        deadline_secs: Some(5 * INTERVAL),
        max_retries: 1,
        ..net.url_job(INTERVAL, 5, 0)
    }
}

#[test]
fn a_dao_funds_reserves_delegates_runs_jobs_extends_cancels_and_withdraws() {
    let dao = Dao::new();
    let fee = dao.settings.fee;

    // An unregistered DAO can't even make a proposal.
    let other = dao.deploy_sns_dao("Other", 0).unwrap();
    let r: Result<(), MatcherError> = dao
        .update(
            dao.ids.matcher,
            admin(),
            "deregister_dao",
            &market_api::matcher::DaoRegistration {
                governance: other,
                name: String::new(),
            },
        )
        .unwrap();
    r.unwrap();
    let f = function(dao.ids.matcher, "reserve", 1000);
    let _: Result<(), String> = dao.update(other, admin(), "add_function", &f).unwrap();
    let arg = ExecuteGenericNervousSystemFunction {
        function_id: 1000,
        payload: SnsAction::Reserve(dao.lease(1, 1)).payload(),
    };
    let refused: Result<u64, String> = dao.update(other, admin(), "submit_proposal", &arg).unwrap();
    assert!(
        refused
            .unwrap_err()
            .contains("not a registered SNS governance canister"),
        "unregistered DAOs are refused"
    );

    // Treasury -> the escrow's deposit account for the DAO, then notify.
    dao.treasury_to_escrow(dao.gov, (20 * ICP) as u64, 42)
        .unwrap();
    let credited: Result<Tokens, EscrowError> = dao
        .update(
            dao.ids.escrow,
            stranger(),
            "notify_deposit",
            &NotifyDepositArgs {
                ledger: dao.ids.ledger,
                beneficiary: dao.gov,
            },
        )
        .unwrap();
    assert_eq!(
        credited.unwrap(),
        20 * ICP - fee,
        "credited by balance, less the sweep fee"
    );
    let funded = dao.balance(dao.gov).free;

    // Validators refuse bad payloads and insufficient funds, changing nothing.
    let events = dao.event_count();
    let err = dao.propose(&SnsAction::Reserve(ReservationSpec {
        slots: 0,
        ..dao.lease(2, 10)
    }));
    assert!(
        err.unwrap_err().contains("invalid slots"),
        "a readable reason"
    );
    let err = dao
        .propose(&SnsAction::Reserve(ReservationSpec {
            max_price_per_interval: ICP,
            ..dao.lease(2, 100)
        }))
        .unwrap_err();
    assert!(err.contains("insufficient funds"), "{err}");
    assert!(
        err.contains("TransferSnsTreasuryFunds"),
        "says how to fund: {err}"
    );
    assert!(dao.propose_raw(1000, b"not candid".to_vec()).is_err());
    let wrong_type = SnsAction::Cancel(CancelReservationArgs { reservation: 1 }).payload();
    assert!(
        dao.propose_raw(1000, wrong_type).is_err(),
        "a payload of another action"
    );
    assert_eq!(dao.event_count(), events, "validators change nothing");
    assert_eq!(dao.balance(dao.gov).free, funded);

    // Reserve two slots for 10 intervals at up to 2 x PRICE.
    let lease = dao.lease(2, 10);
    let p = dao.adopt(&SnsAction::Reserve(lease.clone()));
    assert_eq!(p.status, ProposalStatus::Executed);
    assert!(p.rendering.contains("Reserve 2 slot(s)"), "{}", p.rendering);
    assert!(
        p.rendering.contains("Maximum total cost: 0.4 ICP"),
        "{}",
        p.rendering
    );
    assert!(p.rendering.contains("Example DAO"), "{}", p.rendering);
    let list = dao.reservations_of(dao.gov).unwrap();
    assert_eq!(list.len(), 1);
    let rid = list[0].id;
    let r = dao.reservation(rid);
    assert_eq!(
        (r.owner, r.status, r.locked),
        (dao.gov, ReservationStatus::Active, 40 * PRICE)
    );
    assert_eq!(dao.balance(dao.gov).locked, 40 * PRICE);
    assert_eq!(
        r.slots.iter().map(|s| s.provider).collect::<Vec<_>>(),
        vec![Some(provider(1)), Some(provider(2))]
    );
    let slots: Vec<JobId> = r.slots.iter().map(|s| s.job_id).collect();
    let metrics = dao.metrics(dao.ids.matcher).unwrap();
    for (series, value) in [
        ("matcher_reservations", 1.0),
        ("matcher_reserved_slots_held", 2.0),
    ] {
        assert_eq!(metric_value(&metrics, series), Some(value), "{metrics}");
    }

    // Someone other than governance calling a target is refused (rejected).
    let rejected = dao
        .update::<_, String>(dao.ids.matcher, stranger(), "sns_reserve", &lease)
        .unwrap_err()
        .to_string();
    assert!(
        rejected.contains("not a registered SNS governance canister"),
        "{rejected}"
    );
    let v: Result<String, String> = dao
        .update(dao.ids.matcher, stranger(), "sns_validate_reserve", &lease)
        .unwrap();
    assert!(
        v.unwrap_err()
            .contains("not a registered SNS governance canister")
    );

    // A delegate is named by proposal and runs a job in a slot, paying nothing.
    let p = dao.adopt(&SnsAction::SetDelegates(SetDelegatesArgs {
        reservation: rid,
        add: vec![delegate()],
        remove: vec![],
    }));
    assert!(p.rendering.contains(&delegate().to_text()));
    assert_eq!(dao.reservation(rid).spec.delegates, vec![delegate()]);
    let not_yet: Result<JobId, MatcherError> = dao
        .update(
            dao.ids.matcher,
            stranger(),
            "submit_reserved_job",
            &ReservedJobArgs {
                reservation: rid,
                spec: job_spec(&dao),
            },
        )
        .unwrap();
    assert!(matches!(not_yet, Err(MatcherError::Unauthorized { .. })));
    let delegate_free = dao.balance(delegate()).free;
    let job: Result<JobId, MatcherError> = dao
        .update(
            dao.ids.matcher,
            delegate(),
            "submit_reserved_job",
            &ReservedJobArgs {
                reservation: rid,
                spec: job_spec(&dao),
            },
        )
        .unwrap();
    let job = job.unwrap();
    let a = dao.assignments(1);
    assert_eq!(
        a.len(),
        2,
        "provider 1 holds its slot and runs the job in it"
    );
    assert!(a.iter().any(|a| a.job_id == slots[0]
        && a.kind
            == JobKind::ReservedSlot {
                reservation: rid,
                slot: 0
            }));
    assert!(a.iter().any(|a| a.job_id == job && a.price == 0));

    // The matcher is upgraded with the reservation live; nothing is lost.
    let wasm = market_fixture::canister_wasm("matcher").unwrap();
    dao.devnet()
        .upgrade_canister(
            dao.ids.matcher,
            &wasm,
            candid::encode_args(()).unwrap(),
            admin(),
        )
        .unwrap();
    assert_eq!(dao.reservation(rid).slots.len(), 2);
    assert_eq!(dao.assignments(1).len(), 2);

    // Both providers acknowledge; a minute later each slot is paid.
    for n in [1, 2] {
        assert!(
            dao.heartbeat_all(n)
                .iter()
                .all(|a| matches!(a, HeartbeatAck::Accepted { .. }))
        );
    }
    dao.wait_secs(INTERVAL - 5);
    for n in [1, 2] {
        dao.heartbeat_all(n);
    }
    assert_eq!(dao.reservation(rid).paid, PRICE + PRICE * 6 / 5);
    assert_eq!(dao.balance(provider(1)).claimable, PRICE);
    let result = SubmitResultArgs {
        job_id: job,
        attempt: 1,
        result: exited(b"42", 5),
    };
    let r: Result<(), MatcherError> = dao
        .update(dao.ids.matcher, node(1), "submit_result", &result)
        .unwrap();
    r.unwrap();
    dao.settle_outbox();
    let done = dao.job(job);
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result.unwrap().output, b"42");
    assert_eq!(
        dao.balance(delegate()).free,
        delegate_free,
        "the delegate paid nothing"
    );

    // Provider 2 goes silent: slashed, and its slot is matched with provider 3.
    for _ in 0..3 {
        dao.wait_secs(INTERVAL - 5);
        dao.heartbeat_all(1);
    }
    let r = dao.reservation(rid);
    assert_eq!(
        r.slots[1].provider,
        Some(provider(3)),
        "the slot was matched anew"
    );
    assert_eq!(r.slots[1].rematches, 1);
    assert!(
        dao.balance(dao.gov).free > funded - 40 * PRICE,
        "the slash compensates the DAO"
    );
    dao.heartbeat_all(3);

    // The DAO's app canister (the example client) becomes a delegate; its
    // job runs in a slot and the result comes back by callback.
    let app_owner = principal(11);
    let app = dao.deploy_example_client(app_owner).unwrap();
    dao.adopt(&SnsAction::SetDelegates(SetDelegatesArgs {
        reservation: rid,
        add: vec![app],
        remove: vec![],
    }));
    let (submitted,): (Result<JobId, String>,) = dao
        .update_args(app, app_owner, "submit_reserved", (rid, job_spec(&dao)))
        .unwrap();
    let app_job = submitted.unwrap();
    let holder = (1..=3)
        .find(|n| dao.assignments(*n).iter().any(|a| a.job_id == app_job))
        .expect("the app's job runs in a held slot");
    dao.heartbeat_all(holder);
    let result = SubmitResultArgs {
        job_id: app_job,
        ..result
    };
    let r: Result<(), MatcherError> = dao
        .update(dao.ids.matcher, node(holder), "submit_result", &result)
        .unwrap();
    r.unwrap();
    dao.settle_outbox();
    let delivered: Vec<Delivery> = dao
        .query(app, "deliveries", &PageRequest::default())
        .unwrap();
    assert_eq!(
        delivered
            .iter()
            .map(|d| (d.notice.job_id, d.notice.status, d.output.clone()))
            .collect::<Vec<_>>(),
        vec![(app_job, JobStatus::Succeeded, b"42".to_vec())]
    );

    // Extend by 5 intervals: 2 live slots x 5 x 2 x PRICE more locked.
    let locked = dao.balance(dao.gov).locked;
    let p = dao.adopt(&SnsAction::Extend(ExtendReservationArgs {
        reservation: rid,
        intervals: 5,
    }));
    assert!(
        p.rendering.contains("Maximum added cost: 0.2 ICP"),
        "{}",
        p.rendering
    );
    assert_eq!(dao.balance(dao.gov).locked, locked + 20 * PRICE);
    assert_eq!(dao.reservation(rid).spec.intervals, 15);
    let lock: Option<JobLock> = dao
        .query(dao.ids.escrow, "get_lock", &format!("job/{rid}"))
        .unwrap();
    assert_eq!(lock.unwrap().total, 60 * PRICE);

    // A proposal valid when made but not when executed fails: the target
    // checks again and rejects.
    let late = dao
        .propose(&SnsAction::Extend(ExtendReservationArgs {
            reservation: rid,
            intervals: 1,
        }))
        .unwrap();

    // Cancel: the slots end, intervals heartbeated stay paid, the rest returns.
    let p = dao.adopt(&SnsAction::Cancel(CancelReservationArgs {
        reservation: rid,
    }));
    assert!(
        p.rendering.contains("Cancel reservation"),
        "{}",
        p.rendering
    );
    let r = dao.reservation(rid);
    assert_eq!(r.status, ReservationStatus::Cancelled);
    let b = dao.balance(dao.gov);
    assert_eq!(b.locked, 0);
    assert!(dao.execute(late).is_err());
    assert!(matches!(
        dao.proposal(late).status,
        ProposalStatus::Failed(_)
    ));
    assert_eq!(
        dao.balance(dao.gov),
        b,
        "the failed proposal changed nothing"
    );

    // A one-off job by proposal, paid from the balance.
    let mut one_off = job_spec(&dao);
    one_off.max_price_per_gfuel = 2 * PRICE;
    let p = dao.adopt(&SnsAction::SubmitJob(one_off));
    assert!(p.rendering.contains("Run a one-off job"), "{}", p.rendering);
    // Voters read the storage fee (one ledger fee for a small job), and
    // the DAO's balance pays it.
    assert!(
        p.rendering
            .contains("of which 0.0001 ICP is the storage fee, paid even if the job is cancelled"),
        "{}",
        p.rendering
    );
    let jobs = dao.jobs_of(dao.gov).unwrap();
    assert!(
        jobs.iter()
            .any(|j| j.kind == JobKind::OneOff && j.owner == dao.gov)
    );

    // Withdraw 1 ICP to the treasury by proposal.
    let before = dao.net.balance(account(dao.gov)).unwrap();
    let p = dao.adopt(&SnsAction::Withdraw(WithdrawArgs {
        ledger: dao.ids.ledger,
        amount: ICP,
        to: account(dao.gov),
    }));
    assert_eq!(p.status, ProposalStatus::Executed);
    assert_eq!(
        dao.net.balance(account(dao.gov)).unwrap(),
        before + ICP - fee
    );
    let too_much = dao.propose(&SnsAction::Withdraw(WithdrawArgs {
        ledger: dao.ids.ledger,
        amount: 1_000 * ICP,
        to: account(dao.gov),
    }));
    assert!(too_much.unwrap_err().contains("insufficient funds"));

    dao.net.audit().unwrap_or_else(|e| panic!("{e}"));
}

/// An extension whose escrow answer is lost must not leave the escrow
/// holding more than the matcher knows of: the extension is recorded before
/// the call and retried through the outbox with the same number until the
/// escrow answers, and it applies once.
#[test]
fn an_extension_whose_answer_is_lost_is_retried_and_applied_once() {
    let dao = Dao::new();
    let buyer = principal(1);
    dao.mint(buyer, 10 * ICP).unwrap();
    dao.deposit(buyer, 5 * ICP).unwrap();
    let r: Result<JobId, MatcherError> = dao
        .update(dao.ids.matcher, buyer, "reserve", &dao.lease(1, 4))
        .unwrap();
    let rid = r.unwrap();
    dao.settle_outbox();
    dao.devnet().inject_fault(devnet::Fault::new(
        dao.ids.escrow,
        devnet::FaultKind::Timeout,
        1,
    ));
    let ext = ExtendReservationArgs {
        reservation: rid,
        intervals: 2,
    };
    let r: Result<(), MatcherError> = dao
        .update(dao.ids.matcher, buyer, "extend_reservation", &ext)
        .unwrap();
    r.unwrap();
    dao.wait_secs(10);
    dao.settle_outbox();
    let r = dao.reservation(rid);
    let lock: Option<JobLock> = dao
        .query(dao.ids.escrow, "get_lock", &format!("job/{rid}"))
        .unwrap();
    assert_eq!((r.spec.intervals, r.locked), (6, 12 * PRICE));
    assert_eq!(
        lock.unwrap().total,
        12 * PRICE,
        "applied once, known to both"
    );
    let cancel: Result<(), MatcherError> = dao
        .update(
            dao.ids.matcher,
            buyer,
            "cancel_reservation",
            &CancelReservationArgs { reservation: rid },
        )
        .unwrap();
    cancel.unwrap();
    dao.settle_outbox();
    dao.net.audit().unwrap_or_else(|e| panic!("{e}"));
}
