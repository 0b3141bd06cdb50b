//! The canisters' cycles on the whole market: the burn rate their
//! `/metrics` pages show matches what the devnet charged them; a matcher
//! that runs low shows it, freezes (every call refused with IC0207, which
//! the client library explains), and after a top-up the market goes on
//! with nothing lost, even when the freeze outlasted the jobs' deadlines;
//! a canister that runs out entirely loses its code and its state, as on
//! the IC.

mod cast;

use candid::{CandidType, Nat, Principal};
use cast::{buyer, node, provider};
use devnet::{CYCLES_LEDGER_ID, ErrorCode, RejectCode, cycles_account};
use market_api::JobId;
use market_api::matcher::{HeartbeatAck, Job, JobStatus, MatcherError, SubmitResultArgs};
use market_fixture::metrics::metric_value;
use market_fixture::{FUEL_PER_SEC, ICP, MarketFixture, Settings, admin, exited, heartbeat_item};
use std::cell::Cell;
use std::time::Duration;

const PRICE: u128 = 10_000;
/// The jobs' heartbeat interval.
const INTERVAL_SECS: u64 = 60;
/// Fuel a heartbeat reports per second the job has run: half the offer's
/// declared speed, so every report is within what the time allows.
const FUEL_RATE: u64 = FUEL_PER_SEC / 2;
/// A day in seconds.
const DAY_SECS: u128 = 86_400;

/// A market with a funded buyer and a provider offering four slots.
fn market() -> MarketFixture {
    let net = MarketFixture::deploy(Settings::default()).expect("deploy");
    net.mint(buyer(), 100 * ICP).unwrap();
    net.deposit(buyer(), 50 * ICP).unwrap();
    net.onboard_provider(provider(), node(), 50 * ICP).unwrap();
    net.post_offer(provider(), &net.offer_spec(4, PRICE))
        .unwrap();
    net
}

/// A running job: matched, its lock taken, and the first heartbeat given.
struct Running {
    id: JobId,
    started_ns: u64,
    /// When its last heartbeat was taken.
    beat_ns: Cell<u64>,
}

/// Submits `n` jobs long enough to outlast the test (100 billion fuel at
/// [`FUEL_RATE`] is over half an hour) and starts each with a heartbeat.
fn start_jobs(net: &MarketFixture, n: usize) -> Vec<Running> {
    (0..n)
        .map(|_| {
            let spec = net.url_job(INTERVAL_SECS, 100, PRICE);
            let r: Result<JobId, MatcherError> = net
                .update(net.ids.matcher, buyer(), "submit_job", &spec)
                .unwrap();
            let id = r.expect("submit_job");
            net.settle_outbox();
            let job = Running {
                id,
                started_ns: net.time_ns(),
                beat_ns: Cell::new(net.time_ns()),
            };
            assert!(
                matches!(heartbeat(net, &job), Ok(HeartbeatAck::Accepted { .. })),
                "job {id} starts"
            );
            job
        })
        .collect()
}

/// The fuel `job` has used by now.
fn fuel_by_now(net: &MarketFixture, job: &Running) -> u64 {
    (net.time_ns() - job.started_ns) / 1_000_000_000 * FUEL_RATE
}

/// The provider's node heartbeats `job`: the matcher's answer, or the
/// devnet's reject.
fn heartbeat(net: &MarketFixture, job: &Running) -> Result<HeartbeatAck, devnet::Reject> {
    let items = vec![heartbeat_item(job.id, 1, fuel_by_now(net, job))];
    let raw = candid::encode_one(&items).unwrap();
    let reply = net
        .devnet()
        .update_call(net.ids.matcher, node(), "heartbeat", raw)?;
    let acks: Result<Vec<HeartbeatAck>, MatcherError> = candid::decode_one(&reply).unwrap();
    Ok(acks.expect("a batch is answered item by item").remove(0))
}

/// Heartbeats every job whose interval has passed since its last
/// heartbeat: each must be accepted, unless the matcher refuses the
/// message itself (the first such reject is returned, after trying every
/// job due).
fn heartbeat_due(net: &MarketFixture, jobs: &[Running]) -> Result<(), devnet::Reject> {
    let mut rejected = Ok(());
    for job in jobs {
        if net.time_ns() - job.beat_ns.get() < INTERVAL_SECS * 1_000_000_000 {
            continue;
        }
        match heartbeat(net, job) {
            Ok(HeartbeatAck::Accepted { .. }) => job.beat_ns.set(net.time_ns()),
            Ok(ack) => panic!("job {}: {ack:?}", job.id),
            Err(reject) => {
                if rejected.is_ok() {
                    rejected = Err(reject);
                }
            }
        }
    }
    rejected
}

/// Moves the clock `minutes` minutes in 10 s steps (which meet the timers'
/// periods, 30 s and 5 minutes, so that they sample the balance on the steps),
/// heartbeating every job once an interval.
fn run_for(net: &MarketFixture, jobs: &[Running], minutes: u64) {
    for _ in 0..minutes * 6 {
        net.advance(Duration::from_secs(10));
        heartbeat_due(net, jobs).expect("the matcher takes heartbeats");
    }
}

/// A gauge of `canister`'s `/metrics` page, if shown.
fn gauge(net: &MarketFixture, canister: Principal, name: &str) -> Option<u128> {
    let page = net.metrics(canister).unwrap();
    metric_value(&page, name).map(|v| v as u128)
}

/// The three market canisters with their metric prefixes.
fn canisters(net: &MarketFixture) -> [(Principal, &'static str); 3] {
    [
        (net.ids.registry, "registry"),
        (net.ids.escrow, "escrow"),
        (net.ids.matcher, "matcher"),
    ]
}

/// The burn rate each canister's `/metrics` page shows, measured over its
/// own samples of its balance, is what the devnet charged it over the same
/// window: after a top-up restarts every window, twenty minutes of two
/// running jobs (heartbeats, payments through the escrow, bonds in the
/// registry, the timers, storage).
#[test]
fn the_burn_rate_on_metrics_is_what_the_canisters_burned() {
    let net = market();
    let jobs = start_jobs(&net, 2);
    // Before any samples there is a balance but no rate.
    for (id, name) in canisters(&net) {
        let balance = gauge(&net, id, &format!("{name}_cycle_balance")).unwrap();
        assert_eq!(Some(balance), net.devnet().cycle_balance(id));
        assert!(
            gauge(&net, id, &format!("{name}_cycle_balance_liquid")).unwrap() < balance,
            "{name}: the freezing threshold is not liquid"
        );
    }
    // A top-up restarts every window at the canister's next timer run:
    // within the escrow's and the registry's idle period (five minutes),
    // so no window has two samples yet when that period is over.
    for (id, _) in canisters(&net) {
        net.devnet().add_cycles(id, 1_000_000_000_000);
    }
    net.devnet().reset_cycles_burned();
    let canisters = canisters(&net);
    let window = |id, name| gauge(&net, id, &format!("{name}_cycles_burn_window_seconds"));
    // What the devnet has charged each canister since the top-up, after
    // each 10 s step of the clock and before that step's heartbeats: a
    // window's samples are read in timer runs, which run as the clock
    // reaches their time, so each edge of a window is one of these steps.
    let mut charged: Vec<(u64, [u128; 3])> = Vec::new();
    let mut last_window: [Option<u128>; 3] = [None; 3];
    let mut window_moved_at = [0u64; 3];
    const MINUTES: u64 = 25;
    let idle_steps = canister_common::timers::UPKEEP_IDLE_SECS / 10;
    for step in 0..MINUTES * 6 {
        net.advance(Duration::from_secs(10));
        let now = net.time_ns() / 1_000_000_000;
        charged.push((
            now,
            canisters.map(|(id, _)| net.devnet().cycles_burned(id).unwrap().total()),
        ));
        heartbeat_due(&net, &jobs).expect("the matcher takes heartbeats");
        for (i, (id, name)) in canisters.into_iter().enumerate() {
            let w = window(id, name);
            if step + 1 == idle_steps {
                assert_eq!(
                    gauge(&net, id, &format!("{name}_cycles_burned_per_day")),
                    None,
                    "{name}: a top-up restarts the window"
                );
            }
            if w != last_window[i] {
                (last_window[i], window_moved_at[i]) = (w, now);
            }
        }
    }
    let charged_at = |secs: u64, i: usize| {
        charged
            .iter()
            .find(|(t, _)| *t == secs)
            .unwrap_or_else(|| panic!("no step ended at {secs} s"))
            .1[i]
    };
    for (i, (id, name)) in canisters.into_iter().enumerate() {
        let rate = gauge(&net, id, &format!("{name}_cycles_burned_per_day"))
            .unwrap_or_else(|| panic!("{name} shows no burn rate"));
        let window = window(id, name).unwrap();
        let (first, last) = (window_moved_at[i] - window as u64, window_moved_at[i]);
        let burned = charged_at(last, i) - charged_at(first, i);
        let charged_per_day = burned * DAY_SECS / window;
        println!(
            "{name}: {rate} cycles/day on /metrics over {window} s; the devnet charged \
             {charged_per_day} a day over the same steps"
        );
        assert!(window >= 15 * 60, "{name}'s window spans {window} s");
        assert!(rate > 0, "{name} burns");
        // The edges differ by what the timers of a step run besides the
        // one that reads the balance.
        let diff = rate.abs_diff(charged_per_day);
        assert!(
            diff * 100 < charged_per_day,
            "{name}: {rate} a day shown, {charged_per_day} charged"
        );
        let liquid = gauge(&net, id, &format!("{name}_cycle_balance_liquid")).unwrap();
        assert_eq!(
            gauge(&net, id, &format!("{name}_cycles_days_left")),
            Some(liquid / rate)
        );
    }
}

/// The cycles ledger's `withdraw` arguments.
#[derive(CandidType)]
struct WithdrawArgs {
    amount: Nat,
    from_subaccount: Option<Vec<u8>>,
    to: Principal,
    created_at_time: Option<u64>,
}

/// Each of `jobs`, still running on its first attempt, reports its result
/// and settles with success once its challenge window closes.
fn finish(net: &MarketFixture, jobs: &[Running]) {
    for job in jobs {
        let held = net.job(job.id);
        assert_eq!(held.status, JobStatus::Running, "job {}", job.id);
        assert_eq!(held.provider, Some(provider()));
        assert_eq!(held.retries_used, 0, "job {}", job.id);
        let args = SubmitResultArgs {
            job_id: job.id,
            attempt: 1,
            result: exited(b"done", fuel_by_now(net, job)),
        };
        let r: Result<(), MatcherError> = net
            .update(net.ids.matcher, node(), "submit_result", &args)
            .unwrap();
        r.expect("the result is taken");
    }
    net.wait_secs(net.settings.challenge_window_secs + 10);
    net.settle_outbox();
    for job in jobs {
        assert_eq!(net.job(job.id).status, JobStatus::Succeeded);
    }
}

/// The operator tops `canister` up with `amount` cycles from their
/// account on the cycles ledger (as `icp canister top-up` does).
fn top_up(net: &MarketFixture, canister: Principal, amount: u128) {
    let fee = devnet::CYCLES_LEDGER_FEE;
    net.devnet()
        .mint_cycles(cycles_account(admin()), amount + fee);
    let args = WithdrawArgs {
        amount: Nat::from(amount),
        from_subaccount: None,
        to: canister,
        created_at_time: None,
    };
    let r: Result<Nat, candid::IDLValue> = net
        .update(CYCLES_LEDGER_ID, admin(), "withdraw", &args)
        .unwrap();
    r.expect("withdraw");
}

/// What every message to a frozen canister gets.
fn assert_out_of_cycles(reject: &devnet::Reject) {
    assert_eq!(
        reject.error_code,
        Some(ErrorCode::CanisterOutOfCycles),
        "{reject}"
    );
    assert_eq!(reject.code, RejectCode::SysTransient, "{reject}");
}

/// The matcher is drained to just above the line below which it can run
/// nothing (its freezing threshold plus what an update prepays) while two
/// jobs run. Its `/metrics` page shows the low balance and no days left;
/// the jobs' heartbeats burn the rest and it freezes: heartbeats and
/// buyers' calls are refused with IC0207, which the client library tells
/// its user to fix with a top-up, while the escrow goes on. The
/// operator tops it up through the cycles ledger before the jobs'
/// deadlines pass: the heartbeats are taken again, the jobs finish and
/// settle, nobody is slashed, and the books balance.
#[test]
fn a_frozen_matcher_is_topped_up_and_the_market_resumes_with_nothing_lost() {
    let net = market();
    let jobs = start_jobs(&net, 2);
    let m = net.ids.matcher;
    run_for(&net, &jobs, 10);
    let rate = gauge(&net, m, "matcher_cycles_burned_per_day").expect("a burn rate");
    let days = gauge(&net, m, "matcher_cycles_days_left").expect("days left");
    assert!(days > 30, "a fresh matcher has {days} days left");

    // One interval's burn above the line.
    net.devnet().reset_cycles_burned();
    run_for(&net, &jobs, 1);
    let interval_burn = net.devnet().cycles_burned(m).unwrap().total();
    let threshold = net.devnet().freezing_threshold_cycles(m).unwrap();
    let prepay = devnet::costs::execution_cost(net.settings.devnet.update_instruction_limit);
    let line = threshold + prepay;
    net.devnet().set_cycle_balance(m, line + interval_burn);

    let balance = gauge(&net, m, "matcher_cycle_balance").unwrap();
    let liquid = gauge(&net, m, "matcher_cycle_balance_liquid").unwrap();
    assert_eq!(balance, line + interval_burn);
    assert_eq!(liquid, prepay + interval_burn);
    assert_eq!(
        gauge(&net, m, "matcher_cycles_days_left"),
        Some(liquid / rate)
    );
    assert_eq!(liquid / rate, 0, "{liquid} cycles last less than a day");

    // The jobs go on until the matcher can no longer pay for a heartbeat.
    let mut refused = None;
    for _ in 0..30 {
        net.advance(Duration::from_secs(10));
        if let Err(reject) = heartbeat_due(&net, &jobs) {
            refused = Some(reject);
            break;
        }
    }
    let reject = refused.expect("the matcher froze");
    assert_out_of_cycles(&reject);
    assert!(net.devnet().cycle_balance(m).unwrap() < line);
    let frozen_at = net.time_ns();

    // The buyer's calls too, and the client library says what to do.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt
        .block_on(
            net.client(buyer())
                .submit_job(net.url_job(INTERVAL_SECS, 1, PRICE)),
        )
        .unwrap_err();
    let message = e.to_string();
    assert!(e.is_transient(), "{message}");
    assert!(message.contains("frozen"), "{message}");
    assert!(message.contains("top it up"), "{message}");
    println!("a buyer's submit_job to the frozen matcher: {message}");
    // Queries still answer; the escrow works on.
    assert_eq!(net.job(jobs[0].id).status, JobStatus::Running);
    net.deposit(buyer(), ICP).unwrap();
    // Nothing of the matcher's runs while frozen, its timers included
    // (only the free `canister_inspect_message` of the ingress).
    net.devnet().take_executions();
    net.advance(Duration::from_secs(10));
    assert_out_of_cycles(&heartbeat(&net, &jobs[0]).unwrap_err());
    let ran: Vec<String> = net
        .devnet()
        .take_executions()
        .into_iter()
        .filter(|e| e.canister == m && e.entry != "canister_inspect_message")
        .map(|e| e.entry)
        .collect();
    assert!(ran.is_empty(), "the frozen matcher ran {ran:?}");

    top_up(&net, m, 10_000_000_000_000);
    assert!(net.time_ns() - frozen_at < 30_000_000_000);
    heartbeat_due(&net, &jobs).expect("the matcher takes heartbeats again");
    net.advance(Duration::from_secs(30));
    assert_eq!(
        gauge(&net, m, "matcher_cycles_burned_per_day"),
        None,
        "the top-up restarted the burn rate's window"
    );
    run_for(&net, &jobs, 2);

    // The jobs finish and settle; no deadline was missed.
    finish(&net, &jobs);
    let audit = net.audit().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(audit.slashes, 0, "nobody paid for the matcher's freeze");
}

/// The matcher frozen for three minutes, longer than the jobs' interval
/// and grace: the provider's heartbeats are refused all the while, through
/// no fault of its own. After the top-up the matcher counts its deadlines
/// from the end of its outage: the jobs whose heartbeats come back are not
/// slashed, and the one whose node stays silent is slashed a grace period
/// after the outage, not before.
#[test]
fn a_matcher_frozen_past_the_deadlines_slashes_nobody_for_its_own_outage() {
    let net = market();
    let jobs = start_jobs(&net, 3);
    let (live, silent) = (&jobs[..2], &jobs[2]);
    let m = net.ids.matcher;
    run_for(&net, &jobs, 2);
    let threshold = net.devnet().freezing_threshold_cycles(m).unwrap();
    net.devnet().set_cycle_balance(m, threshold);
    let outage = Duration::from_secs(180);
    assert!(outage.as_secs() > INTERVAL_SECS + net.settings.grace_secs);
    for _ in 0..outage.as_secs() / 10 {
        net.advance(Duration::from_secs(10));
        for job in &jobs {
            assert_out_of_cycles(&heartbeat(&net, job).unwrap_err());
        }
    }

    top_up(&net, m, 10_000_000_000_000);
    // The node heartbeats what it owes for the intervals of the outage, as
    // the deadline the matcher shows it asks, until the next deadline is
    // more than a grace period away.
    let grace_ns = net.settings.grace_secs * 1_000_000_000;
    for job in live {
        let mut beats = 0;
        loop {
            let ack = heartbeat(&net, job).expect("the matcher takes heartbeats again");
            let HeartbeatAck::Accepted { next_deadline_ns } = ack else {
                panic!("job {}: {ack:?}", job.id);
            };
            beats += 1;
            if next_deadline_ns > net.time_ns() + grace_ns {
                break;
            }
            assert!(beats <= INTERVAL_SECS, "job {}: catching up ends", job.id);
        }
        job.beat_ns.set(net.time_ns());
    }
    let resumed_ns = net.time_ns();
    // Within the grace after the outage, the silent job is still held.
    net.advance(Duration::from_secs(net.settings.grace_secs - 10));
    assert_eq!(net.job(silent.id).status, JobStatus::Running);
    assert_eq!(net.audit().unwrap_or_else(|e| panic!("{e}")).slashes, 0);
    run_for(&net, live, 2);

    let audit = net.audit().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(audit.slashes, 1, "only the silent job's holder is slashed");
    let dropped = net.job(silent.id);
    assert_eq!(
        dropped.status,
        JobStatus::Failed,
        "the silent job, with no retries"
    );
    assert!(net.time_ns() > resumed_ns + net.settings.grace_secs * 1_000_000_000);
    finish(&net, live);
    let audit = net.audit().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        audit.slashes, 1,
        "the silent job's holder only: nobody paid for the matcher's freeze"
    );
}

/// A canister that cannot pay for its storage loses its code and every
/// byte of its state, as the IC uninstalls it: calls find no module (the
/// client says so), and installing the module again gives an empty
/// matcher that knows nothing of the job whose funds the escrow still
/// holds. Only the operator's watch on the days left prevents it.
#[test]
fn a_matcher_that_runs_out_entirely_loses_its_state() {
    let net = market();
    let jobs = start_jobs(&net, 1);
    let m = net.ids.matcher;
    let per_day = net
        .devnet()
        .canister_status(m)
        .unwrap()
        .idle_cycles_burned_per_day;
    let per_day = u128::try_from(per_day.0).unwrap();
    net.devnet().set_cycle_balance(m, per_day / 24);
    net.advance(Duration::from_secs(2 * 3_600));
    assert_eq!(net.devnet().cycle_balance(m), Some(0));
    assert_eq!(net.devnet().module_hash(m), None);
    assert_eq!(net.devnet().stable_memory_size(m), Some(0));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt
        .block_on(net.client(buyer()).get_job(jobs[0].id))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no module installed"), "{e}");

    // Its code can be installed again, but its state is gone, while the
    // escrow still holds the job's funds under its lock.
    net.devnet().add_cycles(m, 10_000_000_000_000);
    let wasm = market_fixture::canister_wasm("matcher").unwrap();
    net.devnet()
        .install_canister(m, &wasm, matcher_init(&net), admin())
        .unwrap();
    let job: Option<Job> = net.query(m, "get_job", &jobs[0].id).unwrap();
    assert_eq!(job, None, "the matcher's state is lost");
    let lock: Option<market_api::escrow::JobLock> = net
        .query(net.ids.escrow, "get_lock", &format!("job/{}", jobs[0].id))
        .unwrap();
    assert!(lock.is_some(), "the escrow still holds the job's funds");
}

/// The matcher's init argument as the market fixture deploys it.
fn matcher_init(net: &MarketFixture) -> Vec<u8> {
    let init = market_fixture::matcher_init(&net.ids, &net.settings, None);
    candid::encode_one(init).unwrap()
}
