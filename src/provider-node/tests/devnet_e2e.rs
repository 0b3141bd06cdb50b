//! End to end on the devnet: the real ledger, registry, escrow and matcher
//! `.wasm` files (via `market-fixture`), provider daemons talking to them through
//! the devnet transport, a buyer uploading a module and submitting jobs
//! through the same typed client. Time is driven by the test at about 50×
//! real time, so heartbeats must be scheduled by IC time to land.
//!
//! Needs the canisters built: `scripts/build-canisters.sh`.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use candid::Principal;
use market_api::matcher::{GFUEL, Job, JobLimits, JobSpec, JobStatus, RunOutcome, fuel_cost};
use market_api::{JobId, Tokens};
use market_client::MarketClient;
use market_client::transport::{Call, Transport, TransportError};
use market_fixture::jobs::HELLO;
use market_fixture::{DevnetTransport, node, provider};

use provider_node::daemon::Daemon;
use provider_node::daemon::metrics::Metrics;
use test_world::count;
use test_world::{DaemonSetup, HoldResults, World, one_slot_offer, spawn};

/// Per billion fuel (and per interval of a reserved slot): large enough
/// that a slash exceeds the ledger fee.
const PRICE: Tokens = 100_000;
/// The fuel budget of the buyer's jobs: more than the countdown needs.
const BUDGET: u64 = 10 * GFUEL;
const INTERVAL: u64 = 20;

fn buyer() -> Principal {
    market_fixture::principal(0xB1)
}

/// The shared [`World`] as these tests use it: providers `n` (node key
/// `node(n)`), their daemons, and the buyer's jobs.
struct Scene(World);

impl Deref for Scene {
    type Target = World;

    fn deref(&self) -> &World {
        &self.0
    }
}

impl Scene {
    /// The marketplace (10 s grace) with a buyer holding 50 ICP in escrow.
    fn new() -> Self {
        let w = World::funded(test_world::settings(), buyer());
        Scene(w)
    }

    /// Registers, stakes and offers provider `n` (one slot) at `price`.
    fn provider(&self, n: u8, price: Tokens) {
        self.onboard(
            provider(n),
            node(n),
            &one_slot_offer(64, price, self.ids.ledger),
        );
    }

    /// The marketplace of [`Scene::new`] with provider 1 offering a slot at
    /// [`PRICE`], provider 2 at twice that, and a state directory for each
    /// one's daemon.
    fn with_two_providers() -> (Self, [tempfile::TempDir; 2]) {
        let w = Scene::new();
        w.provider(1, PRICE);
        w.provider(2, 2 * PRICE);
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        (w, dirs)
    }

    /// A daemon for provider `n` signing as its node, with its own sandbox.
    fn daemon(&self, n: u8, state_dir: &std::path::Path) -> (Daemon<DevnetTransport>, Metrics) {
        self.daemon_with_grace(n, state_dir, Duration::from_secs(10))
    }

    fn daemon_with_grace(
        &self,
        n: u8,
        state_dir: &std::path::Path,
        shutdown_grace: Duration,
    ) -> (Daemon<DevnetTransport>, Metrics) {
        let transport = self.net.transport(node(n));
        self.daemon_over(n, transport, state_dir, shutdown_grace)
    }

    /// A daemon for provider `n` calling through `transport`.
    fn daemon_over<T: Transport + Clone>(
        &self,
        n: u8,
        transport: T,
        state_dir: &std::path::Path,
        shutdown_grace: Duration,
    ) -> (Daemon<T>, Metrics) {
        test_world::daemon(
            MarketClient::new(transport, self.ids),
            DaemonSetup {
                provider: provider(n),
                state_dir,
                shutdown_grace,
                max_job_time: Duration::from_secs(120),
            },
        )
    }

    /// The buyer submits a job on the stored module `sha`: [`BUDGET`] at up
    /// to twice [`PRICE`], two retries.
    async fn submit(&self, sha: [u8; 32]) -> JobId {
        self.buyer
            .submit_job(JobSpec {
                max_retries: 2,
                ..self.stored_job(sha, INTERVAL, BUDGET, 2 * PRICE)
            })
            .await
            .unwrap()
    }
}

fn stdout_of(job: &Job) -> Vec<u8> {
    job.result
        .as_ref()
        .map(|r| r.output.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_run_heartbeats_pay_and_a_killed_provider_is_slashed_and_replaced() {
    let (w, dirs) = Scene::with_two_providers();
    let (d1, m1) = w.daemon(1, dirs[0].path());
    let (d2, _m2) = w.daemon(2, dirs[1].path());
    let (stop1, task1) = spawn(d1);
    let (stop2, task2) = spawn(d2);
    w.start_clock();

    // A quick job on the cheaper provider.
    let hello = w.upload(HELLO).await;
    let id = w.submit(hello).await;
    let job = w
        .until(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    // The daemon counts a result once it has read what the result paid,
    // just after the matcher took it.
    for _ in 0..500 {
        if m1.jobs_completed.get() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(m1.jobs_completed.get(), 1, "ran by the cheaper provider");
    assert_eq!(stdout_of(&job), b"hello\n");
    let result = job.result.unwrap();
    assert_eq!(result.outcome, RunOutcome::Exited { code: 0 });
    assert_eq!(job.fuel_reported, result.fuel_used);
    assert_eq!(
        job.paid,
        fuel_cost(result.fuel_used, PRICE).unwrap(),
        "the fuel used, at the cheaper provider's price"
    );
    assert_eq!(m1.fuel_paid.get(), result.fuel_used);

    // A longer job: provider 1 takes it, acknowledges and heartbeats, then
    // dies without a word.
    let count = w.upload(&count()).await;
    let id = w.submit(count).await;
    w.until(id, "running on provider 1", |j| {
        j.status == JobStatus::Running && j.provider == Some(provider(1))
    })
    .await;
    assert!(m1.heartbeats_sent.get() >= 1);
    drop(stop1);
    task1.abort();
    let _ = task1.await;
    // The matcher slashes it at the deadline and provider 2 finishes the job.
    let job = w
        .until(id, "succeeded on provider 2", |j| {
            j.status == JobStatus::Succeeded
        })
        .await;
    assert_eq!(job.retries_used, 1);
    assert_eq!(stdout_of(&job), b"done\n");

    let _ = stop2.send(());
    let summary2 = task2.await.unwrap();
    assert_eq!(summary2.results_submitted, 1, "provider 2 finished the job");
    let audit = w.audit();
    assert_eq!(audit.slashes, 1);
    assert!(audit.released > 0);
    // The slash is paid out by the matcher's outbox, settled by now.
    let p1 = w
        .net
        .query::<_, Option<market_api::registry::Provider>>(
            w.ids.registry,
            "get_provider",
            &provider(1),
        )
        .unwrap()
        .unwrap();
    assert!(p1.slashed_total > 0, "the silent provider was slashed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_restarted_mid_job_resumes_it_and_reports_it_once() {
    let w = Scene::new();
    w.provider(1, PRICE);
    let dir = tempfile::tempdir().unwrap();
    let (d1, _) = w.daemon(1, dir.path());
    let (stop, task) = spawn(d1);
    w.start_clock();
    let count = w.upload(&count()).await;
    let id = w.submit(count).await;
    w.until(id, "running", |j| j.status == JobStatus::Running)
        .await;
    // Crash: the process and its sandbox vanish mid-job.
    drop(stop);
    task.abort();
    let _ = task.await;
    // A new process with the same state directory picks the job up again.
    let (d1, m1) = w.daemon(1, dir.path());
    let (stop, task) = spawn(d1);
    let job = w
        .until(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    assert_eq!(job.retries_used, 0, "never slashed nor reassigned");
    assert_eq!(stdout_of(&job), b"done\n");
    let _ = stop.send(());
    let summary = task.await.unwrap();
    assert_eq!(summary.results_submitted, 1, "reported once");
    assert_eq!(m1.heartbeats_refused.get(), 0);
    let audit = w.audit();
    assert_eq!(audit.slashes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_shutting_down_hands_its_job_back_without_a_slash() {
    let (w, dirs) = Scene::with_two_providers();
    let (d1, _) = w.daemon_with_grace(1, dirs[0].path(), Duration::from_millis(100));
    let (d2, _) = w.daemon(2, dirs[1].path());
    let (stop1, task1) = spawn(d1);
    let (stop2, task2) = spawn(d2);
    w.start_clock();
    let count = w.upload(&count()).await;
    let id = w.submit(count).await;
    w.until(id, "running on provider 1", |j| {
        j.status == JobStatus::Running && j.provider == Some(provider(1))
    })
    .await;
    // Maintenance: the node is asked to stop; its grace is too short to
    // finish, so it cancels the run and hands the job back.
    let _ = stop1.send(());
    let summary1 = task1.await.unwrap();
    assert_eq!(summary1.handed_back, 1, "{summary1:?}");
    let job = w
        .until(id, "succeeded on provider 2", |j| {
            j.status == JobStatus::Succeeded
        })
        .await;
    assert_eq!(job.retries_used, 0, "a hand-back uses no retry");
    assert_eq!(stdout_of(&job), b"done\n");
    let _ = stop2.send(());
    task2.await.unwrap();
    let audit = w.audit();
    assert_eq!(audit.slashes, 0, "nobody was slashed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reserved_slot_is_held_idle_or_busy_and_runs_a_delegates_job() {
    use market_api::matcher::{MatcherError, ReservationSpec, ReservationStatus, ReservedJobArgs};
    let w = Scene::new();
    w.provider(1, PRICE);
    let delegate = market_fixture::principal(0xD1);
    let hello = w.upload(HELLO).await;
    let rid = w.reserve(&ReservationSpec {
        currency: None,
        slots: 1,
        memory_mib: 16,
        fuel_per_interval: 1_000_000_000,
        interval_secs: INTERVAL,
        intervals: 50,
        max_price_per_interval: 2 * PRICE,
        ledger: w.ids.ledger,
        min_provider_stake: 0,
        max_rematches: 1,
        delegates: vec![delegate],
        service: None,
    });
    let reservation = |w: &World| w.reservation(rid);
    assert_eq!(reservation(&w).slots[0].provider, Some(provider(1)));

    let dir = tempfile::tempdir().unwrap();
    let (d1, m1) = w.daemon(1, dir.path());
    let (stop1, task1) = spawn(d1);
    w.start_clock();

    // Idle, the slot is still heartbeated and paid.
    for _ in 0..3_000 {
        if reservation(&w).slots[0].intervals_paid >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        reservation(&w).slots[0].intervals_paid >= 2,
        "paid while idle"
    );
    assert_eq!(m1.slots_held.get(), 1);
    assert_eq!(m1.jobs_running.get(), 0, "holding a slot runs nothing");

    // The delegate's job runs in the slot at no cost of its own.
    let submitted: Result<JobId, MatcherError> = w
        .net
        .update(
            w.ids.matcher,
            delegate,
            "submit_reserved_job",
            &ReservedJobArgs {
                reservation: rid,
                spec: JobSpec {
                    limits: JobLimits {
                        memory_mib: 16,
                        fuel: 1_000_000,
                    },
                    ..w.stored_job(hello, INTERVAL, 1_000_000, 0)
                },
            },
        )
        .unwrap();
    let id = submitted.unwrap();
    let job = w
        .until(id, "succeeded in the slot", |j| {
            j.status == JobStatus::Succeeded
        })
        .await;
    assert_eq!(stdout_of(&job), b"hello\n");
    assert_eq!(job.provider, Some(provider(1)));
    assert_eq!(
        w.net.escrow_balance(delegate).unwrap().free,
        0,
        "the delegate paid nothing"
    );

    // Shutting down gives the slot back without a slash; the owner cancels.
    let _ = stop1.send(());
    let summary = task1.await.unwrap();
    assert!(summary.handed_back >= 1, "{summary:?}");
    w.cancel_reservation(rid);
    let audit = w.audit();
    assert_eq!(reservation(&w).status, ReservationStatus::Cancelled);
    assert_eq!(audit.slashes, 0);
    assert!(audit.released >= 2 * PRICE);
}

/// Replies the [`Flaky`] transport loses after the canister executed the
/// call: (method, n-th call of it that reached the canister).
const LOSE_REPLY: &[(&str, u32)] = &[
    ("heartbeat", 1),     // the acknowledgement
    ("heartbeat", 3),     // a paying heartbeat
    ("submit_result", 1), // the result
];

/// What the [`Flaky`] transport broke.
#[derive(Default)]
struct Faults {
    calls: std::sync::atomic::AtomicU64,
    reached: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    dropped: std::sync::atomic::AtomicU64,
    lost: std::sync::Mutex<Vec<String>>,
}

/// The devnet transport with a bad network: every 7th call (update, query
/// or time) fails before it is sent, and the replies in [`LOSE_REPLY`] are
/// lost after the call executed, so the node can't know it went through.
#[derive(Clone)]
struct Flaky {
    inner: DevnetTransport,
    faults: Arc<Faults>,
}

impl Flaky {
    fn drop_this_one(&self) -> Result<(), TransportError> {
        let n = self.faults.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n.is_multiple_of(7) {
            self.faults.dropped.fetch_add(1, Ordering::SeqCst);
            return Err(TransportError::Network("injected: connection reset".into()));
        }
        Ok(())
    }
}

impl Transport for Flaky {
    fn sender(&self) -> Principal {
        self.inner.sender()
    }
    async fn update(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        self.drop_this_one()?;
        let nth = {
            let mut reached = self.faults.reached.lock().unwrap();
            let n = reached.entry(call.method.to_string()).or_default();
            *n += 1;
            *n
        };
        let method = call.method;
        let reply = self.inner.update(call).await;
        if LOSE_REPLY.contains(&(method, nth)) {
            self.faults
                .lost
                .lock()
                .unwrap()
                .push(format!("{method}#{nth}"));
            return Err(TransportError::Network("injected: reply lost".into()));
        }
        reply
    }
    async fn query(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        self.drop_this_one()?;
        self.inner.query(call).await
    }
    async fn time_ns(&self) -> Result<u64, TransportError> {
        self.drop_this_one()?;
        self.inner.time_ns().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_on_a_bad_network_finishes_its_job_and_is_paid_for_its_fuel_once() {
    let w = Scene::new();
    w.provider(1, PRICE);
    let faults = Arc::new(Faults::default());
    let flaky = Flaky {
        inner: w.net.transport(node(1)),
        faults: Arc::clone(&faults),
    };
    // The result waits until three intervals passed since the bond held:
    // after the acknowledgement, heartbeats #2 and #3 reached the matcher,
    // however fast the sandbox ran the job.
    let network = HoldResults::new(flaky, w.ids, 3);
    let dir = tempfile::tempdir().unwrap();
    let (d1, m1) = w.daemon_over(1, network, dir.path(), Duration::from_secs(10));
    let (stop, task) = spawn(d1);
    w.start_clock();
    let count = w.upload(&count()).await;
    let free_before = w.net.escrow_balance(buyer()).unwrap().free;
    let id = w.submit(count).await;
    let job = w
        .until(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    assert_eq!(stdout_of(&job), b"done\n");
    assert_eq!(job.retries_used, 0, "never slashed nor reassigned");
    let _ = stop.send(());
    task.await.unwrap();
    assert_eq!(
        *faults.lost.lock().unwrap(),
        vec!["heartbeat#1", "heartbeat#3", "submit_result#1"],
        "every lost reply was tried"
    );
    assert!(faults.dropped.load(Ordering::SeqCst) >= 3);
    assert!(m1.call_errors.get() >= 3);

    let audit = w.audit();
    assert_eq!(audit.slashes, 0);
    let fuel = job.result.as_ref().unwrap().fuel_used;
    assert_eq!(job.fuel_reported, fuel);
    let bill = fuel_cost(fuel, PRICE).unwrap();
    assert!(bill > 0);
    assert_eq!(job.paid, bill);
    assert_eq!(
        audit.released, bill,
        "the fuel reported by heartbeats and the result, released once"
    );
    assert_eq!(
        w.net.escrow_balance(provider(1)).unwrap().claimable,
        bill,
        "the provider received its bill once, when the window closed"
    );
    assert_eq!(
        w.net.escrow_balance(buyer()).unwrap().free,
        free_before - bill - w.net.settings.fee,
        "the buyer paid the bill once and the storage fee (one ledger fee for a small \
         job), and got the rest of the lock back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_and_a_fast_provider_are_paid_the_same_for_the_same_job() {
    let w = Scene::new();
    // Both ask the same price; the slow one's result comes sixteen
    // intervals after its bond held (twice the run's time here), and it
    // heartbeats all along: paid per interval it would have earned more.
    w.provider(1, PRICE);
    w.provider(2, PRICE);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (fast, m_fast) = w.daemon(1, dirs[0].path());
    let slow_net = HoldResults::new(w.net.transport(node(2)), w.ids, 16);
    let (slow, m_slow) = w.daemon_over(2, slow_net, dirs[1].path(), Duration::from_secs(10));
    let (stop1, task1) = spawn(fast);
    let (stop2, task2) = spawn(slow);
    w.start_clock();
    // The same job twice: the first to the older offer (provider 1), the
    // second to provider 2.
    let count = w.upload(&count()).await;
    let a = w.submit(count).await;
    w.until(a, "on provider 1", |j| j.provider == Some(provider(1)))
        .await;
    let b = w.submit(count).await;
    let [a, b] = [a, b].map(|id| {
        let w = &w;
        async move {
            w.until(id, "succeeded", |j| j.status == JobStatus::Succeeded)
                .await
        }
    });
    let (a, b) = (a.await, b.await);
    assert_eq!(
        (a.provider, b.provider),
        (Some(provider(1)), Some(provider(2)))
    );
    assert_eq!(stdout_of(&a), stdout_of(&b));
    let fuel = a.result.as_ref().unwrap().fuel_used;
    assert_eq!(b.result.as_ref().unwrap().fuel_used, fuel, "the same run");
    assert_eq!(a.paid, fuel_cost(fuel, PRICE).unwrap());
    assert!(a.paid > 0);
    assert_eq!(b.paid, a.paid, "paid for the fuel, not the time");
    assert!(
        m_slow.heartbeats_sent.get() > m_fast.heartbeats_sent.get(),
        "the slow one heartbeated more intervals ({} against {})",
        m_slow.heartbeats_sent.get(),
        m_fast.heartbeats_sent.get()
    );
    let _ = stop1.send(());
    let _ = stop2.send(());
    let _ = task1.await;
    let _ = task2.await;
    w.audit();
}
