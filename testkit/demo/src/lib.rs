//! The marketplace end to end, in one process: the real ledger, registry,
//! escrow and matcher `.wasm` files on the embedded devnet, two provider
//! daemons running jobs in the wasmtime sandbox, a person and a canister
//! buying compute, heartbeats paying out, a third provider lying about a
//! result and caught by an audit, the dapp's canister leasing a web service
//! with two replicas behind the providers' HTTP ingresses, one provider
//! going dark mid-job (slashed while another finishes the job; its replica
//! fails the matcher's probes and is matched anew with a fourth provider),
//! an SNS DAO reserving capacity by proposal for its app canister, and a
//! closing account of who paid and earned what, checked against the ledger.
//!
//! The devnet's clock runs [`Options::speed`] times faster than real time
//! so that a story spanning minutes of IC time takes seconds.

use anyhow::{Context, Result, bail, ensure};
use candid::{Nat, Principal};
use market_api::escrow::WithdrawArgs;
use market_api::matcher::{
    AUDIT_ALWAYS_PPM, AuditVerdict, GFUEL, Job, JobKind, JobLimits, JobSpec, JobStatus,
    MAX_CHUNK_BYTES, MatcherEvent, ModuleSource, ModuleUpload, OfferSpec,
};
use market_api::prices::{Currency, format_xdr};
use market_api::privacy::{JobKeyRequest, Sealed};
use market_api::{EventPage, JobId, PageRequest, Tokens};
use market_client::client::{CanisterIds, MarketClient};
use market_client::sealing::{self, TransportKey};
use market_fixture::jobs::countdown;
use market_fixture::{DevnetTransport, ICP, MarketFixture, Settings, node, provider};
use provider_node::daemon::metrics::Metrics;
use provider_node::daemon::{Daemon, DaemonConfig, Summary};
use provider_node::sandbox::{Executor, SandboxConfig};
use provider_node::service::{IngressSettings, ServiceHost, ServiceMetrics};
use sha2::Digest;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use test_world::cheat::{Cheat, cheating_daemon};
use test_world::{DaemonSetup, spawn};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod dao;
mod service;
pub use dao::DaoOutcome;
pub use service::{GREETING, ReplicaCall, SERVICE_INTERVAL_SECS, ServiceOutcome, http_get};

/// Price per interval of the cheaper provider (0.001 ICP); the other asks twice that.
pub const PRICE: Tokens = 100_000;
/// Length of a paid interval.
pub const INTERVAL_SECS: u64 = 20;

/// How the demo runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Devnet seconds per real second.
    pub speed: u32,
    /// Directory of the built WASI workloads (`scripts/build-workloads.sh`).
    pub workloads: PathBuf,
    /// Print the story (tests turn it off).
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            speed: 50,
            workloads: market_artifacts::workload_dir(),
            verbose: true,
        }
    }
}

/// What one party ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Party {
    /// Who.
    pub name: &'static str,
    /// The principal.
    pub principal: Principal,
    /// Tokens paid in (minted to it) at the start.
    pub funded: Tokens,
    /// Its ledger account at the end.
    pub ledger: Tokens,
    /// Its escrow balance at the end (free plus claimable plus locked).
    pub escrow: Tokens,
    /// Its stake at the end.
    pub stake: Tokens,
}

/// What the demo showed, for its caller to check.
#[derive(Clone, Debug)]
pub struct Report {
    /// The parties' final positions.
    pub parties: Vec<Party>,
    /// The stdout of the person's sha256 job.
    pub sha256_output: String,
    /// The output the client canister received by callback.
    pub callback_output: Vec<u8>,
    /// The long job as it finished.
    pub long_job: Job,
    /// The matcher's events.
    pub events: Vec<MatcherEvent>,
    /// The conservation audit.
    pub audit: market_fixture::Audit,
    /// Ledger fees paid over the whole run.
    pub fees: Tokens,
    /// The SNS DAO's reservation.
    pub dao: DaoOutcome,
    /// The job whose result the cheating provider forged, as it finished.
    pub cheated_job: Job,
    /// The dapp's service lease.
    pub service: ServiceOutcome,
    /// The person's job priced in XDR and paid in ICP, as it finished.
    pub xdr_job: Job,
    /// The stdout of the person's sealed job, as she opened it.
    pub private_output: String,
}

/// The providers' sandbox: two jobs at a time of up to 64 MiB.
fn sandbox() -> SandboxConfig {
    SandboxConfig {
        concurrent_jobs: 2,
        max_job_memory_bytes: 64 << 20,
        pooling: false,
        ..SandboxConfig::default()
    }
}

/// A provider's node as the demo runs it: its daemon and its ingress.
struct Node {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Summary>,
    ingress: JoinHandle<()>,
    /// Where its ingress listens.
    addr: SocketAddr,
    metrics: Metrics,
    _dir: tempfile::TempDir,
}

impl Node {
    /// The machine goes dark: no goodbye, no last heartbeat, and its
    /// ingress stops answering.
    async fn kill(self) {
        drop(self.stop);
        self.task.abort();
        self.ingress.abort();
        let _ = self.task.await;
        let _ = self.ingress.await;
    }

    /// A graceful shutdown: the daemon hands back what it won't finish.
    async fn stop(self) -> Result<Summary> {
        let _ = self.stop.send(());
        let summary = self.task.await?;
        self.ingress.abort();
        let _ = self.ingress.await;
        Ok(summary)
    }
}

fn alice() -> Principal {
    market_fixture::principal(0xA1)
}
/// Someone reading the matcher's public queries.
fn onlooker() -> Principal {
    market_fixture::principal(0xA3)
}

fn dapp_team() -> Principal {
    market_fixture::principal(0xA2)
}

/// An ICP/XDR rate given as cycles per e8 (XDR per ICP times 10^4), as
/// XDR per ICP ("4", "4.25").
pub fn xdr_per_icp(cycles_per_e8: u128) -> String {
    let text = format_xdr(cycles_per_e8 * 100_000_000);
    text.trim_end_matches(" XDR").to_string()
}

/// ICP with 8 decimals, trailing zeros trimmed: `1.5`, `0.0001`.
pub fn icp(e8s: Tokens) -> String {
    let whole = e8s / ICP;
    let frac = format!("{:08}", e8s % ICP);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{whole}")
    } else {
        format!("{whole}.{frac}")
    }
}

struct Demo {
    opts: Options,
    net: MarketFixture,
    ids: CanisterIds,
    alice: MarketClient<DevnetTransport>,
    started_ns: u64,
    real_start: Instant,
    seen_events: u64,
    /// Audit runs started so far, per audited job.
    audit_runs: std::collections::BTreeMap<JobId, u32>,
    stop_clock: Arc<AtomicBool>,
    /// The SNS DAO's governance canister, once it exists.
    dao: Option<Principal>,
    /// The dapp's canister, once it exists.
    client: Option<Principal>,
    /// Service leases (their reservation ids) seen so far.
    services: std::collections::BTreeSet<JobId>,
    /// Failed probes in a row, per service replica (lease, slot).
    probe_failures: std::collections::BTreeMap<(JobId, u32), u32>,
    /// Probe fees paid to the market, per lease.
    probe_fees: std::collections::BTreeMap<JobId, Tokens>,
}

impl Demo {
    fn say(&self, text: impl AsRef<str>) {
        if self.opts.verbose {
            let t = self.net.time_ns().saturating_sub(self.started_ns) / 1_000_000_000;
            println!(
                "[ic +{t:>4}s | real {:>5.1}s] {}",
                self.real_start.elapsed().as_secs_f64(),
                text.as_ref()
            );
        }
    }

    fn step(&self, title: &str) {
        if self.opts.verbose {
            println!("\n==> {title}");
        }
    }

    fn name(&self, p: Principal) -> String {
        match p {
            p if p == alice() => "alice".into(),
            p if p == provider(1) => "provider-1".into(),
            p if p == provider(2) => "provider-2".into(),
            p if p == provider(3) => "provider-3 (cheat)".into(),
            p if p == provider(4) => "provider-4".into(),
            p if Some(p) == self.dao => "the SNS DAO".into(),
            p if Some(p) == self.client => "the dapp's canister".into(),
            p => p.to_text(),
        }
    }

    /// How the story names a job record: a job, a reservation or its slot.
    fn label(&self, job_id: JobId) -> String {
        let job: Option<Job> = self
            .net
            .query(self.ids.matcher, "get_job", &job_id)
            .ok()
            .flatten();
        match job.map(|j| j.kind) {
            Some(JobKind::Reservation) if self.services.contains(&job_id) => {
                format!("service {job_id}")
            }
            Some(JobKind::Reservation) => format!("reservation {job_id}"),
            Some(JobKind::ReservedSlot { reservation, slot })
                if self.services.contains(&reservation) =>
            {
                format!("service {reservation}'s replica {slot}")
            }
            Some(JobKind::ReservedSlot { reservation, slot }) => {
                format!("reservation {reservation}'s slot {slot}")
            }
            _ => format!("job {job_id}"),
        }
    }

    /// How the story names what a release of `job_id` numbered `seq` paid
    /// for: a job, or one slot of a reservation (which numbers its slots'
    /// releases slot << 32 | n).
    fn paid_label(&self, job_id: JobId, seq: u64) -> String {
        let job: Option<Job> = self
            .net
            .query(self.ids.matcher, "get_job", &job_id)
            .ok()
            .flatten();
        let slot = seq >> 32;
        match job.map(|j| j.kind) {
            Some(JobKind::Reservation) if self.services.contains(&job_id) => {
                format!("service {job_id}'s replica {slot}")
            }
            Some(JobKind::Reservation) => format!("reservation {job_id}'s slot {slot}"),
            _ => self.label(job_id),
        }
    }

    /// Whether reservation `id` is a service lease.
    fn is_service(&self, id: JobId) -> bool {
        let v: Option<market_api::matcher::ServiceView> = self
            .net
            .query(self.ids.matcher, "get_service", &id)
            .ok()
            .flatten();
        v.is_some()
    }

    /// Failed probes in a row of the replica in slot record `job_id`.
    fn probes_failed_for(&self, job_id: JobId) -> u32 {
        let job: Option<Job> = self
            .net
            .query(self.ids.matcher, "get_job", &job_id)
            .ok()
            .flatten();
        match job.map(|j| j.kind) {
            Some(JobKind::ReservedSlot { reservation, slot }) => self
                .probe_failures
                .get(&(reservation, slot))
                .copied()
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Prints the matcher events recorded since the last call.
    fn narrate_events(&mut self) -> Result<()> {
        let page: EventPage<MatcherEvent> = self.net.query(
            self.ids.matcher,
            "get_events",
            &PageRequest {
                start: Some(self.seen_events),
                limit: None,
            },
        )?;
        for e in page.events {
            self.seen_events = e.seq + 1;
            let line = match e.event {
                MatcherEvent::JobSubmitted {
                    job_id,
                    max_cost,
                    xdr,
                    ..
                } => {
                    let lock: Option<market_api::escrow::JobLock> =
                        self.net
                            .query(self.ids.escrow, "get_lock", &format!("job/{job_id}"))?;
                    let fee = lock.map_or(0, |l| l.storage_fee);
                    let terms = xdr.map_or(String::new(), |t| {
                        format!(
                            " (at most {} per billion fuel at {} XDR per ICP, plus the buffer)",
                            format_xdr(t.max_price_cycles),
                            xdr_per_icp(t.lock_rate.cycles_per_unit.num)
                        )
                    });
                    format!(
                        "job {job_id} submitted, {} ICP locked in escrow{terms}, {} ICP storage \
                         fee paid",
                        icp(max_cost),
                        icp(fee)
                    )
                }
                MatcherEvent::JobAssigned {
                    job_id,
                    provider,
                    price,
                    attempt,
                    ..
                } => {
                    let job: Option<market_api::matcher::Job> =
                        self.net.query(self.ids.matcher, "get_job", &job_id)?;
                    let unit = match job.map(|j| j.kind) {
                        Some(market_api::matcher::JobKind::OneOff) => "per billion fuel",
                        _ => "per interval",
                    };
                    format!(
                        "{} assigned to {} at {} ICP {unit} (attempt {attempt}), stake bonded",
                        self.label(job_id),
                        self.name(provider),
                        icp(price)
                    )
                }
                MatcherEvent::FuelPaid {
                    job_id,
                    provider,
                    fuel,
                    amount,
                    ..
                } => {
                    let job: Option<Job> = self.net.query(self.ids.matcher, "get_job", &job_id)?;
                    if job.and_then(|j| j.provider) == Some(provider) {
                        format!(
                            "{}: {} reported {fuel} fuel in all, {} ICP more pending for it",
                            self.label(job_id),
                            self.name(provider),
                            icp(amount)
                        )
                    } else {
                        format!(
                            "{}: {} sided with the verdict: its audit run of {fuel} fuel is paid \
                             {} ICP (pending) from the job's lock",
                            self.label(job_id),
                            self.name(provider),
                            icp(amount)
                        )
                    }
                }
                MatcherEvent::ResultReported {
                    job_id,
                    provider,
                    fuel_used,
                    bill,
                    ..
                } => format!(
                    "{}: {} reported its result ({fuel_used} fuel, a bill of {} ICP); the \
                     challenge window opens",
                    self.label(job_id),
                    self.name(provider),
                    icp(bill)
                ),
                MatcherEvent::AuditStarted {
                    job_id,
                    run,
                    disputed,
                } => {
                    let runs = self.audit_runs.entry(job_id).or_default();
                    *runs += 1;
                    let why = match (*runs, disputed) {
                        (1, true) => "the buyer disputes the result",
                        (1, false) => "drawn for audit",
                        _ => "the result and its audit disagree: a third provider breaks the tie",
                    };
                    format!(
                        "{}: {why}; audit run {run} re-runs it on a provider picked at random, \
                         every result hidden until the verdict",
                        self.label(job_id)
                    )
                }
                MatcherEvent::AuditSettled { job_id, verdict } => {
                    format!("{}: the audit's verdict: {verdict:?}", self.label(job_id))
                }
                MatcherEvent::ResultRejected {
                    job_id,
                    provider,
                    slashed,
                    ..
                } => format!(
                    "{}: {}'s result lost the audit: {} ICP of its stake slashed to the buyer",
                    self.label(job_id),
                    self.name(provider),
                    icp(slashed)
                ),
                MatcherEvent::PayForfeited {
                    job_id, provider, ..
                } => format!(
                    "{}: {} forfeits its pending pay for the job, which goes back to the lock",
                    self.label(job_id),
                    self.name(provider)
                ),
                MatcherEvent::IntervalPaid {
                    job_id,
                    provider,
                    amount,
                    ..
                } if provider == self.ids.matcher => {
                    self.probe_fees.insert(job_id, amount);
                    format!(
                        "{}: the fee of its probes, {} ICP, paid to the market's escrow account",
                        self.label(job_id),
                        icp(amount)
                    )
                }
                MatcherEvent::IntervalPaid {
                    job_id,
                    provider,
                    amount,
                    seq,
                    ..
                } => format!(
                    "{}: heartbeat #{} paid {} ICP to {}",
                    self.paid_label(job_id, seq),
                    // A reservation numbers its slots' releases slot << 32 | n.
                    (seq & 0xffff_ffff) + 1,
                    icp(amount),
                    self.name(provider)
                ),
                MatcherEvent::ReservationMade {
                    reservation,
                    owner,
                    slots,
                    locked,
                    ..
                } if self.is_service(reservation) => {
                    self.services.insert(reservation);
                    format!(
                        "service {reservation} leased by {}: {slots} replicas, {} ICP locked in \
                         escrow (every interval at the highest price, and the probes)",
                        self.name(owner),
                        icp(locked)
                    )
                }
                MatcherEvent::ReservationMade {
                    reservation,
                    owner,
                    slots,
                    locked,
                    ..
                } => format!(
                    "reservation {reservation} made by {}: {slots} slot(s), {} ICP locked in escrow",
                    self.name(owner),
                    icp(locked)
                ),
                MatcherEvent::ReservationExtended {
                    reservation,
                    intervals,
                    locked,
                } => format!(
                    "reservation {reservation} extended by {intervals} intervals; {} ICP locked in all",
                    icp(locked)
                ),
                MatcherEvent::DeadlineMissed {
                    job_id,
                    provider,
                    slashed,
                    ..
                } if self.probes_failed_for(job_id) > 0 => format!(
                    "{}: {} failed {} probes in a row, counted as a missed deadline: slashed {} \
                     ICP, paid to the buyer; the replica is matched anew",
                    self.label(job_id),
                    self.name(provider),
                    self.probes_failed_for(job_id),
                    icp(slashed)
                ),
                MatcherEvent::DeadlineMissed {
                    job_id,
                    provider,
                    slashed,
                    ..
                } => format!(
                    "{}: {} missed its heartbeat deadline: slashed {} ICP, paid to the buyer",
                    self.label(job_id),
                    self.name(provider),
                    icp(slashed)
                ),
                MatcherEvent::JobFinished {
                    job_id,
                    status,
                    refunded,
                } => format!(
                    "{} finished {status:?}; {} ICP of unused budget returned to the buyer",
                    self.label(job_id),
                    icp(refunded)
                ),
                MatcherEvent::JobHandedBack {
                    job_id, provider, ..
                } => format!(
                    "job {job_id}: {} handed it back (no slash); matching it again",
                    self.name(provider)
                ),
                MatcherEvent::ServiceEndpoint {
                    reservation,
                    slot,
                    provider,
                    endpoint,
                    ..
                } => {
                    if endpoint.is_some() {
                        self.probe_failures.remove(&(reservation, slot));
                    }
                    match endpoint {
                        Some(url) => format!(
                            "service {reservation}'s replica {slot}: {} acknowledged it, serving \
                             at {url}",
                            self.name(provider)
                        ),
                        None => format!(
                            "service {reservation}'s replica {slot}: endpoint withdrawn, {} no \
                             longer holds it",
                            self.name(provider)
                        ),
                    }
                }
                MatcherEvent::ProbeFailed {
                    reservation,
                    slot,
                    provider,
                    consecutive,
                } => {
                    self.probe_failures.insert((reservation, slot), consecutive);
                    format!(
                        "service {reservation}'s replica {slot}: the matcher's probe of {}'s \
                         endpoint failed ({consecutive} in a row)",
                        self.name(provider)
                    )
                }
                MatcherEvent::OfferChanged { .. }
                | MatcherEvent::ModuleStored { .. }
                | MatcherEvent::DelegatesChanged { .. }
                | MatcherEvent::DaoChanged { .. }
                | MatcherEvent::MarketFeeSet { .. }
                | MatcherEvent::CyclesToppedUp { .. }
                | MatcherEvent::CyclesTopUpFailed { .. } => continue,
            };
            self.say(line);
        }
        Ok(())
    }

    /// Advances the devnet clock `speed` seconds per real second until stopped.
    fn start_clock(&self) {
        let dn = self.net.shared();
        let stop = Arc::clone(&self.stop_clock);
        let tick = Duration::from_millis(1000 / u64::from(self.opts.speed.clamp(1, 1000)));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                {
                    let mut d = dn.lock().unwrap_or_else(|e| e.into_inner());
                    d.advance_time(Duration::from_secs(1));
                    d.tick();
                }
                std::thread::sleep(tick);
            }
        });
    }

    /// Starts provider `n`'s node: a daemon running jobs in the sandbox
    /// and service replicas behind an HTTP ingress on 127.0.0.1 (its
    /// public URL is that address: the devnet's outcalls speak plain http).
    async fn start_node(&self, n: u8) -> Result<Node> {
        let dir = tempfile::tempdir()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let host = ServiceHost::new(
            test_world::node::host_config(addr),
            ServiceMetrics::default(),
        )?;
        let ingress = tokio::spawn(provider_node::service::serve(
            host.clone(),
            listener,
            IngressSettings::default(),
            std::future::pending(),
        ));
        let executor = Executor::new(sandbox())?;
        let metrics = Metrics::default();
        let daemon = Daemon::new(
            self.net.client(node(n)),
            Arc::new(executor),
            DaemonConfig {
                provider: provider(n),
                poll_interval: Duration::from_millis(10),
                shutdown_grace: Duration::from_secs(10),
                max_job_time: Duration::from_secs(120),
                state_dir: dir.path().to_path_buf(),
                cache_dir: None,
            },
            metrics.clone(),
        )?
        .with_services(host);
        let (stop, task) = spawn(daemon);
        Ok(Node {
            stop,
            task,
            ingress,
            addr,
            metrics,
            _dir: dir,
        })
    }

    /// Uploads a module through the buyer's client, chunk by chunk.
    async fn upload(&self, name: &str, wasm: &[u8]) -> Result<[u8; 32]> {
        let sha: [u8; 32] = sha2::Sha256::digest(wasm).into();
        self.alice
            .begin_module_upload(ModuleUpload {
                sha256: sha,
                size: wasm.len() as u64,
            })
            .await?;
        let chunks = wasm.chunks(MAX_CHUNK_BYTES).count();
        for (i, chunk) in wasm.chunks(MAX_CHUNK_BYTES).enumerate() {
            self.alice
                .put_module_chunk(sha, i as u32, chunk.to_vec())
                .await?;
            self.say(format!(
                "uploading {name} ({} KiB): chunk {}/{chunks}",
                wasm.len() / 1024,
                i + 1
            ));
        }
        let info = self.alice.commit_module(sha).await?;
        ensure!(info.committed, "module not committed");
        self.say(format!(
            "{name} stored in the matcher as sha256 {}",
            hex::encode(sha)
        ));
        Ok(sha)
    }

    /// An offer of `slots` slots of 64 MiB at `price` per billion fuel (and
    /// per interval of a reserved slot).
    fn offer(&self, slots: u32, price: Tokens) -> OfferSpec {
        OfferSpec {
            currency: None,
            slots,
            memory_per_slot_mib: 64,
            max_fuel_per_interval: 10_000_000_000,
            price_per_gfuel: price,
            fuel_per_sec: test_world::OFFER_FUEL_PER_SEC,
            price_per_interval: price,
            ledger: self.ids.ledger,
            min_interval_secs: 10,
            max_interval_secs: 3_600,
            tags: vec!["wasi".into()],
            audits: None,
        }
    }

    /// A job of `gfuel` billion fuel at up to twice [`PRICE`] per billion.
    fn spec(&self, sha: [u8; 32], input: &[u8], gfuel: u64) -> JobSpec {
        JobSpec {
            sealed: None,
            currency: None,
            module: ModuleSource::Stored { sha256: sha },
            input: input.to_vec(),
            args: vec![],
            env: vec![],
            limits: JobLimits {
                memory_mib: 16,
                fuel: gfuel * GFUEL,
            },
            max_price_per_gfuel: 2 * PRICE,
            deadline_secs: None,
            interval_secs: INTERVAL_SECS,
            ledger: self.ids.ledger,
            min_provider_stake: 0,
            min_record: None,
            max_retries: 2,
            callback: None,
            audit_ppm: None,
        }
    }

    /// The matcher's public key for sealing jobs, once it has read it.
    async fn privacy_key(&self) -> Result<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(k) = self.alice.privacy_key().await? {
                return Ok(k.public_key);
            }
            if Instant::now() > deadline {
                bail!("the matcher never read its vetKD public key");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn job(&self, id: JobId) -> Result<Job> {
        self.alice.get_job(id).await?.context("job vanished")
    }

    /// Waits (narrating) until the job satisfies `cond`.
    async fn until(&mut self, id: JobId, what: &str, cond: impl Fn(&Job) -> bool) -> Result<Job> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            self.narrate_events()?;
            let job = self.job(id).await?;
            if cond(&job) {
                return Ok(job);
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for job {id}: {what}; it is {:?}",
                    job.status
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The output the example client canister `client` received by callback
    /// for `job`, asked up to `attempts` times, `pause` apart; empty if none came.
    async fn callback_output(
        &self,
        client: Principal,
        job: JobId,
        attempts: u32,
        pause: Duration,
    ) -> Result<Vec<u8>> {
        #[derive(candid::CandidType, serde::Deserialize)]
        struct Delivery {
            notice: market_api::matcher::JobNotice,
            #[serde(with = "serde_bytes")]
            output: Vec<u8>,
            output_verified: bool,
        }
        for _ in 0..attempts {
            let got: Vec<Delivery> =
                self.net
                    .query(client, "deliveries", &PageRequest::default())?;
            // The notice is recorded first, the output once read and checked.
            if let Some(d) = got
                .into_iter()
                .find(|d| d.notice.job_id == job && d.output_verified)
            {
                return Ok(d.output);
            }
            tokio::time::sleep(pause).await;
        }
        Ok(Vec::new())
    }

    fn escrow_total(&self, p: Principal) -> Result<Tokens> {
        let b = self.net.escrow_balance(p)?;
        Ok(b.free + b.claimable + b.locked)
    }

    fn stake(&self, p: Principal) -> Result<Tokens> {
        let prov: Option<market_api::registry::Provider> =
            self.net.query(self.ids.registry, "get_provider", &p)?;
        Ok(prov
            .map(|p| {
                p.stake.free
                    + p.stake.bonded
                    + p.stake.unbonding.iter().map(|u| u.amount).sum::<Tokens>()
            })
            .unwrap_or(0))
    }
}

/// Runs the whole story and returns what it showed.
pub async fn run(opts: Options) -> Result<Report> {
    let real_start = Instant::now();
    let read = |name: &str| {
        let path = opts.workloads.join(name);
        std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {}: build the workloads with scripts/build-workloads.sh",
                path.display()
            )
        })
    };
    let sha256sum = read("sha256sum.wasm")?;
    let echo = read("echo.wasm")?;
    let hello_service = read("hello-service.wasm")?;
    // Counts down from three billion: a few seconds of real work, so it
    // spans several paid intervals.
    let long_job = wat::parse_str(countdown(3_000_000_000, "done: 3000000000 iterations\n"))?;

    if opts.verbose {
        println!("==> deploying the marketplace on the devnet");
    }
    let net = MarketFixture::deploy(Settings {
        grace_secs: 10,
        // Prices in XDR too, at 4 XDR per ICP (the cycles minting
        // canister's stand-in) with the matcher's 10 % buffer.
        pricing: Some(market_fixture::PricingSettings::default()),
        // Sealed jobs, with the devnet's vetKD key.
        privacy: true,
        // A service's replicas are probed every 10 s (the shortest the
        // matcher allows): three failures in a row fail a replica.
        probe_interval_secs: Some(10),
        ..Settings::default()
    })
    .context("deploying the canisters (build them with scripts/build-canisters.sh)")?;
    let ids = net.ids;
    let alice_client = net.client(alice());
    let started_ns = net.time_ns();
    let mut d = Demo {
        opts,
        net,
        ids,
        alice: alice_client,
        started_ns,
        real_start,
        seen_events: 0,
        audit_runs: Default::default(),
        stop_clock: Arc::new(AtomicBool::new(false)),
        dao: None,
        client: None,
        services: Default::default(),
        probe_failures: Default::default(),
        probe_fees: Default::default(),
    };
    for (name, id) in [
        ("ledger (ICRC-1/2, ICP)", ids.ledger),
        ("registry", ids.registry),
        ("escrow", ids.escrow),
        ("matcher", ids.matcher),
    ] {
        let hash = d
            .net
            .devnet()
            .module_hash(id)
            .map(hex::encode)
            .unwrap_or_default();
        d.say(format!("{name:<24} {id}  module sha256 {}…", &hash[..16]));
    }

    d.step("funding: alice (a person), a dapp's canister, two providers");
    let fee = d.net.settings.fee;
    let mut funded = vec![];
    d.net.mint(alice(), 100 * ICP)?;
    d.net.deposit(alice(), 10 * ICP)?;
    funded.push((alice(), 100 * ICP));
    d.say("alice: 100 ICP minted to her account, 10 ICP deposited in the escrow (ICRC-2 approve + deposit)");
    let client = d.net.deploy_example_client(dapp_team())?;
    d.client = Some(client);
    d.net.mint(client, 20 * ICP)?;
    funded.push((client, 20 * ICP));
    let r: Result<Nat, String> = d
        .net
        .update(client, dapp_team(), "fund", &Nat::from(5 * ICP))?;
    r.map_err(anyhow::Error::msg)?;
    d.say(format!(
        "client canister {client}: 20 ICP minted, it deposits 5 ICP into the escrow itself"
    ));
    for (n, price) in [(1u8, PRICE), (2, 2 * PRICE)] {
        d.net.onboard_provider(provider(n), node(n), 100 * ICP)?;
        funded.push((provider(n), 100 * ICP + 2 * fee));
        d.net.post_offer(provider(n), &d.offer(2, price))?;
        d.say(format!(
            "provider-{n}: registered, 100 ICP staked, offers 2 slots at {} ICP per billion fuel \
             ({} fuel/s guaranteed) or per {INTERVAL_SECS} s interval of a reserved slot",
            icp(price),
            test_world::OFFER_FUEL_PER_SEC
        ));
    }

    d.step(&format!(
        "starting two provider daemons, each with an HTTP ingress for services; the devnet \
         clock runs at {}x",
        d.opts.speed
    ));
    let node1 = d.start_node(1).await?;
    let node2 = d.start_node(2).await?;
    d.say(format!(
        "provider-1's ingress listens on http://{}, provider-2's on http://{}",
        node1.addr, node2.addr
    ));
    d.start_clock();

    d.step("alice runs sha256sum.wasm on some input");
    let sha = d.upload("sha256sum.wasm", &sha256sum).await?;
    let input = b"pay for compute in ICP\n";
    let id = d.alice.submit_job(d.spec(sha, input, 10)).await?;
    let job = d.until(id, "succeeded", |j| j.status.is_terminal()).await?;
    ensure!(
        job.status == JobStatus::Succeeded,
        "sha256 job ended {:?}",
        job.status
    );
    let out = job
        .result
        .as_ref()
        .map(|r| r.output.clone())
        .unwrap_or_default();
    let sha256_output = String::from_utf8_lossy(&out).trim().to_string();
    let expected = hex::encode(sha2::Sha256::digest(input));
    d.say(format!("job {id} stdout: {sha256_output}"));
    ensure!(
        sha256_output.contains(&expected),
        "the job computed {sha256_output}, expected {expected}"
    );
    d.say("matches sha256 computed locally");

    d.step("alice prices a job in XDR and pays in ICP at the rate of the day");
    let rates = d.net.refresh_rates()?;
    let per_e8 = rates
        .valuation(ids.ledger)
        .map(|v| v.cycles_per_unit.num / v.cycles_per_unit.den)
        .context("the matcher has no ICP/XDR rate")?;
    d.say(format!(
        "the matcher reads the cycles minting canister's rate: {} XDR per ICP",
        xdr_per_icp(per_e8)
    ));
    // PRICE e8s per billion fuel at the starting rate, in cycles.
    let xdr_price = PRICE * per_e8;
    d.net.post_offer(
        provider(1),
        &OfferSpec {
            currency: Some(Currency::Xdr),
            ..d.offer(1, xdr_price)
        },
    )?;
    d.say(format!(
        "provider-1 also offers 1 slot at {} per billion fuel",
        format_xdr(xdr_price)
    ));
    let spec = JobSpec {
        currency: Some(Currency::Xdr),
        max_price_per_gfuel: 2 * xdr_price,
        ..d.spec(sha, b"priced in XDR\n", 10)
    };
    d.say(format!(
        "alice bids up to {} per billion fuel for 10 billion fuel, paid in ICP",
        format_xdr(2 * xdr_price)
    ));
    let xid = d.alice.submit_job(spec).await?;
    let xdr_job = d
        .until(xid, "succeeded", |j| j.status.is_terminal())
        .await?;
    ensure!(
        xdr_job.status == JobStatus::Succeeded,
        "the XDR job ended {:?}",
        xdr_job.status
    );
    let pricing = xdr_job.pricing.as_ref().context("no XDR terms")?;
    let conversion = pricing.conversion.context("no conversion")?;
    d.say(format!(
        "job {xid}: its lock converted at {} XDR per ICP with a {} % buffer; provider-1's {} \
         converted at {} XDR per ICP to {} ICP per billion fuel; it ran {} fuel, paid {} ICP, \
         and the rest of the lock went back to alice",
        xdr_per_icp(pricing.terms.lock_rate.cycles_per_unit.num),
        pricing.terms.buffer_ppm / 10_000,
        format_xdr(conversion.price_cycles),
        xdr_per_icp(conversion.rate.cycles_per_unit.num),
        icp(xdr_job.price.unwrap_or(0)),
        xdr_job.fuel_reported,
        icp(xdr_job.paid),
    ));

    d.step("alice seals a job's input and output to the job's vetKey");
    let public_key = d.privacy_key().await?;
    let key_id = sealing::new_key_id();
    let private_input = b"alice's private records\n";
    let spec = JobSpec {
        input: sealing::seal(&public_key, alice(), &key_id, private_input)?,
        sealed: Some(Sealed {
            key_id,
            input: true,
            env: None,
            output: true,
        }),
        ..d.spec(sha, b"", 10)
    };
    d.say(format!(
        "alice encrypts her {} bytes of input to (alice, a random key id) under the matcher's \
         vetKD public key: {} bytes of ciphertext; the provider is to seal the output too",
        private_input.len(),
        spec.input.len()
    ));
    let pid = d.alice.submit_job(spec).await?;
    let private_job = d
        .until(pid, "succeeded", |j| j.status.is_terminal())
        .await?;
    ensure!(
        private_job.status == JobStatus::Succeeded,
        "the sealed job ended {:?}",
        private_job.status
    );
    let view = d
        .net
        .client(onlooker())
        .job_view(pid)
        .await?
        .context("the sealed job vanished")?;
    ensure!(
        view.contents_hidden
            && view
                .job
                .result
                .as_ref()
                .is_some_and(|r| r.output.is_empty()),
        "an onlooker read the sealed job's contents"
    );
    let output_sha256 = view.job.result.as_ref().map(|r| r.output_sha256);
    d.say(format!(
        "an onlooker reading job {pid} sees its terms, its fuel and its sealed output's size \
         and hash ({} bytes, sha256 {}...), not the output, sealed or not",
        view.output_bytes,
        hex::encode(&output_sha256.unwrap_or_default()[..6])
    ));
    let sealed_output = private_job
        .result
        .as_ref()
        .map(|r| r.output.clone())
        .unwrap_or_default();
    let transport = TransportKey::new();
    let key = d
        .alice
        .job_key(JobKeyRequest {
            job_id: pid,
            attempt: 0,
            transport_public_key: transport.public_key(),
        })
        .await?;
    let opened = transport.open(&key)?.open(&sealed_output)?;
    let private_output = String::from_utf8_lossy(&opened).trim().to_string();
    let expected = hex::encode(sha2::Sha256::digest(private_input));
    ensure!(
        private_output.contains(&expected),
        "the sealed job computed {private_output}, expected {expected}"
    );
    d.say(format!(
        "the provider got the job's vetKey encrypted to its node's transport key, ran the job \
         and sealed its stdout ({} bytes on chain); alice asks for the key with a transport \
         key of her own and reads {private_output}",
        sealed_output.len()
    ));

    d.step("the dapp's canister submits a job and gets the result by callback");
    let echo_sha = d.upload("echo.wasm", &echo).await?;
    let spec = d.spec(echo_sha, b"hello from a canister", 10);
    let r: Result<JobId, String> = d.net.update(client, dapp_team(), "submit", &spec)?;
    let cid = r.map_err(anyhow::Error::msg)?;
    d.until(cid, "finished", |j| j.status.is_terminal()).await?;
    let callback_output = d
        .callback_output(client, cid, 200, Duration::from_millis(25))
        .await?;
    ensure!(!callback_output.is_empty(), "the callback never arrived");
    d.say(format!(
        "the canister's job_finished callback got the notice and read the output: {:?}",
        String::from_utf8_lossy(&callback_output)
    ));

    d.step("a third provider joins below everyone's price, and lies about its results");
    d.net.onboard_provider(provider(3), node(3), 100 * ICP)?;
    funded.push((provider(3), 100 * ICP + 2 * fee));
    let cheat_offer = d.net.post_offer(provider(3), &d.offer(1, PRICE / 2))?;
    d.say(format!(
        "provider-3: registered, 100 ICP staked, offers 1 slot at {} ICP per billion fuel; its \
         node runs each job and then reports a forged output",
        icp(PRICE / 2)
    ));
    let dir3 = tempfile::tempdir()?;
    let (d3, _m3) = cheating_daemon(
        d.net.client(node(3)),
        DaemonSetup {
            provider: provider(3),
            state_dir: dir3.path(),
            shutdown_grace: Duration::from_secs(10),
            max_job_time: Duration::from_secs(120),
        },
        sandbox(),
        Cheat::WrongOutput,
    );
    let (stop3, task3) = spawn(d3);
    let input = b"audit me\n";
    let spec = JobSpec {
        audit_ppm: Some(AUDIT_ALWAYS_PPM),
        ..d.spec(sha, input, 10)
    };
    d.say(
        "alice submits sha256sum.wasm again and asks for every result to be audited \
         (audit_ppm 1000000; this demo market draws no random audits of its own, a \
         mainnet one audits at least one result in twenty)",
    );
    let cid = d.alice.submit_job(spec).await?;
    let cheated = d.until(cid, "final", |j| j.status.is_terminal()).await?;
    let verdict = cheated.audit.as_ref().and_then(|a| a.verdict);
    ensure!(
        cheated.provider == Some(provider(3)),
        "the cheapest provider, the cheat, was to run the job, not {:?}",
        cheated.provider
    );
    ensure!(
        verdict == Some(AuditVerdict::Overturned),
        "the audit's verdict was {verdict:?}"
    );
    let out = cheated
        .result
        .as_ref()
        .map(|r| r.output.clone())
        .unwrap_or_default();
    let expected = hex::encode(sha2::Sha256::digest(input));
    ensure!(
        String::from_utf8_lossy(&out).contains(&expected),
        "the buyer got {:?}, not the honest output",
        String::from_utf8_lossy(&out)
    );
    d.say(format!(
        "job {cid} stdout, the majority's: {}; alice gets the right answer and provider-3's \
         slashed stake",
        String::from_utf8_lossy(&out).trim()
    ));
    let _ = stop3.send(());
    let _ = task3.await;
    let r: Result<(), market_api::matcher::MatcherError> =
        d.net
            .update(ids.matcher, provider(3), "withdraw_offer", &cheat_offer)?;
    r.map_err(|e| anyhow::anyhow!("withdraw_offer: {e:?}"))?;
    d.say("provider-3 withdraws its offer and stops its node");

    d.step("the dapp's canister leases a web service: two replicas on two providers");
    d.net.onboard_provider(provider(4), node(4), 100 * ICP)?;
    funded.push((provider(4), 100 * ICP + 2 * fee));
    // Dearer than the jobs bid per billion fuel: it serves leases only.
    let offer4 = d.net.post_offer(provider(4), &d.offer(1, 3 * PRICE))?;
    let node4 = d.start_node(4).await?;
    d.say(format!(
        "provider-4: registered, 100 ICP staked, offers 1 slot at {} ICP per interval; its \
         ingress listens on http://{}",
        icp(3 * PRICE),
        node4.addr
    ));
    let service_sha = d.upload("hello-service.wasm", &hello_service).await?;
    let (service_id, first_calls) = d.lease_service(client, dapp_team(), service_sha).await?;
    let lost_slot = first_calls
        .iter()
        .find(|c| c.provider == provider(1))
        .map(|c| c.slot)
        .context("no replica went to provider-1, the cheapest")?;

    d.step("a long job; provider-1's machine goes dark in the middle of it, with a replica");
    let long_sha = d.upload("countdown.wasm", &long_job).await?;
    let lid = d.alice.submit_job(d.spec(long_sha, b"", 100)).await?;
    d.until(lid, "running on provider-1 with fuel reported", |j| {
        j.status == JobStatus::Running && j.provider == Some(provider(1)) && j.fuel_reported > 0
    })
    .await?;
    d.say(
        "provider-1's machine is killed: its daemon (no goodbye, no final heartbeat) and its \
         ingress",
    );
    let m1 = node1.metrics.clone();
    node1.kill().await;
    let lost_answered = d.call_lost_replica(&first_calls, lost_slot).await?;
    let long = d
        .until(lid, "finished on provider-2", |j| j.status.is_terminal())
        .await?;
    ensure!(
        long.status == JobStatus::Succeeded,
        "long job ended {:?}",
        long.status
    );
    ensure!(long.retries_used == 1, "expected one reassignment");
    let out = long
        .result
        .as_ref()
        .map(|r| r.output.clone())
        .unwrap_or_default();
    d.say(format!(
        "job {lid} stdout (from provider-2): {}",
        String::from_utf8_lossy(&out).trim()
    ));

    d.step(
        "the service's lost replica answers again elsewhere; the dapp's canister ends its lease",
    );
    let service = d
        .service_failover(
            client,
            dapp_team(),
            service_id,
            first_calls,
            (lost_slot, lost_answered),
        )
        .await?;
    let r: Result<(), market_api::matcher::MatcherError> =
        d.net
            .update(ids.matcher, provider(4), "withdraw_offer", &offer4)?;
    r.map_err(|e| anyhow::anyhow!("withdraw_offer: {e:?}"))?;
    node4.stop().await?;
    d.say("provider-4 withdraws its offer and stops its node");

    d.step("an SNS DAO reserves a slot by proposal; the dapp's canister runs a job in it");
    let dao_job = d.spec(echo_sha, b"hello from the DAO's app canister", 5);
    let dao = d.dao_story(client, dapp_team(), dao_job, 10 * ICP).await?;
    funded.push((dao.governance, 10 * ICP));

    d.step("provider-2 shuts down gracefully; everyone withdraws");
    let summary2 = node2.stop().await?;
    d.say(format!(
        "provider-2 daemon: {} results submitted, {} heartbeats accepted; provider-1 ran {} job(s) before dying",
        summary2.results_submitted,
        summary2.heartbeats_accepted,
        m1.jobs_completed.get()
    ));
    d.stop_clock.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..30 {
        d.net.advance(Duration::from_secs(1));
    }
    d.narrate_events()?;
    for p in [provider(1), provider(2), provider(3), provider(4), alice()] {
        let b = d.net.escrow_balance(p)?;
        let amount = b.free + b.claimable;
        if amount > fee {
            let args = WithdrawArgs {
                ledger: ids.ledger,
                amount,
                to: market_fixture::account(p),
            };
            let r: Result<Tokens, market_api::escrow::EscrowError> =
                d.net.update(ids.escrow, p, "withdraw", &args)?;
            r.map_err(|e| anyhow::anyhow!("withdraw: {e:?}"))?;
            d.say(format!(
                "{} withdraws {} ICP from the escrow to its ledger account",
                d.name(p),
                icp(amount)
            ));
        }
    }

    d.step("the accounts, checked against the ledger");
    let audit = d.net.audit().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut parties = vec![];
    for (p, f) in funded {
        let name = match p {
            p if p == alice() => "alice",
            p if p == client => "client canister",
            p if p == dao.governance => "SNS DAO",
            p if p == provider(1) => "provider-1",
            p if p == provider(3) => "provider-3 (cheat)",
            p if p == provider(4) => "provider-4",
            _ => "provider-2",
        };
        parties.push(Party {
            name,
            principal: p,
            funded: f,
            ledger: d.net.balance(market_fixture::account(p))?,
            escrow: d.escrow_total(p)?,
            stake: d.stake(p)?,
        });
    }
    // The storage fees jobs paid are the market's: the matcher's escrow balance.
    parties.push(Party {
        name: "market (fees)",
        principal: ids.matcher,
        funded: 0,
        ledger: d.net.balance(market_fixture::account(ids.matcher))?,
        escrow: d.escrow_total(ids.matcher)?,
        stake: 0,
    });
    let fees = audit.burned_and_fees;
    if d.opts.verbose {
        println!(
            "\n{:<16} {:>12} {:>14} {:>12} {:>12} {:>14}",
            "party", "funded", "ledger now", "in escrow", "staked", "net change"
        );
        for p in &parties {
            let now = p.ledger + p.escrow + p.stake;
            let change = if now >= p.funded {
                format!("+{}", icp(now - p.funded))
            } else {
                format!("-{}", icp(p.funded - now))
            };
            println!(
                "{:<16} {:>12} {:>14} {:>12} {:>12} {:>14}",
                p.name,
                icp(p.funded),
                icp(p.ledger),
                icp(p.escrow),
                icp(p.stake),
                change
            );
        }
        println!(
            "{:<16} {:>12} {:>14}",
            "ledger fees",
            "",
            format!("{} burned", icp(fees))
        );
        println!(
            "\naudit: total supply {} ICP = minted {} − fees {}; escrow holds exactly its {} ICP of liabilities; \
             registry holds exactly {} ICP of stakes; {} locks (jobs and reservations), {} ICP paid to providers, {} missed deadline(s) and {} result(s) caught by an audit slashed, nothing pending",
            icp(audit.total_supply),
            icp(audit.minted),
            icp(audit.burned_and_fees),
            icp(audit.escrow_liabilities),
            icp(audit.stakes),
            audit.jobs,
            icp(audit.released),
            audit.slashes,
            audit.rejected
        );
    }
    let page: EventPage<MatcherEvent> =
        d.net
            .query(ids.matcher, "get_events", &PageRequest::default())?;
    let events = page.events.into_iter().map(|e| e.event).collect();
    Ok(Report {
        parties,
        sha256_output,
        callback_output,
        long_job: long,
        events,
        audit,
        fees,
        dao,
        cheated_job: cheated,
        service,
        xdr_job,
        private_output,
    })
}
