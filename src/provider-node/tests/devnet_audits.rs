//! Audits on the devnet, with real daemons running the real workloads and
//! one of them cheating. Three providers offer one slot each; provider `n`
//! asks `n` × [`PRICE`], so a job goes to the cheapest free one, its audit
//! run to the cheapest that did not run it, and a tie-break to the third.
//! The cheat is a real daemon whose results are rewritten on their way to
//! the matcher ([`test_world::cheat`]): a different output (with its own
//! sha256) or more fuel than the run used.
//!
//! Shown: a wrong output and an inflated fuel count are caught (the
//! result is overturned, the cheat slashed its bond and paid nothing, the
//! buyer gets the honest result, both auditors paid); a lying auditor
//! loses the tie-break; a buyer's dispute of an honest result pays the
//! auditor and changes nothing else; honest providers with differently
//! set-up sandboxes are never slashed by an audit of the workloads; and
//! pending pay becomes claimable only when the challenge window closes.
//!
//! The devnet's clock runs at 50× real time; a test reads the market's
//! state with the clock paused ([`World::until_paused`]) where a window
//! would otherwise move on.
//!
//! Needs the canisters and workloads built: `scripts/build-canisters.sh`,
//! `scripts/build-workloads.sh`.

use std::time::Duration;

use candid::Principal;
use market_api::JobId;
use market_api::Tokens;
use market_api::escrow::{Balance, WithdrawArgs};
use market_api::matcher::{
    AUDIT_ALWAYS_PPM, AuditVerdict, GFUEL, Job, JobAudit, JobKind, JobResult, JobSpec, JobStatus,
    MatcherEvent, RunOutcome, fuel_cost,
};
use market_fixture::{ICP, account, node, provider};
use provider_node::daemon::Summary;
use provider_node::sandbox::SandboxConfig;
use sha2::Digest;
use test_world::cheat::{Cheat, FORGED_OUTPUT, cheating_daemon, inflated_fuel};
use test_world::{DaemonSetup, World, one_slot_offer, spawn};

/// Per billion fuel, asked by provider 1 (provider `n` asks `n` times it).
const PRICE: Tokens = ICP;
/// The fuel budget of the buyer's jobs: several times what the heaviest
/// workload needs.
const BUDGET: u64 = GFUEL / 10;
const INTERVAL: u64 = 20;
/// Each attempt's deadline: ample on a busy machine (6 s of real time).
const DEADLINE_SECS: u64 = 300;
/// Stake each provider puts up.
const STAKE: Tokens = 100 * ICP;

/// What the buyer's sha256sum jobs read: 20 kB, some 1.6 million fuel of
/// hashing.
fn input() -> Vec<u8> {
    (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// The honest output of the sha256sum workload on [`input`].
fn honest_output() -> Vec<u8> {
    format!("{}\n", hex::encode(sha2::Sha256::digest(input()))).into_bytes()
}

fn buyer() -> Principal {
    market_fixture::principal(0xB1)
}

/// The sandbox of the daemons that don't say otherwise.
fn sandbox() -> SandboxConfig {
    test_world::test_sandbox()
}

/// The marketplace with providers 1, 2, ... (node key `node(n)`, asking
/// `n` × `price`), each with a running daemon.
struct Market {
    w: World,
    price: Tokens,
    daemons: Vec<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Summary>,
    )>,
    _dirs: Vec<tempfile::TempDir>,
}

impl std::ops::Deref for Market {
    type Target = World;

    fn deref(&self) -> &World {
        &self.w
    }
}

impl Market {
    /// `sandboxes[n - 1]` is provider `n`'s sandbox; `cheat` names the one
    /// provider that lies, and how.
    fn new(sandboxes: Vec<SandboxConfig>, cheat: Option<(u8, Cheat)>, price: Tokens) -> Self {
        let w = World::funded(test_world::settings(), buyer());
        let mut m = Market {
            w,
            price,
            daemons: vec![],
            _dirs: vec![],
        };
        for (i, sandbox) in sandboxes.into_iter().enumerate() {
            let n = i as u8 + 1;
            let cheat = cheat
                .filter(|(cheater, _)| *cheater == n)
                .map(|(_, how)| how);
            m.add_provider(n, sandbox, cheat);
        }
        m.w.start_clock();
        m
    }

    /// Registers, stakes and offers provider `n` (one slot at `n` × the
    /// price) and starts its daemon, lying as `cheat` says if it does.
    fn add_provider(&mut self, n: u8, sandbox: SandboxConfig, cheat: Option<Cheat>) {
        let w = &self.w;
        w.onboard(
            provider(n),
            node(n),
            &one_slot_offer(64, Tokens::from(n) * self.price, w.ids.ledger),
        );
        let dir = tempfile::tempdir().unwrap();
        let setup = DaemonSetup {
            provider: provider(n),
            state_dir: dir.path(),
            shutdown_grace: Duration::from_secs(5),
            max_job_time: Duration::from_secs(120),
        };
        let client = w.client(node(n));
        self.daemons.push(match cheat {
            Some(how) => spawn(cheating_daemon(client, setup, sandbox, how).0),
            None => spawn(test_world::daemon_with_sandbox(client, setup, sandbox).0),
        });
        self._dirs.push(dir);
    }

    /// Three providers with the default sandbox asking from [`PRICE`];
    /// `cheat` as in [`Market::new`].
    fn three(cheat: Option<(u8, Cheat)>) -> Self {
        Self::new(vec![sandbox(), sandbox(), sandbox()], cheat, PRICE)
    }

    /// The buyer runs the workload `name` on `input` with `args`: a budget
    /// of `budget` at up to three times provider 1's price, audited with
    /// probability `audit_ppm`.
    async fn submit(
        &self,
        name: &str,
        (input, args): (Vec<u8>, Vec<String>),
        budget: u64,
        audit_ppm: Option<u32>,
    ) -> JobId {
        let wasm = std::fs::read(market_artifacts::workload_dir().join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("{name}: {e}; run scripts/build-workloads.sh"));
        let sha = self.upload_wasm(wasm).await;
        self.buyer
            .submit_job(JobSpec {
                input,
                args,
                audit_ppm,
                deadline_secs: Some(DEADLINE_SECS),
                ..self.stored_job(sha, INTERVAL, budget, 3 * self.price)
            })
            .await
            .unwrap()
    }

    /// [`Market::submit`] of the sha256sum workload on [`input`].
    async fn sha256sum(&self, budget: u64, audit_ppm: Option<u32>) -> JobId {
        self.submit("sha256sum", (input(), vec![]), budget, audit_ppm)
            .await
    }

    /// Stops every daemon (they hold nothing by then) and waits for them.
    async fn stop_daemons(&mut self) {
        for (stop, task) in self.daemons.drain(..) {
            let _ = stop.send(());
            task.await.unwrap();
        }
    }

    /// Waits, with the clock paused, until job `id`'s audit has a verdict.
    async fn verdict(&self, id: JobId) -> Job {
        self.until_paused(id, "an audit verdict", |j| {
            j.audit.as_ref().is_some_and(|a| a.verdict.is_some())
        })
        .await
    }

    /// Lets the matcher's outbox deliver what the last steps decided (the
    /// escrow's releases), checking the job's window stays open meanwhile.
    fn settle_within_window(&self, job: &Job) {
        self.net.settle_outbox();
        let closes = job.window_closes_at_ns.expect("the window is open");
        assert!(
            self.net.time_ns() < closes,
            "the settling outlasted the challenge window"
        );
    }

    /// Closes every open window: more than the challenge window of devnet
    /// time, with the clock's thread stopped.
    fn close_windows(&self) {
        self.stop_clock();
        self.net
            .wait_secs(self.net.settings.challenge_window_secs + 5);
    }

    fn balance(&self, who: Principal) -> Balance {
        self.net.escrow_balance(who).unwrap()
    }

    /// What provider `n` has earned in the escrow: (claimable, pending).
    fn earned(&self, n: u8) -> (Tokens, Tokens) {
        let b = self.balance(provider(n));
        (b.claimable, b.pending)
    }

    /// Job `id`'s record as the buyer sees it now.
    async fn get(&self, id: JobId) -> Job {
        self.job(id).await
    }
}

/// The honest result of a sha256sum job on [`input`], whatever fuel it
/// used.
fn assert_honest(result: &JobResult) {
    assert_eq!(result.outcome, RunOutcome::Exited { code: 0 });
    assert_eq!(result.output, honest_output());
    let sha: [u8; 32] = sha2::Sha256::digest(honest_output()).into();
    assert_eq!(result.output_sha256, sha);
    assert!(result.fuel_used > 0);
}

/// What `events` paid provider `who` for job `id`'s fuel (pending pay).
fn fuel_paid(events: &[MatcherEvent], id: JobId, who: Principal) -> Tokens {
    events
        .iter()
        .filter_map(|e| match e {
            MatcherEvent::FuelPaid {
                job_id,
                provider: p,
                amount,
                ..
            } if *job_id == id && *p == who => Some(*amount),
            _ => None,
        })
        .sum()
}

/// Whether `events` say provider `p` forfeited its pending pay for job
/// `id`.
fn forfeited(events: &[MatcherEvent], id: JobId, p: Principal) -> bool {
    events.iter().any(|e| {
        matches!(e, MatcherEvent::PayForfeited { job_id, provider, .. }
            if *job_id == id && *provider == p)
    })
}

/// The `ResultRejected` events of the log: (job, provider, attempt, slashed).
fn rejected(events: &[MatcherEvent]) -> Vec<(JobId, Principal, u32, Tokens)> {
    events
        .iter()
        .filter_map(|e| match e {
            MatcherEvent::ResultRejected {
                job_id,
                provider,
                attempt,
                slashed,
            } => Some((*job_id, *provider, *attempt, *slashed)),
            _ => None,
        })
        .collect()
}

/// The fuel job `id`'s results reported, in order (the job's and any run's
/// each in its own event).
fn reported_fuel(events: &[MatcherEvent], id: JobId) -> Vec<(Principal, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            MatcherEvent::ResultReported {
                job_id,
                provider,
                fuel_used,
                ..
            } if *job_id == id => Some((*provider, *fuel_used)),
            _ => None,
        })
        .collect()
}

/// The verdicts the log announced, in order.
fn verdicts(events: &[MatcherEvent]) -> Vec<(JobId, AuditVerdict)> {
    events
        .iter()
        .filter_map(|e| match e {
            MatcherEvent::AuditSettled { job_id, verdict } => Some((*job_id, *verdict)),
            _ => None,
        })
        .collect()
}

/// The bond of a run at `price` of a [`BUDGET`] job: its value times the
/// bond multiple (at audit probability 1 the value itself is less).
fn bond(m: &Market, price: Tokens) -> Tokens {
    fuel_cost(BUDGET, price).unwrap() * Tokens::from(m.net.settings.bond_multiple)
}

/// A provider whose own result provider `cheat` lied in is caught by the
/// two honest providers' runs: verdict Overturned, the cheat slashed its
/// bond and paid nothing, the buyer given the honest result, both auditors
/// paid once the window closes. Returns the market and the job, closed.
async fn a_lie_in_the_result_is_overturned(cheat: Cheat) -> (Market, Job) {
    let mut m = Market::three(Some((1, cheat)));
    let id = m.sha256sum(BUDGET, Some(AUDIT_ALWAYS_PPM)).await;
    let job = m.verdict(id).await;
    let audit = job.audit.clone().unwrap();
    assert_eq!(audit.verdict, Some(AuditVerdict::Overturned), "{job:?}");
    assert!(!audit.disputed);
    assert_eq!(audit.runs.len(), 2, "a re-run and a tie-break: {audit:?}");
    assert_eq!(job.status, JobStatus::Reported, "its window runs on");
    assert_eq!(job.provider, Some(provider(1)), "the cheat ran the job");
    let result = job.result.clone().expect("the majority's result");
    assert_honest(&result);
    let fuel = result.fuel_used;
    // The draw picked the re-run's provider among 2 and 3; the other
    // broke the tie.
    let mut auditors = vec![];
    for run in &audit.runs {
        let r = m.get(*run).await;
        assert_eq!(r.kind, JobKind::Audit { of: id });
        assert_eq!(r.status, JobStatus::Succeeded);
        assert_eq!(r.result.as_ref(), Some(&result), "the honest runs agree");
        auditors.extend(r.provider);
    }
    auditors.sort();
    assert_eq!(auditors, vec![provider(2), provider(3)]);
    let events = m.matcher_events();
    let slashed = bond(&m, PRICE);
    assert_eq!(rejected(&events), vec![(id, provider(1), 1, slashed)]);
    assert_eq!(verdicts(&events), vec![(id, AuditVerdict::Overturned)]);
    assert!(
        fuel_paid(&events, id, provider(1)) > 0,
        "the cheat's result earned pending pay"
    );
    assert!(forfeited(&events, id, provider(1)), "and forfeited it");

    // Until the window closes the auditors' pay is pending; the cheat
    // has none.
    m.settle_within_window(&job);
    let pay2 = fuel_cost(fuel, 2 * PRICE).unwrap();
    let pay3 = fuel_cost(fuel, 3 * PRICE).unwrap();
    assert!(pay2 > 0 && pay3 > 0);
    let b = m.balance(provider(1));
    assert_eq!(
        (b.pending, b.claimable),
        (0, 0),
        "the cheat's pay forfeited"
    );
    let b = m.balance(provider(2));
    assert_eq!(
        (b.pending, b.claimable),
        (pay2, 0),
        "the re-run's pay, pending"
    );
    let b = m.balance(provider(3));
    assert_eq!(
        (b.pending, b.claimable),
        (pay3, 0),
        "the tie-break's pay, pending"
    );

    m.stop_daemons().await;
    m.close_windows();
    let job = m.get(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(
        job.result.as_ref(),
        Some(&result),
        "the buyer has the honest output"
    );
    assert_eq!(m.balance(provider(1)), zero(&m));
    assert_eq!(m.earned(2), (pay2, 0));
    assert_eq!(m.earned(3), (pay3, 0));

    let audit = m.audit();
    assert_eq!(audit.slashed, slashed, "the registry took the cheat's bond");
    let cheat = m.provider(provider(1));
    assert_eq!(cheat.stake.free + cheat.stake.bonded, STAKE - slashed);
    assert_eq!(cheat.slashed_total, slashed);
    assert_eq!(cheat.record.audits_failed, 1);
    assert_eq!(cheat.record.audits_passed, 0);
    assert_eq!(cheat.record.slashes, 1);
    assert_eq!(
        cheat.record.jobs_completed, 0,
        "an overturned job is not completed"
    );
    for n in [2u8, 3] {
        let p = m.provider(provider(n));
        assert_eq!(p.slashed_total, 0);
        assert_eq!(p.stake.free, STAKE);
        assert_eq!(p.record.jobs_completed, 1, "provider {n}'s run counted");
        assert_eq!(p.record.audits_failed, 0);
    }
    (m, job)
}

/// A provider's balance holding nothing.
fn zero(m: &Market) -> Balance {
    Balance {
        ledger: m.ids.ledger,
        free: 0,
        claimable: 0,
        locked: 0,
        pending: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_output_is_overturned_and_its_provider_slashed() {
    let (m, job) = a_lie_in_the_result_is_overturned(Cheat::WrongOutput).await;
    // The cheat reported the real fuel; only its output was forged.
    let fuel = job.result.as_ref().unwrap().fuel_used;
    assert_eq!(
        reported_fuel(&m.matcher_events(), job.id),
        vec![(provider(1), fuel)]
    );
    assert_ne!(job.result.unwrap().output, FORGED_OUTPUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_inflated_fuel_count_is_overturned_and_its_provider_slashed() {
    let (m, job) = a_lie_in_the_result_is_overturned(Cheat::InflatedFuel).await;
    let fuel = job.result.as_ref().unwrap().fuel_used;
    let lie = inflated_fuel(fuel, BUDGET);
    assert!(lie > fuel);
    assert_eq!(
        reported_fuel(&m.matcher_events(), job.id),
        vec![(provider(1), lie)],
        "the cheat reported more fuel than the honest runs used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lying_auditor_loses_the_tie_break() {
    // Two providers: the honest one runs the job, so the liar audits it.
    let mut m = Market::new(
        vec![sandbox(), sandbox()],
        Some((2, Cheat::WrongOutput)),
        PRICE,
    );
    let id = m.sha256sum(BUDGET, Some(AUDIT_ALWAYS_PPM)).await;
    // They disagree: the tie-break waits in the book for a third provider.
    let started = |m: &Market| {
        m.matcher_events()
            .iter()
            .filter(|e| matches!(e, MatcherEvent::AuditStarted { job_id, .. } if *job_id == id))
            .count()
    };
    for _ in 0..2_000 {
        if started(&m) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(started(&m), 2, "a re-run and a tie-break");
    m.add_provider(3, sandbox(), None);
    let job = m.verdict(id).await;
    let audit = job.audit.clone().unwrap();
    assert_eq!(audit.verdict, Some(AuditVerdict::Agreed), "{job:?}");
    assert_eq!(audit.runs.len(), 2, "a re-run and a tie-break: {audit:?}");
    assert_eq!(job.provider, Some(provider(1)), "an honest provider ran it");
    let result = job.result.clone().expect("the result stands");
    assert_honest(&result);
    let fuel = result.fuel_used;
    let liar = m.get(audit.runs[0]).await;
    assert_eq!(liar.provider, Some(provider(2)));
    assert_eq!(liar.status, JobStatus::Failed, "the lying run lost");
    let tie = m.get(audit.runs[1]).await;
    assert_eq!(tie.provider, Some(provider(3)));
    assert_eq!(tie.status, JobStatus::Succeeded);
    assert_eq!(tie.result.as_ref(), Some(&result));
    let events = m.matcher_events();
    let slashed = bond(&m, 2 * PRICE);
    assert_eq!(
        rejected(&events),
        vec![(audit.runs[0], provider(2), 1, slashed)]
    );
    assert_eq!(verdicts(&events), vec![(id, AuditVerdict::Agreed)]);

    m.settle_within_window(&job);
    let pay1 = fuel_cost(fuel, PRICE).unwrap();
    let pay3 = fuel_cost(fuel, 3 * PRICE).unwrap();
    assert_eq!(m.balance(provider(1)).pending, pay1);
    assert_eq!(m.balance(provider(2)), zero(&m), "the liar is paid nothing");
    assert_eq!(m.balance(provider(3)).pending, pay3);

    m.stop_daemons().await;
    m.close_windows();
    let job = m.get(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.result.as_ref(), Some(&result));
    assert_eq!(m.earned(1), (pay1, 0));
    assert_eq!(m.balance(provider(2)), zero(&m));
    assert_eq!(m.earned(3), (pay3, 0));

    let audit = m.audit();
    assert_eq!(audit.slashed, slashed);
    let liar = m.provider(provider(2));
    assert_eq!(liar.stake.free + liar.stake.bonded, STAKE - slashed);
    assert_eq!(liar.slashed_total, slashed);
    assert_eq!(liar.record.audits_failed, 1);
    assert_eq!(liar.record.slashes, 1);
    let original = m.provider(provider(1));
    assert_eq!(original.slashed_total, 0);
    assert_eq!(original.record.audits_passed, 1);
    assert_eq!(original.record.audits_failed, 0);
    assert_eq!(original.record.jobs_completed, 1);
    let tie_breaker = m.provider(provider(3));
    assert_eq!(tie_breaker.slashed_total, 0);
    assert_eq!(tie_breaker.record.jobs_completed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dispute_of_an_honest_result_pays_the_auditor_and_changes_nothing_else() {
    // Audited with probability one in a million, the job's bond is a
    // million times its value: a small budget at a low price keeps it
    // within the providers' stake.
    let price = 2_000_000;
    let budget = 4_000_000;
    let bond = fuel_cost(budget, price).unwrap() * 1_000_000;
    assert!(bond <= STAKE && bond > STAKE / 2, "{bond}");
    // Two providers: the one that runs the job and its auditor.
    let mut m = Market::new(vec![sandbox(), sandbox()], None, price);
    let free_before = m.balance(buyer()).free;
    let id = m.sha256sum(budget, Some(1)).await;
    let before = m
        .until_paused(id, "a result the draw passed", |j| {
            j.status == JobStatus::Reported && j.audit.is_none() && j.result.is_some()
        })
        .await;
    assert_eq!(before.audit, None, "the draw did not audit it");
    assert_eq!(before.provider, Some(provider(1)));
    let result = before.result.clone().unwrap();
    assert_honest(&result);
    let fuel = result.fuel_used;
    let pay1 = fuel_cost(fuel, price).unwrap();
    assert_eq!(before.paid, pay1);
    m.buyer
        .dispute_job(id)
        .await
        .expect("the buyer disputes the result");
    m.resume_clock();

    let job = m.verdict(id).await;
    let audit = job.audit.clone().unwrap();
    assert_eq!(
        audit,
        JobAudit {
            disputed: true,
            drawing: false,
            verdict: Some(AuditVerdict::Agreed),
            runs: audit.runs.clone(),
        }
    );
    assert_eq!(audit.runs.len(), 1, "the re-run agreed: no tie-break");
    let run = m.get(audit.runs[0]).await;
    assert_eq!(run.provider, Some(provider(2)));
    assert_eq!(run.result.as_ref(), Some(&result));
    assert_eq!(job.result.as_ref(), Some(&result), "the same result");
    assert_eq!(job.provider, Some(provider(1)));
    m.settle_within_window(&job);
    let pay2 = fuel_cost(fuel, 2 * price).unwrap();
    assert_eq!(m.balance(provider(1)).pending, pay1, "the same pay");
    assert_eq!(m.balance(provider(2)).pending, pay2, "the auditor's pay");

    m.stop_daemons().await;
    m.close_windows();
    let job = m.get(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.result.as_ref(), Some(&result));
    assert_eq!(job.paid, pay1 + pay2);
    assert_eq!(m.earned(1), (pay1, 0));
    assert_eq!(m.earned(2), (pay2, 0));
    assert_eq!(
        m.balance(buyer()).free,
        free_before - pay1 - pay2 - m.net.settings.fee,
        "the buyer paid the job, the audit it asked for and the storage fee"
    );

    let events = m.matcher_events();
    assert_eq!(rejected(&events), vec![]);
    assert_eq!(verdicts(&events), vec![(id, AuditVerdict::Agreed)]);
    let audit = m.audit();
    assert_eq!(audit.slashed, 0);
    for n in 1..=2u8 {
        let p = m.provider(provider(n));
        assert_eq!(p.slashed_total, 0, "provider {n}");
        assert_eq!(p.record.audits_failed, 0);
        assert_eq!(p.stake.free, STAKE);
    }
    assert_eq!(m.provider(provider(1)).record.audits_passed, 1);
}

/// Whether an outcome is how a workload ends.
type Ends = fn(&RunOutcome) -> bool;

/// The workloads that run as one-off jobs: a name, its input, its args
/// and how it ends. The jobs of `devnet_determinism.rs`, and the hostile
/// workloads the sandbox stops (all but `sleeper`, whose end depends on
/// the wall clock): their outcome and fuel are committed to as well.
fn workloads() -> Vec<(&'static str, Vec<u8>, Vec<String>, Ends)> {
    let input: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let exit_0: Ends = |o| *o == RunOutcome::Exited { code: 0 };
    vec![
        ("clock-random", vec![], vec![], exit_0),
        ("floats", vec![], vec![], exit_0),
        ("sha256sum", input.clone(), vec![], exit_0),
        ("echo", input, vec![], exit_0),
        (
            "cpu-kernel",
            vec![],
            vec!["float".into(), "40".into()],
            exit_0,
        ),
        (
            "cpu-kernel",
            vec![],
            vec!["mem".into(), "50000".into()],
            exit_0,
        ),
        ("memory-bomb", vec![], vec![], |o| {
            *o == RunOutcome::OutOfMemory
        }),
        ("recursion", vec![], vec![], |o| {
            matches!(o, RunOutcome::Trap { .. })
        }),
        ("output-flood", vec![], vec![], |o| {
            *o == RunOutcome::OutputTooLarge
        }),
        ("sandbox-escape", vec![], vec![], exit_0),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn honest_providers_are_never_slashed_by_an_audit_of_the_workloads() {
    let cache = tempfile::tempdir().unwrap();
    let pooled_and_cached = SandboxConfig {
        pooling: true,
        cache_dir: Some(cache.path().to_path_buf()),
        ..sandbox()
    };
    let plain = SandboxConfig {
        pooling: false,
        cache_dir: None,
        ..sandbox()
    };
    let mut m = Market::new(vec![pooled_and_cached, plain], None, PRICE);
    let mut ids = vec![];
    for (name, input, args, ends) in workloads() {
        let id = m
            .submit(name, (input, args), BUDGET, Some(AUDIT_ALWAYS_PPM))
            .await;
        ids.push((name, id, ends));
    }
    for (name, id, ends) in &ids {
        let job = m
            .until(*id, "an audit verdict", |j| {
                j.audit.as_ref().is_some_and(|a| a.verdict.is_some())
            })
            .await;
        let audit = job.audit.unwrap();
        assert_eq!(
            audit.verdict,
            Some(AuditVerdict::Agreed),
            "{name}: {audit:?}"
        );
        assert_eq!(audit.runs.len(), 1, "{name}: the re-run agreed");
        let r = job.result.expect("a result");
        assert!(ends(&r.outcome), "{name}: {:?}", r.outcome);
        let run = m.get(audit.runs[0]).await;
        assert_ne!(
            run.provider, job.provider,
            "{name}: audited by the other provider"
        );
        assert_eq!(run.result, Some(r), "{name}");
    }
    m.stop_daemons().await;
    m.close_windows();
    let events = m.matcher_events();
    assert_eq!(rejected(&events), vec![], "no result was rejected");
    let mut settled = verdicts(&events);
    settled.sort_by_key(|(id, _)| *id);
    let agreed: Vec<_> = ids
        .iter()
        .map(|(_, id, _)| (*id, AuditVerdict::Agreed))
        .collect();
    assert_eq!(settled, agreed, "one verdict per job, each Agreed");
    let audit = m.audit();
    assert_eq!(audit.slashed, 0);
    assert_eq!(audit.slashes, 0);
    let mut passed = 0;
    for n in 1..=2u8 {
        let p = m.provider(provider(n));
        assert_eq!(p.slashed_total, 0, "provider {n}");
        assert_eq!(p.record.audits_failed, 0, "provider {n}");
        assert_eq!(p.record.slashes, 0, "provider {n}");
        passed += p.record.audits_passed;
    }
    assert_eq!(passed, ids.len() as u64, "every job's audit passed");
    for (name, id, ends) in &ids {
        let ok = ends(&RunOutcome::Exited { code: 0 });
        let status = if ok {
            JobStatus::Succeeded
        } else {
            JobStatus::Failed
        };
        assert_eq!(m.get(*id).await.status, status, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_pay_becomes_claimable_only_when_the_window_closes() {
    let mut m = Market::three(None);
    let id = m.sha256sum(BUDGET, None).await;
    let job = m
        .until_paused(id, "a result", |j| j.status == JobStatus::Reported)
        .await;
    assert_eq!(job.audit, None, "not audited");
    assert_eq!(job.provider, Some(provider(1)));
    let result = job.result.clone().unwrap();
    assert_honest(&result);
    let bill = fuel_cost(result.fuel_used, PRICE).unwrap();
    assert!(
        bill > m.net.settings.fee,
        "enough to withdraw: fuel {}",
        result.fuel_used
    );
    m.settle_within_window(&job);
    let b = m.balance(provider(1));
    assert_eq!(
        (b.pending, b.claimable),
        (bill, 0),
        "pending while the window is open"
    );
    let withdraw = WithdrawArgs {
        ledger: m.ids.ledger,
        amount: bill,
        to: account(provider(1)),
    };
    let early = m
        .client(provider(1))
        .escrow_withdraw(withdraw.clone())
        .await;
    assert!(early.is_err(), "pending pay can't be withdrawn: {early:?}");

    m.stop_daemons().await;
    m.close_windows();
    assert_eq!(m.get(id).await.status, JobStatus::Succeeded);
    let b = m.balance(provider(1));
    assert_eq!(
        (b.pending, b.claimable),
        (0, bill),
        "claimable once it closed"
    );
    let held = m.net.balance(account(provider(1))).unwrap();
    m.client(provider(1))
        .escrow_withdraw(withdraw)
        .await
        .expect("the provider withdraws its pay");
    assert_eq!(
        m.net.balance(account(provider(1))).unwrap(),
        held + bill - m.net.settings.fee
    );
    m.audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_heartbeats_but_never_reports_is_paid_nothing_and_slashed() {
    let mut m = Market::new(vec![sandbox()], Some((1, Cheat::NoResult)), PRICE);
    let free_before = m.balance(buyer()).free;
    let id = m.sha256sum(BUDGET, None).await;
    let job = m
        .until(id, "failed at its deadline", |j| j.status.is_terminal())
        .await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.paid, 0, "nothing of its pay stays with the job");
    let events = m.matcher_events();
    assert!(
        fuel_paid(&events, id, provider(1)) > 0,
        "its heartbeats earned pending pay"
    );
    assert!(forfeited(&events, id, provider(1)), "and it forfeited it");
    let slashed: Tokens = events
        .iter()
        .filter_map(|e| match e {
            MatcherEvent::DeadlineMissed {
                job_id, slashed, ..
            } if *job_id == id => Some(*slashed),
            _ => None,
        })
        .sum();
    assert!(slashed > 0, "slashed at the result's deadline");
    m.stop_daemons().await;
    assert_eq!(m.balance(provider(1)), zero(&m), "paid nothing");
    assert_eq!(m.provider(provider(1)).slashed_total, slashed);
    // The buyer lost only the storage fee, and got the slash.
    let storage_fee =
        market_api::escrow::storage_fee(m.net.settings.fee, input().len() as u64).unwrap();
    assert_eq!(
        m.balance(buyer()).free,
        free_before - storage_fee + slashed - 2 * m.net.settings.fee,
        "the whole lock back, the slash less the ledger's fees for paying it out"
    );
    m.audit();
}
