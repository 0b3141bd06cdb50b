//! The world the devnet tests of `provider-node` and `market` play in: the
//! whole marketplace deployed on an in-process devnet ([`market_fixture`]), a
//! buyer with a client, providers onboarded with one-slot offers, their
//! daemons, and a clock that runs at 50× real time. Tests use it, and the
//! demo runs its daemons with [`spawn`]. A node that lies in its results
//! ([`cheat`]) is built the same way.

pub mod cheat;
pub mod http;
pub mod node;
pub mod tcp;

pub use cheat::{Cheat, Cheating, cheating_daemon};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use candid::Principal;
use market_api::matcher::{
    CancelReservationArgs, Job, JobKind, JobLimits, JobSpec, MatcherError, MatcherEvent,
    ModuleSource, ModuleUpload, OfferSpec, Reservation, ReservationId, ReservationSpec,
    ServiceLimits, ServiceSpec, ServiceView, SubmitResultArgs,
};
use market_api::registry::Provider;
use market_api::{EventPage, JobId, PageRequest, Tokens};
use market_client::transport::{Call, Transport, TransportError};
use market_client::{CanisterIds, MarketClient};
use market_fixture::DevnetTransport;
use market_fixture::{ICP, MarketFixture};
use provider_node::daemon::metrics::Metrics;
use provider_node::daemon::{Daemon, DaemonConfig, Summary};
use provider_node::sandbox::{Executor, SandboxConfig};
use sha2::Digest;

/// Counts down from 1.5 billion, then prints "done": a second or so of
/// work, a few intervals of devnet time.
pub fn count() -> String {
    market_fixture::jobs::countdown(1_500_000_000, "done\n")
}

/// The speed the test world's offers declare, in fuel per (devnet) second:
/// the devnet's clock runs 50× real time, so a node that runs half a
/// billion fuel a real second keeps to it, and a job's derived deadline
/// leaves it room.
pub const OFFER_FUEL_PER_SEC: u64 = 10_000_000;

/// A standing offer of one slot of `memory_mib` at `price`, both per
/// billion fuel (one-off jobs) and per interval (reserved slots);
/// declaring [`OFFER_FUEL_PER_SEC`], 10 billion fuel per interval,
/// intervals of 10 s to an hour.
pub fn one_slot_offer(memory_mib: u32, price: Tokens, ledger: Principal) -> OfferSpec {
    OfferSpec {
        currency: None,
        slots: 1,
        memory_per_slot_mib: memory_mib,
        max_fuel_per_interval: 10_000_000_000,
        price_per_gfuel: price,
        fuel_per_sec: OFFER_FUEL_PER_SEC,
        price_per_interval: price,
        ledger,
        min_interval_secs: 10,
        max_interval_secs: 3_600,
        tags: vec![],
        audits: None,
    }
}

/// Moves the devnet's clock one second every 20 ms until `stop` is set.
pub fn start_clock(net: &MarketFixture, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    run_clock(net, stop, Arc::new(Mutex::new(false)))
}

/// [`start_clock`], holding still while `paused` is set. The flag is read
/// under its lock around each step, so once a pause has set it no step
/// is under way nor will one start.
fn run_clock(
    net: &MarketFixture,
    stop: Arc<AtomicBool>,
    paused: Arc<Mutex<bool>>,
) -> JoinHandle<()> {
    let dn = net.shared();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            {
                let paused = paused.lock().unwrap_or_else(|e| e.into_inner());
                if !*paused {
                    let mut d = dn.lock().unwrap_or_else(|e| e.into_inner());
                    d.advance_time(Duration::from_secs(1));
                    d.tick();
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// How a test's daemon runs: its provider, state directory and timing.
pub struct DaemonSetup<'a> {
    /// The provider it works for.
    pub provider: Principal,
    /// Where it keeps unsubmitted results.
    pub state_dir: &'a std::path::Path,
    /// How long a shutdown waits for running jobs.
    pub shutdown_grace: Duration,
    /// Wall-clock limit of one job.
    pub max_job_time: Duration,
}

impl<'a> DaemonSetup<'a> {
    /// `provider`'s daemon keeping its results in `state_dir`, waiting 5 s
    /// for running jobs at shutdown and allowing a job a minute.
    pub fn of(provider: Principal, state_dir: &'a std::path::Path) -> Self {
        DaemonSetup {
            provider,
            state_dir,
            shutdown_grace: Duration::from_secs(5),
            max_job_time: Duration::from_secs(60),
        }
    }
}

/// The sandbox of a test's daemon: one job at a time, 64 MiB, no pooling.
pub fn test_sandbox() -> SandboxConfig {
    SandboxConfig {
        concurrent_jobs: 1,
        max_job_memory_bytes: 64 << 20,
        pooling: false,
        ..SandboxConfig::default()
    }
}

/// A daemon calling through `client`, with a sandbox of its own
/// ([`test_sandbox`]) and a 10 ms poll.
pub fn daemon<T: Transport + Clone>(
    client: MarketClient<T>,
    setup: DaemonSetup<'_>,
) -> (Daemon<T>, Metrics) {
    daemon_with_sandbox(client, setup, test_sandbox())
}

/// A daemon as [`daemon`] makes, with the sandbox `sandbox`.
pub fn daemon_with_sandbox<T: Transport + Clone>(
    client: MarketClient<T>,
    setup: DaemonSetup<'_>,
    sandbox: SandboxConfig,
) -> (Daemon<T>, Metrics) {
    let executor = Executor::new(sandbox).expect("a sandbox");
    let metrics = Metrics::default();
    let daemon = Daemon::new(
        client,
        Arc::new(executor),
        DaemonConfig {
            provider: setup.provider,
            poll_interval: Duration::from_millis(10),
            shutdown_grace: setup.shutdown_grace,
            max_job_time: setup.max_job_time,
            state_dir: setup.state_dir.to_path_buf(),
            cache_dir: None,
        },
        metrics.clone(),
    )
    .expect("a daemon");
    (daemon, metrics)
}

/// Runs `daemon` on the tokio runtime until the sender is used (or
/// dropped); the task returns its summary.
pub fn spawn<T: Transport + Clone>(
    daemon: Daemon<T>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Summary>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon.run(async {
        let _ = rx.await;
    }));
    (tx, task)
}

/// The settings the devnet tests deploy with unless they need others: a
/// 10 s grace, the rest [`market_fixture::Settings::default`].
pub fn settings() -> market_fixture::Settings {
    market_fixture::Settings {
        grace_secs: 10,
        ..market_fixture::Settings::default()
    }
}

/// A service running the stored component `sha256` with
/// `GREETING=from a lease` in its env, no egress, its health at
/// `/healthz`, 2 s and 200 million fuel a request, 8 at once.
pub fn hello_service(sha256: [u8; 32]) -> ServiceSpec {
    ServiceSpec {
        sealed: None,
        component: ModuleSource::Stored { sha256 },
        env: vec![("GREETING".into(), "from a lease".into())],
        allowed_hosts: vec![],
        health_path: "/healthz".into(),
        callback: None,
        limits: ServiceLimits {
            fuel_per_request: 200_000_000,
            timeout_ms: 2_000,
            max_concurrent: 8,
            max_body_bytes: 64 * 1024,
        },
        tcp: None,
    }
}

/// A lease of `replicas` replicas of the stored component `sha256` for
/// `intervals` intervals of 20 s at up to `max_price_per_interval`, paid
/// with `ledger`: 32 MiB and a billion fuel an interval a slot, up to two
/// rematches, no stake required, running [`hello_service`].
pub fn service_lease(
    ledger: Principal,
    sha256: [u8; 32],
    replicas: u32,
    intervals: u32,
    max_price_per_interval: Tokens,
) -> ReservationSpec {
    ReservationSpec {
        currency: None,
        slots: replicas,
        memory_mib: 32,
        fuel_per_interval: 1_000_000_000,
        interval_secs: 20,
        intervals,
        max_price_per_interval,
        ledger,
        min_provider_stake: 0,
        max_rematches: 2,
        delegates: vec![],
        service: Some(hello_service(sha256)),
    }
}

/// The marketplace on the devnet, a buyer's client and the clock.
pub struct World {
    /// The deployed marketplace.
    pub net: MarketFixture,
    /// Its canister ids.
    pub ids: CanisterIds,
    /// The buyer's client.
    pub buyer: MarketClient<DevnetTransport>,
    stop_clock: Arc<AtomicBool>,
    paused: Arc<Mutex<bool>>,
    clock: Mutex<Option<JoinHandle<()>>>,
}

impl World {
    /// Deploys the marketplace with `settings`; `buyer` calls as the buyer.
    pub fn deploy(settings: market_fixture::Settings, buyer: Principal) -> World {
        let net = MarketFixture::deploy(settings)
            .expect("deploy the marketplace (build the canisters with scripts/build-canisters.sh)");
        let ids = net.ids;
        let buyer = net.client(buyer);
        World {
            net,
            ids,
            buyer,
            stop_clock: Arc::new(AtomicBool::new(false)),
            paused: Arc::new(Mutex::new(false)),
            clock: Mutex::new(None),
        }
    }

    /// Provider `n`'s daemon ([`DaemonSetup::of`]), calling as node `n`
    /// (`market_fixture::{provider, node}`), its results kept in
    /// `state_dir`.
    pub fn daemon(&self, n: u8, state_dir: &std::path::Path) -> (Daemon<DevnetTransport>, Metrics) {
        daemon(
            self.client(market_fixture::node(n)),
            DaemonSetup::of(market_fixture::provider(n), state_dir),
        )
    }

    /// [`World::deploy`], the buyer then holding 100 ICP of which it
    /// deposited 50 in escrow.
    pub fn funded(settings: market_fixture::Settings, buyer: Principal) -> World {
        let w = World::deploy(settings, buyer);
        w.net
            .mint(buyer, 100 * ICP)
            .expect("mint the buyer's tokens");
        w.net
            .deposit(buyer, 50 * ICP)
            .expect("deposit the buyer's tokens");
        w
    }

    /// A client calling as `who`.
    pub fn client(&self, who: Principal) -> MarketClient<DevnetTransport> {
        self.net.client(who)
    }

    /// Registers `provider` with `node` as its node key, stakes 100 ICP
    /// and posts `offer`.
    pub fn onboard(&self, provider: Principal, node: Principal, offer: &OfferSpec) {
        self.net
            .onboard_provider(provider, node, 100 * ICP)
            .expect("onboard the provider");
        self.net
            .post_offer(provider, offer)
            .expect("post the offer");
    }

    /// Moves the devnet's clock one second every 20 ms until
    /// [`World::stop_clock`].
    pub fn start_clock(&self) {
        let handle = run_clock(
            &self.net,
            Arc::clone(&self.stop_clock),
            Arc::clone(&self.paused),
        );
        *self.clock.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    /// Holds the clock still (the canisters still answer calls) until
    /// [`World::resume_clock`]; no step of it runs once this returns.
    pub fn pause_clock(&self) {
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// Lets a paused clock run again.
    pub fn resume_clock(&self) {
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }

    /// Stops the clock and waits for its thread.
    pub fn stop_clock(&self) {
        self.stop_clock.store(true, Ordering::SeqCst);
        if let Some(h) = self.clock.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.join().expect("the clock thread");
        }
    }

    /// The buyer uploads the module `wat` assembles, in one chunk, and
    /// commits it; returns its sha256.
    pub async fn upload(&self, wat: &str) -> [u8; 32] {
        self.upload_wasm(wat::parse_str(wat).expect("valid WAT"))
            .await
    }

    /// The buyer uploads the built test workload `name` (see
    /// `scripts/build-workloads.sh`) as [`World::upload_wasm`] does.
    pub async fn upload_workload(&self, name: &str) -> [u8; 32] {
        self.upload_wasm(market_artifacts::workload(name)).await
    }

    /// The buyer uploads the module `wasm`, in one chunk, and commits it;
    /// returns its sha256.
    pub async fn upload_wasm(&self, wasm: Vec<u8>) -> [u8; 32] {
        let sha: [u8; 32] = sha2::Sha256::digest(&wasm).into();
        self.buyer
            .begin_module_upload(ModuleUpload {
                sha256: sha,
                size: wasm.len() as u64,
            })
            .await
            .expect("begin_module_upload");
        self.buyer
            .put_module_chunk(sha, 0, wasm)
            .await
            .expect("put_module_chunk");
        let info = self.buyer.commit_module(sha).await.expect("commit_module");
        assert!(info.committed, "{info:?}");
        sha
    }

    /// A job running the stored module `sha256`, with no input, arguments
    /// or environment: 16 MiB and a budget of `fuel` at up to
    /// `max_price_per_gfuel`, heartbeated every `interval_secs`, its
    /// deadline derived from the offer's speed, paid with this market's
    /// ledger, no stake required, no retries, no callback.
    pub fn stored_job(
        &self,
        sha256: [u8; 32],
        interval_secs: u64,
        fuel: u64,
        max_price_per_gfuel: Tokens,
    ) -> JobSpec {
        JobSpec {
            sealed: None,
            currency: None,
            module: ModuleSource::Stored { sha256 },
            input: vec![],
            args: vec![],
            env: vec![],
            limits: JobLimits {
                memory_mib: 16,
                fuel,
            },
            max_price_per_gfuel,
            deadline_secs: None,
            interval_secs,
            ledger: self.ids.ledger,
            min_provider_stake: 0,
            min_record: None,
            max_retries: 0,
            callback: None,
            audit_ppm: None,
        }
    }

    /// The job as the buyer sees it.
    pub async fn job(&self, id: JobId) -> Job {
        self.buyer
            .get_job(id)
            .await
            .expect("get_job")
            .expect("the job exists")
    }

    /// Waits (real time) until the job satisfies `cond`.
    pub async fn until(&self, id: JobId, what: &str, cond: impl Fn(&Job) -> bool) -> Job {
        for _ in 0..3_000 {
            let job = self.job(id).await;
            if cond(&job) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "timed out waiting for job {id}: {what}: {:?}",
            self.job(id).await
        );
    }

    /// Waits (real time) until the job satisfies `cond` and returns it
    /// with the clock paused ([`World::pause_clock`]), so that the devnet's
    /// time stands where the job was seen: a test can read the rest of
    /// the market in that state before a deadline or a window moves it on.
    pub async fn until_paused(&self, id: JobId, what: &str, cond: impl Fn(&Job) -> bool) -> Job {
        for _ in 0..3_000 {
            self.pause_clock();
            let job = self.job(id).await;
            if cond(&job) {
                return job;
            }
            self.resume_clock();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "timed out waiting for job {id}: {what}: {:?}",
            self.job(id).await
        );
    }

    /// Every event of the matcher's log, in order.
    pub fn matcher_events(&self) -> Vec<MatcherEvent> {
        let mut out = vec![];
        let mut start = Some(0u64);
        while let Some(s) = start {
            let page: EventPage<MatcherEvent> = self
                .net
                .query(
                    self.ids.matcher,
                    "get_events",
                    &PageRequest {
                        start: Some(s),
                        limit: None,
                    },
                )
                .expect("get_events");
            out.extend(page.events.into_iter().map(|e| e.event));
            start = page.next;
        }
        out
    }

    /// The buyer leases `spec` with the matcher's `reserve`; the lease's id.
    pub fn reserve(&self, spec: &ReservationSpec) -> ReservationId {
        let reserved: Result<ReservationId, MatcherError> = self
            .net
            .update(self.ids.matcher, self.buyer.sender(), "reserve", spec)
            .expect("reserve");
        reserved.expect("the lease is reserved")
    }

    /// The buyer cancels its lease `id`.
    pub fn cancel_reservation(&self, id: ReservationId) {
        let cancelled: Result<(), MatcherError> = self
            .net
            .update(
                self.ids.matcher,
                self.buyer.sender(),
                "cancel_reservation",
                &CancelReservationArgs { reservation: id },
            )
            .expect("cancel_reservation");
        cancelled.expect("the lease is cancelled");
    }

    /// The lease `id` as the matcher keeps it.
    pub fn reservation(&self, id: ReservationId) -> Reservation {
        self.net
            .query::<_, Option<Reservation>>(self.ids.matcher, "get_reservation", &id)
            .expect("get_reservation")
            .expect("the lease exists")
    }

    /// The service of lease `id` as the matcher shows it.
    pub fn service(&self, id: ReservationId) -> ServiceView {
        self.net
            .query::<_, Option<ServiceView>>(self.ids.matcher, "get_service", &id)
            .expect("get_service")
            .expect("the lease's service")
    }

    /// The registry's record of `provider`.
    pub fn provider(&self, provider: Principal) -> Provider {
        self.net
            .query::<_, Option<Provider>>(self.ids.registry, "get_provider", &provider)
            .expect("get_provider")
            .expect("a registered provider")
    }

    /// Stops the clock, lets the canisters finish their work, and checks
    /// that no token was created or lost.
    pub fn audit(&self) -> market_fixture::Audit {
        self.stop_clock();
        for _ in 0..30 {
            self.net.advance(Duration::from_secs(1));
        }
        self.net.audit().expect("money is conserved")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_clock.store(true, Ordering::SeqCst);
    }
}

/// A transport that holds results back: `submit_result` fails as a dropped
/// connection, before reaching the canister, until the job has run
/// `intervals` intervals: paid that many (a reserved slot's job), or, for a
/// job billed by fuel, that many intervals have passed since its bond held,
/// each with a heartbeat due. The daemon keeps heartbeating a job whose
/// result waits, so a test sees that many heartbeats however fast the
/// sandbox ran the job.
#[derive(Clone)]
pub struct HoldResults<T> {
    inner: T,
    ids: CanisterIds,
    intervals: u32,
}

impl<T: Transport + Clone> HoldResults<T> {
    /// Holds results until the job ran `intervals` intervals.
    pub fn new(inner: T, ids: CanisterIds, intervals: u32) -> Self {
        Self {
            inner,
            ids,
            intervals,
        }
    }

    async fn paid_enough(&self, arg: &[u8]) -> bool {
        let Ok(result) = candid::decode_one::<SubmitResultArgs>(arg) else {
            return true;
        };
        let client = MarketClient::new(self.inner.clone(), self.ids);
        let Ok(Some(job)) = client.get_job(result.job_id).await else {
            return false;
        };
        if job.kind != JobKind::OneOff {
            return job.intervals_paid >= self.intervals;
        }
        let Some(provider) = job.provider else {
            return false;
        };
        let (Ok(now), Ok(held)) = (client.time_ns().await, client.assignments(provider).await)
        else {
            return false;
        };
        held.iter()
            .find(|a| a.job_id == job.id)
            .and_then(|a| a.counting_from_ns)
            .is_some_and(|from| {
                let ran = u64::from(self.intervals)
                    .saturating_mul(job.spec.interval_secs)
                    .saturating_mul(1_000_000_000);
                now >= from.saturating_add(ran)
            })
    }
}

impl<T: Transport + Clone> Transport for HoldResults<T> {
    fn sender(&self) -> Principal {
        self.inner.sender()
    }
    async fn update(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        if call.method == "submit_result" && !self.paid_enough(&call.arg).await {
            return Err(TransportError::Network(
                "held back until the job's intervals are paid".into(),
            ));
        }
        self.inner.update(call).await
    }
    async fn query(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        self.inner.query(call).await
    }
    async fn time_ns(&self) -> Result<u64, TransportError> {
        self.inner.time_ns().await
    }
}
