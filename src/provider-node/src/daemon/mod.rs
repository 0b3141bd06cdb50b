//! The provider daemon (`provider-node run`): turns assignments into runs,
//! heartbeats and results.
//!
//! One loop, woken every `poll_interval`, does in order:
//!
//! 1. read the IC's time (all deadlines are in IC time);
//! 2. read `assignments(provider)`, every page of it, and reconcile: new
//!    assignments start (spec and input read, module fetched, verified, run
//!    in the sandbox), assignments that disappeared (cancelled, expired,
//!    handed to someone else) are stopped;
//! 3. move jobs along: fetched modules start running, finished runs become
//!    results (saved to the state directory before anything is sent);
//! 4. send one batched heartbeat if any job needs one ([`schedule`]);
//! 5. submit finished results, with backoff on failure.
//!
//! # Fuel and deadlines
//!
//! A one-off job is billed by fuel: it runs with its fuel budget
//! (`limits.fuel`) and a wall-clock limit ending, less a margin to get the
//! result in, at the assignment's result deadline. Each heartbeat reports
//! the job's cumulative fuel as far as the offer's declared speed allows at
//! that moment, so a node faster than it declared reports less than it
//! burnt until its result, which reports the true count ([`pace`]). A
//! reported result opens the job's challenge window: the node forgets the
//! job then (its pay becomes claimable when the window closes undisputed).
//!
//! Failures of a call, a download or a job never stop the loop: each is
//! logged, counted and retried on a later turn with exponential backoff.
//!
//! # Reserved slots and services
//!
//! A reserved slot runs nothing of its own: its reservation is read
//! (`get_reservation`) and, for plain reserved capacity, the slot is held
//! and heartbeated every interval, busy or idle. The slot of a service
//! lease runs one replica of the lease's component ([`replica`]): the
//! component is fetched like a job's module, started in the node's
//! [`ServiceHost`] under the reservation's id, and only then is the slot
//! acknowledged, every heartbeat of it carrying the replica's endpoint
//! (`<public URL>/<reservation id>/`), which the matcher records and
//! probes. A node without an ingress, a component that can't be had or
//! run, or an endpoint the matcher refuses: the slot is handed back
//! (unslashed). When the slot ends, is handed back or is no longer
//! assigned, the replica stops (its URL answers 404); after a restart the
//! replicas start again from the assignments. A TCP service's replica runs
//! in the node's TCP host on a port of its range, its heartbeats carrying
//! `<public host>:<port>` too; a node without a port range hands such
//! slots back, and a stopped replica's port is freed once it is closed.
//!
//! # Sealed jobs and secret envs
//!
//! A job whose spec is sealed ([`market_api::privacy`]) is read as any
//! other, then the daemon asks the matcher for its key (`job_key`, for the
//! attempt it holds, encrypted to a transport key the process makes at
//! start) and keeps the opened key in memory for the job's life only
//! ([`sealed`]). The input is decrypted and the secret env added to the
//! plain one (a secret replacing a plain variable of its name) before the
//! module is fetched; a part that does not open, or a secret env past the
//! env's bounds, is reported [`RunOutcome::Undecryptable`] with no output
//! and no fuel, without running anything (every honest node finds the
//! same, so an audit agrees). A job asking for a sealed output reports
//! the output encrypted to the job and the sha256 of that ciphertext; its
//! stdout is capped so that the ciphertext fits a result. A service slot
//! whose lease seals an env gets the slot's key the same way and starts
//! its replica with the secret env added; one that does not open is not
//! served and the slot is handed back. A key the matcher refuses hands
//! the job or slot back; a key call that fails on the way is retried.
//! Neither keys, plaintexts nor secret envs are logged or saved: the
//! state directory holds only results, sealed when asked.
//!
//! # Replies it can't read
//!
//! Every reply the daemon reads is bounded whatever buyers put in their
//! jobs: the listing is paged and light, and each job's spec and input are
//! read on their own ([`read`]), the input in chunks checked against its
//! sha256. A reply that still can't be read (undecodable, refused, too
//! large) is logged and counted in `unreadable_replies`; the jobs already
//! held keep running and heartbeating. A job that can't be read for good
//! (gone, or bytes that don't match their hash) is handed back before its
//! deadline, so it costs no slash.
//!
//! # Restarts
//!
//! Nothing but unsubmitted results is kept locally. After a restart the
//! assignments say which jobs are ours; an acknowledged job is re-run from
//! scratch (the sandbox is deterministic, so the result is the same) while
//! heartbeats continue from the matcher's deadline and the fuel it already
//! took; a job whose result was saved but not accepted is submitted from
//! the saved copy, not re-run, and one whose result is already in (its
//! window open) is left alone. The matcher takes one result per
//! assignment, so no job is reported twice.
//!
//! # Shutdown
//!
//! On the shutdown signal the daemon stops taking assignments, keeps
//! heartbeating and submitting for running jobs for up to `shutdown_grace`,
//! then cancels what is still running, sends a last heartbeat for the
//! intervals whose window is open, stops its replicas, and returns. Every
//! job it will not finish (assignments not yet started, jobs assigned while
//! draining, runs cancelled at the end of the grace period) and every
//! reserved slot is handed back to the matcher
//! (`hand_back`), which matches it again without slashing this provider;
//! a reserved slot's intervals already heartbeated stay paid (a one-off
//! job's fuel pay, pending until a result, goes back to its buyer). Withdraw offers first when a
//! node stops for long, so that no new jobs are assigned to it meanwhile.

pub mod fetch;
pub mod metrics;
pub mod pace;
pub mod read;
pub mod replica;
pub mod results;
pub mod schedule;
pub mod sealed;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use candid::Principal;
use market_api::matcher::{
    Assignment, HeartbeatAck, HeartbeatItem, JobKind, JobResult, JobSpec, MAX_OUTPUT_BYTES,
    MatcherError, Reservation, ReservationId, RunOutcome, SubmitResultArgs, fuel_cost,
};
use market_api::privacy::IBE_OVERHEAD;
use market_api::{JobId, Tokens};
use sha2::Digest;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::sandbox::{
    ENGINE_VERSION, Executor, Job, JobLimits, JobPhase, JobReport, Outcome, RunningJob, WasmModule,
};
use crate::service::{ServiceError, ServiceHost};
use market_client::retry::Backoff;
use market_client::sealing::{JobSecret, TransportKey};
use market_client::transport::Transport;
use market_client::{ClientError, MarketClient};

use fetch::{EgressPolicy, FetchError, ModuleFetcher};
use metrics::Metrics;
use pace::Pace;
use read::ReadError;
use replica::{Replica, TcpPorts, TcpServing};
use results::ResultStore;
use schedule::HeartbeatSlot;
use sealed::{KeyError, OpenedJob, SecretEnv};

/// Most items in one heartbeat call (the matcher's limit).
const MAX_HEARTBEAT_ITEMS: usize = 1_000;
/// Bytes of a job's stderr kept (diagnostics only; not reported).
const MAX_STDERR_BYTES: usize = 64 * 1024;

/// Settings of the daemon.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// The provider the node works for (the identity, or the provider whose
    /// profile names this node).
    pub provider: Principal,
    /// How often the loop wakes.
    pub poll_interval: Duration,
    /// How long a shutdown waits for running jobs.
    pub shutdown_grace: Duration,
    /// Wall-clock limit of one run, whatever the job's deadline allows.
    pub max_job_time: Duration,
    /// Where unsubmitted results are kept.
    pub state_dir: PathBuf,
    /// Where verified modules are cached (`None`: not cached on disk).
    pub cache_dir: Option<PathBuf>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state directory is unusable.
    #[error("state directory {dir}: {source}")]
    State {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What a run of the daemon did, returned when it stops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Results the matcher accepted.
    pub results_submitted: u64,
    /// Heartbeat items accepted.
    pub heartbeats_accepted: u64,
    /// Jobs cancelled at shutdown.
    pub cancelled_at_shutdown: u64,
    /// Jobs and slots handed back to the matcher.
    pub handed_back: u64,
    /// Service replicas started (a restarted daemon starts its replicas
    /// again).
    pub replicas_started: u64,
    /// Service slots handed back because their replica could not run (no
    /// ingress, an unusable component, the host refused it).
    pub replicas_failed: u64,
}

/// The daemon's retries: from 250 ms, doubling, up to 30 s.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(250), Duration::from_secs(30))
}

enum Stage {
    /// A reserved slot whose reservation is being read: a service lease's
    /// slot runs a replica, plain reserved capacity is held.
    /// With a sealed service env, the slot's key is asked for and the env
    /// opened in the same task.
    ReadingLease(JoinHandle<Result<Option<LeaseRead>, KeyError>>),
    LeaseRetry(Backoff),
    /// A reserved slot: nothing runs; it is heartbeated every interval,
    /// busy or idle, until the matcher stops listing it.
    Holding,
    /// A service replica's component being compiled and started in the
    /// service host (its component was fetched like a job's module).
    Starting(JoinHandle<Result<(), ServiceError>>),
    /// A service replica answering behind the ingress: its slot is
    /// heartbeated every interval, each heartbeat with its endpoint.
    Serving,
    /// Its spec and input being read from the matcher (and, for a sealed
    /// job, its key asked for and its contents opened).
    Reading(JoinHandle<Result<OpenedJob, ReadError>>),
    ReadRetry(Backoff),
    Fetching(JoinHandle<Result<Vec<u8>, FetchError>>),
    FetchRetry(Backoff),
    Running(RunningJob),
    Finished {
        args: SubmitResultArgs,
        backoff: Backoff,
    },
}

/// A reserved slot's reservation as read, with the secret env of its
/// service opened (empty if it has none; `Err` says why it would not open,
/// quoting nothing of it).
struct LeaseRead {
    reservation: Reservation,
    secret_env: Result<SecretEnv, &'static str>,
}

/// One assignment the daemon holds (a job, or a reserved slot it
/// heartbeats): its terms, its heartbeat due time and how far it got.
struct JobRecord {
    attempt: u32,
    kind: JobKind,
    /// What to run, once read (`None` for a reserved slot, or until read);
    /// a sealed job's input and env in plaintext.
    spec: Option<JobSpec>,
    /// A sealed job's key, held in memory for the job's life only.
    secret: Option<Arc<JobSecret>>,
    /// The service replica a reserved slot runs, once its lease is read
    /// (`None` for anything else).
    replica: Option<Replica>,
    /// Per billion fuel (a one-off job), per interval (a reserved slot), or
    /// 0 (a job in a reservation).
    price: Tokens,
    /// The attempt's fuel and time terms, refreshed from each listing.
    pace: Pace,
    interval_ns: u64,
    /// When the current interval is due (IC time); `None` until acknowledged.
    due_ns: Option<u64>,
    /// The seed of the run's random sources, as the matcher gives it (an
    /// audit run gets the seed of the job it re-runs).
    seed: [u8; 32],
    stage: Stage,
}

impl JobRecord {
    fn fuel_used(&self) -> u64 {
        match &self.stage {
            Stage::Running(job) => job.progress().fuel_used,
            Stage::Finished { args, .. } => args.result.fuel_used,
            _ => 0,
        }
    }

    /// The cumulative fuel a heartbeat at `now_ns` reports (see
    /// [`Pace::heartbeat_fuel`]).
    fn heartbeat_fuel(&self, now_ns: u64) -> u64 {
        let budget = self.spec.as_ref().map_or(0, |s| s.limits.fuel);
        self.pace.heartbeat_fuel(self.fuel_used(), budget, now_ns)
    }

    /// Counts fuel the matcher accepted (cumulative `fuel`) and returns the
    /// fuel newly paid and what it earned.
    fn fuel_accepted(&mut self, fuel: u64) -> (u64, Tokens) {
        let before = self.pace.fuel_reported;
        if fuel <= before {
            return (0, 0);
        }
        self.pace.fuel_reported = fuel;
        let cost = |f| fuel_cost(f, self.price).unwrap_or(Tokens::MAX);
        (fuel - before, cost(fuel).saturating_sub(cost(before)))
    }

    /// Whether a heartbeat may go out for it. A reserved slot is
    /// acknowledged only once its reservation is read and, for a service,
    /// its replica serves (the acknowledgement carries the endpoint); once
    /// acknowledged it is heartbeated whatever its stage.
    fn may_heartbeat(&self) -> bool {
        self.due_ns.is_some()
            || !matches!(self.kind, JobKind::ReservedSlot { .. })
            || matches!(self.stage, Stage::Holding | Stage::Serving)
    }

    /// The lease a reserved slot belongs to.
    fn reservation(&self) -> Option<ReservationId> {
        match self.kind {
            JobKind::ReservedSlot { reservation, .. } => Some(reservation),
            _ => None,
        }
    }

    fn heartbeat_slot(&self, job_id: JobId) -> HeartbeatSlot {
        HeartbeatSlot {
            job_id,
            interval_ns: self.interval_ns,
            due_ns: self.due_ns,
        }
    }
}

/// The daemon. Generic over the transport so that tests drive it against a
/// fake matcher or the in-process devnet.
pub struct Daemon<T> {
    client: MarketClient<T>,
    executor: Arc<Executor>,
    config: DaemonConfig,
    metrics: Metrics,
    results: ResultStore,
    fetcher: ModuleFetcher,
    /// The key sealed jobs' vetKeys are encrypted to for this process.
    transport: Arc<TransportKey>,
    grace_ns: u64,
    records: BTreeMap<JobId, JobRecord>,
    draining: bool,
    /// Assignments to hand back (draining), and those already handed back.
    to_hand_back: BTreeMap<JobId, u32>,
    handed_back: std::collections::BTreeSet<(JobId, u32)>,
    /// Assignments whose result is in (the job's challenge window open) or
    /// that ended: left alone while the listing still shows them.
    done: std::collections::BTreeSet<(JobId, u32)>,
    /// The services' host behind the node's ingress (`None`: no ingress;
    /// service slots are handed back).
    services: Option<ServiceHost>,
    /// How the node serves TCP services (`None`: it doesn't; their slots
    /// are handed back), and the ports its leases hold.
    tcp: Option<TcpServing>,
    tcp_ports: TcpPorts,
    /// TCP services to stop (and free the ports of) on this turn.
    tcp_stops: Vec<ReservationId>,
    /// Replica starts whose slot was dropped meanwhile: once each ends,
    /// its service is stopped unless another slot serves the lease.
    abandoned_starts: Vec<(ReservationId, JoinHandle<Result<(), ServiceError>>)>,
    summary: Summary,
    steps: u64,
}

pub use market_api::matcher::job_seed;

/// The sandbox limits of a job: its memory, its fuel budget (all it may be
/// billed for) and the wall-clock `timeout` of the run (see
/// [`pace::run_timeout`]).
pub fn sandbox_limits(spec: &JobSpec, timeout: Duration) -> JobLimits {
    JobLimits {
        fuel: spec.limits.fuel,
        memory_bytes: u64::from(spec.limits.memory_mib) << 20,
        table_elements: JobLimits::default().table_elements,
        timeout,
        max_stdout_bytes: max_stdout_bytes(spec),
        max_stderr_bytes: MAX_STDERR_BYTES,
    }
}

/// The most stdout a job may write: what a result holds, less what sealing
/// the output adds when the job asks for that, so that the sealed output
/// still fits (a job writing more ends `OutputTooLarge` on every node).
pub fn max_stdout_bytes(spec: &JobSpec) -> usize {
    match &spec.sealed {
        Some(s) if s.output => MAX_OUTPUT_BYTES - IBE_OVERHEAD,
        _ => MAX_OUTPUT_BYTES,
    }
}

/// The matcher's form of a sandbox outcome; `None` for a run this node
/// cancelled (nothing to report).
pub fn run_outcome(outcome: &Outcome) -> Option<RunOutcome> {
    Some(match outcome {
        Outcome::Exited { code } => RunOutcome::Exited { code: *code },
        Outcome::OutOfFuel => RunOutcome::OutOfFuel,
        Outcome::OutOfMemory { .. } => RunOutcome::OutOfMemory,
        Outcome::Deadline | Outcome::CompileTimeout { .. } => RunOutcome::Deadline,
        Outcome::OutputTooLarge { .. } => RunOutcome::OutputTooLarge,
        Outcome::Trap { message } => RunOutcome::Trap {
            message: message.clone(),
        },
        Outcome::ModuleTooLarge { .. }
        | Outcome::InvalidModule { .. }
        | Outcome::LinkError { .. }
        | Outcome::Rejected { .. } => RunOutcome::InvalidModule {
            message: outcome.to_string(),
        },
        Outcome::Cancelled => return None,
    })
}

/// The result to submit for a finished run.
pub fn job_result(report: &JobReport) -> Option<JobResult> {
    let outcome = run_outcome(&report.outcome)?;
    let output = report.stdout[..report.stdout.len().min(MAX_OUTPUT_BYTES)].to_vec();
    Some(JobResult {
        outcome,
        output_sha256: sha2::Sha256::digest(&report.stdout).into(),
        output,
        fuel_used: report.fuel_used,
        engine: report.engine_version.to_string(),
    })
}

/// The result of a job whose module could not be had. It is public, so it
/// says only what kind of fetch failure it was (see
/// [`FetchError::result_message`]); the details are in the log.
fn failed_module_result(error: &FetchError) -> JobResult {
    JobResult {
        outcome: RunOutcome::InvalidModule {
            message: error.result_message(),
        },
        output: vec![],
        output_sha256: sha2::Sha256::digest([]).into(),
        fuel_used: 0,
        engine: ENGINE_VERSION.to_string(),
    }
}

impl<T: Transport + Clone> Daemon<T> {
    /// A daemon; nothing runs until [`run`](Self::run).
    pub fn new(
        client: MarketClient<T>,
        executor: Arc<Executor>,
        config: DaemonConfig,
        metrics: Metrics,
    ) -> Result<Self, DaemonError> {
        let results =
            ResultStore::open(&config.state_dir).map_err(|source| DaemonError::State {
                dir: config.state_dir.clone(),
                source,
            })?;
        let fetcher = ModuleFetcher::new(config.cache_dir.clone());
        Ok(Self {
            client,
            executor,
            config,
            metrics,
            results,
            fetcher,
            transport: Arc::new(TransportKey::new()),
            grace_ns: 0,
            records: BTreeMap::new(),
            draining: false,
            to_hand_back: BTreeMap::new(),
            handed_back: Default::default(),
            done: Default::default(),
            services: None,
            tcp: None,
            tcp_ports: TcpPorts::default(),
            tcp_stops: Vec::new(),
            abandoned_starts: Vec::new(),
            summary: Summary::default(),
            steps: 0,
        })
    }

    /// Lets module downloads also go where `egress` allows, such as a
    /// module mirror on the provider's own network (by default only
    /// public https servers: [`EgressPolicy::strict`]).
    pub fn with_egress(mut self, egress: EgressPolicy) -> Self {
        self.fetcher = ModuleFetcher::with_egress(self.config.cache_dir.clone(), egress);
        self
    }

    /// Runs service replicas on the reserved slots of service leases in
    /// `host`, the service host behind the node's ingress. Without one the
    /// node hands service slots back.
    pub fn with_services(mut self, host: ServiceHost) -> Self {
        self.services = Some(host);
        self
    }

    /// Runs TCP services' replicas in `tcp` on ports of `ports`, one per
    /// lease (with [`with_services`](Self::with_services): their endpoints
    /// are the ingress's). Without it, TCP services' slots are handed back.
    pub fn with_tcp_services(
        mut self,
        tcp: TcpServing,
        ports: std::ops::RangeInclusive<u16>,
    ) -> Self {
        self.tcp = Some(tcp);
        self.tcp_ports = TcpPorts::new(Some(ports));
        self
    }

    /// Runs until `shutdown` resolves and the jobs are drained (or the
    /// shutdown grace period is over).
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Summary {
        tokio::pin!(shutdown);
        let provider = self.config.provider;
        info!(%provider, node = %self.client.sender(), "provider node starting");
        // The grace period turns the matcher's deadlines into due times.
        let mut backoff = backoff();
        loop {
            match self.client.matcher_config().await {
                Ok(c) => {
                    self.grace_ns = c.grace_secs.saturating_mul(1_000_000_000);
                    break;
                }
                Err(e) => {
                    self.metrics.call_errors.inc();
                    warn!(error = %e, "reading the matcher's configuration; retrying");
                    backoff.failed();
                    tokio::select! {
                        _ = &mut shutdown => return self.summary,
                        _ = tokio::time::sleep_until(backoff.retry_at()) => {}
                    }
                }
            }
        }
        let pending = self.results.list();
        if !pending.is_empty() {
            info!(
                count = pending.len(),
                "results saved before the last stop will be submitted"
            );
        }
        let mut drain_deadline: Option<Instant> = None;
        loop {
            self.step().await;
            if let Some(deadline) = drain_deadline {
                if self.records.is_empty() {
                    break;
                }
                if self
                    .records
                    .values()
                    .all(|s| matches!(s.kind, JobKind::ReservedSlot { .. }))
                {
                    // Only reserved slots are left (the jobs in them are
                    // done): stop their replicas and give the slots back,
                    // so they are matched anew without a slash.
                    self.stop_remaining().await;
                    break;
                }
                if Instant::now() >= deadline {
                    self.stop_remaining().await;
                    break;
                }
            }
            tokio::select! {
                _ = &mut shutdown, if drain_deadline.is_none() => {
                    info!(jobs = self.records.len(), grace = ?self.config.shutdown_grace,
                        "shutting down: no new jobs; waiting for running ones");
                    self.draining = true;
                    drain_deadline = Some(Instant::now() + self.config.shutdown_grace);
                    self.drop_unstarted();
                }
                _ = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
        info!(summary = ?self.summary, "provider node stopped");
        self.summary
    }

    /// One turn of the loop.
    async fn step(&mut self) {
        self.steps += 1;
        let now_ns = match self.client.time_ns().await {
            Ok(t) => t,
            Err(e) => {
                self.metrics.call_errors.inc();
                warn!(error = %e, "reading the IC's time; retrying");
                return;
            }
        };
        match self.client.assignments(self.config.provider).await {
            Ok(assignments) => {
                self.reconcile(assignments);
                self.hand_back_queued().await;
            }
            Err(e) => {
                self.metrics.call_errors.inc();
                if !e.is_transient() {
                    self.metrics.unreadable_replies.inc();
                }
                warn!(error = %e, "reading assignments; the jobs held go on, retrying");
            }
        }
        self.advance(now_ns).await;
        self.reap_abandoned_starts().await;
        self.stop_tcp_replicas().await;
        self.heartbeat(now_ns, false).await;
        self.submit_results().await;
        if self.steps % 10 == 1 {
            match self.client.escrow_balance(self.config.provider).await {
                Ok(b) => {
                    self.metrics
                        .claimable_e8s
                        .set(i64::try_from(b.claimable).unwrap_or(i64::MAX));
                }
                Err(e) => debug!(error = %e, "reading the escrow balance"),
            }
        }
        let held = self
            .records
            .values()
            .filter(|s| matches!(s.kind, JobKind::ReservedSlot { .. }))
            .count();
        self.metrics.slots_held.set(held as i64);
        self.metrics.jobs_running.set(
            self.records
                .values()
                .filter(|s| {
                    !matches!(s.stage, Stage::Finished { .. })
                        && !matches!(s.kind, JobKind::ReservedSlot { .. })
                })
                .count() as i64,
        );
    }

    fn reconcile(&mut self, assignments: Vec<Assignment>) {
        let mut current = BTreeMap::new();
        for a in assignments {
            current.insert(a.job_id, a.attempt);
            let due = a
                .acknowledged
                .then(|| a.next_deadline_ns.saturating_sub(self.grace_ns));
            match self.records.get_mut(&a.job_id) {
                Some(record) if record.attempt == a.attempt => {
                    if due.is_some() {
                        record.due_ns = due;
                    }
                    record.pace.update(Pace::of(&a));
                }
                Some(_) | None => {
                    if let Some(old) = self.records.remove(&a.job_id) {
                        info!(
                            job_id = a.job_id,
                            old = old.attempt,
                            new = a.attempt,
                            "the job was assigned anew; restarting it"
                        );
                        self.discard(a.job_id, old);
                    }
                    let given_back = self.handed_back.contains(&(a.job_id, a.attempt))
                        || self.to_hand_back.get(&a.job_id) == Some(&a.attempt);
                    if self.draining {
                        if !given_back {
                            self.to_hand_back.insert(a.job_id, a.attempt);
                        }
                        continue;
                    }
                    if given_back || self.done.contains(&(a.job_id, a.attempt)) {
                        continue;
                    }
                    self.start(a, due);
                }
            }
        }
        self.done
            .retain(|(id, attempt)| current.get(id) == Some(attempt));
        let gone: Vec<JobId> = self
            .records
            .iter()
            .filter(|(id, s)| current.get(*id) != Some(&s.attempt))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            let record = self.records.remove(&id).expect("listed");
            info!(
                job_id = id,
                attempt = record.attempt,
                "the job is no longer assigned to this provider; stopping it"
            );
            self.discard(id, record);
        }
    }

    /// Forgets a slot: cancels its run and its saved result, stops its
    /// replica.
    fn discard(&mut self, job_id: JobId, record: JobRecord) {
        let reservation = record.reservation();
        match record.stage {
            Stage::Running(job) => job.cancel(),
            Stage::Fetching(task) => task.abort(),
            Stage::Reading(task) => task.abort(),
            Stage::ReadingLease(task) => task.abort(),
            Stage::Finished { .. } => {
                self.metrics.jobs_failed.inc();
            }
            Stage::Starting(task) => {
                // Its service may be in the host by the time the task ends.
                task.abort();
                if let Some(reservation) = reservation {
                    self.abandoned_starts.push((reservation, task));
                }
            }
            Stage::Serving => {
                if let Some(reservation) = reservation {
                    self.stop_replica(reservation);
                }
            }
            Stage::FetchRetry(_) | Stage::ReadRetry(_) | Stage::LeaseRetry(_) | Stage::Holding => {}
        }
        self.results.remove(job_id, record.attempt);
    }

    /// Whether a slot this node holds serves a replica of lease
    /// `reservation`.
    fn serves(&self, reservation: ReservationId) -> bool {
        self.records
            .values()
            .any(|r| r.replica.as_ref().map(|x| x.reservation) == Some(reservation))
    }

    /// Stops the service of lease `reservation`, unless another slot this
    /// node holds still serves it (the matcher gives one provider at most
    /// one slot of a lease, but a slot re-assigned while its old attempt
    /// is dropped would be).
    fn stop_replica(&mut self, reservation: ReservationId) {
        if self.serves(reservation) {
            return;
        }
        if let Some(host) = &self.services
            && host.stop(reservation)
        {
            info!(reservation, "replica stopped");
        }
        if let Some(tcp) = &self.tcp
            && (self.tcp_ports.held_by(reservation).is_some()
                || tcp.host.info(reservation).is_some())
            && !self.tcp_stops.contains(&reservation)
        {
            self.tcp_stops.push(reservation);
        }
    }

    /// Stops the TCP services queued by [`stop_replica`](Self::stop_replica)
    /// and frees their ports, unless a slot serves the lease again by now
    /// (its start then replaces the running service on the same port).
    async fn stop_tcp_replicas(&mut self) {
        for reservation in std::mem::take(&mut self.tcp_stops) {
            if self.serves(reservation) {
                continue;
            }
            if let Some(tcp) = &self.tcp
                && tcp.host.stop(reservation).await
            {
                info!(reservation, "tcp replica stopped");
            }
            if let Some(port) = self.tcp_ports.free(reservation) {
                debug!(reservation, port, "tcp port freed");
            }
        }
    }

    /// Stops the services of dropped slots whose start ended.
    async fn reap_abandoned_starts(&mut self) {
        let (ended, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.abandoned_starts)
            .into_iter()
            .partition(|(_, task)| task.is_finished());
        self.abandoned_starts = running;
        for (reservation, task) in ended {
            let _ = task.await;
            self.stop_replica(reservation);
        }
    }

    /// Hands back a service slot whose replica can't run here (`record`,
    /// already out of the records), and stops what may run of it.
    fn replica_failed(&mut self, id: JobId, record: &JobRecord, why: &dyn std::fmt::Display) {
        warn!(job_id = id, reservation = ?record.reservation(), reason = %why,
            "the service slot's replica can't run on this node; handing the slot back");
        self.metrics.replicas_failed.inc();
        self.summary.replicas_failed += 1;
        self.to_hand_back.insert(id, record.attempt);
        if let Some(replica) = &record.replica {
            self.stop_replica(replica.reservation);
        }
    }

    fn start(&mut self, a: Assignment, due_ns: Option<u64>) {
        let saved = match a.kind {
            JobKind::ReservedSlot { reservation, .. } => Err(reservation),
            _ => Ok(self.results.load(a.job_id, a.attempt)),
        };
        let stage = match saved {
            Err(reservation) => {
                info!(
                    job_id = a.job_id,
                    attempt = a.attempt,
                    price = a.price,
                    kind = ?a.kind,
                    resumed = due_ns.is_some(),
                    "reserved slot assigned; reading its reservation"
                );
                self.spawn_lease_read(a.job_id, a.attempt, reservation)
            }
            Ok(Some(args)) => {
                info!(
                    job_id = a.job_id,
                    attempt = a.attempt,
                    "submitting the result saved before a restart"
                );
                Stage::Finished {
                    args,
                    backoff: backoff(),
                }
            }
            Ok(None) => {
                info!(
                    job_id = a.job_id,
                    attempt = a.attempt,
                    resumed = due_ns.is_some(),
                    price = a.price,
                    kind = ?a.kind,
                    input_bytes = a.input_bytes,
                    "job assigned; reading it"
                );
                self.spawn_read(a.job_id, a.attempt)
            }
        };
        self.records.insert(
            a.job_id,
            JobRecord {
                attempt: a.attempt,
                kind: a.kind,
                interval_ns: a.interval_secs.saturating_mul(1_000_000_000).max(1),
                spec: None,
                secret: None,
                replica: None,
                price: a.price,
                pace: Pace::of(&a),
                due_ns,
                seed: a.seed,
                stage,
            },
        );
    }

    /// Reads job `job_id` (held in assignment `attempt`) and, if it is
    /// sealed, gets its key and opens it.
    fn spawn_read(&self, job_id: JobId, attempt: u32) -> Stage {
        let client = self.client.clone();
        let transport = Arc::clone(&self.transport);
        Stage::Reading(tokio::spawn(async move {
            let spec = read::read_job(&client, job_id).await?;
            let secret = match spec.sealed {
                Some(_) => Some(sealed::job_secret(&client, &transport, job_id, attempt).await?),
                None => None,
            };
            Ok(OpenedJob::open(spec, secret))
        }))
    }

    fn spawn_fetch(&self, spec: &JobSpec) -> Stage {
        self.spawn_fetch_of(spec.module.clone())
    }

    /// Fetches a job's module or a service's component (same store, URLs,
    /// checks and cache).
    fn spawn_fetch_of(&self, source: market_api::matcher::ModuleSource) -> Stage {
        let client = self.client.clone();
        let fetcher = self.fetcher.clone();
        Stage::Fetching(tokio::spawn(async move {
            fetcher.fetch(&client, &source).await
        }))
    }

    /// Reads the reservation of slot `job_id` (held in assignment
    /// `attempt`) and, if its service has a sealed env, gets the slot's key
    /// and opens the env.
    fn spawn_lease_read(&self, job_id: JobId, attempt: u32, reservation: ReservationId) -> Stage {
        let client = self.client.clone();
        let transport = Arc::clone(&self.transport);
        Stage::ReadingLease(tokio::spawn(async move {
            let Some(reservation) = client.get_reservation(reservation).await? else {
                return Ok(None);
            };
            let sealed_env = reservation
                .spec
                .service
                .as_ref()
                .and_then(|s| s.sealed.as_ref())
                .and_then(|s| s.env.clone());
            let secret_env = match sealed_env {
                Some(env) => {
                    let secret = sealed::job_secret(&client, &transport, job_id, attempt).await?;
                    sealed::open_service_env(&secret, &env)
                }
                None => Ok(SecretEnv::default()),
            };
            Ok(Some(LeaseRead {
                reservation,
                secret_env,
            }))
        }))
    }

    /// Starts `replica` with its fetched `component` in the service host.
    fn spawn_start(&self, replica: &Replica, component: Vec<u8>) -> Stage {
        let Some(host) = self.services.clone() else {
            // A replica is made only for a node with a service host.
            return Stage::Starting(tokio::spawn(async {
                Err(ServiceError::Config("this node has no ingress".into()))
            }));
        };
        let replica = replica.clone();
        let tcp = self.tcp.clone();
        info!(reservation = replica.reservation, memory_mib = replica.memory_mib,
            endpoint = %replica.endpoint, tcp = ?replica.tcp.as_ref().map(|t| &t.address),
            "starting the service's replica");
        Stage::Starting(tokio::spawn(async move {
            replica::start(&host, tcp.as_ref(), &replica, &component).await
        }))
    }

    /// What a reserved slot becomes once its `reservation` is read: held
    /// (plain reserved capacity) or a replica being fetched; `None` if the
    /// node can't serve it (queued for hand-back).
    fn on_lease(&mut self, id: JobId, record: &mut JobRecord, lease: LeaseRead) -> Option<Stage> {
        match replica::replica_of(
            lease.reservation,
            self.services.as_ref(),
            self.tcp.as_ref(),
            &mut self.tcp_ports,
        ) {
            Ok(None) => {
                info!(
                    job_id = id,
                    "holding a reserved slot: heartbeating it every interval"
                );
                Some(Stage::Holding)
            }
            Ok(Some(mut replica)) => {
                match lease.secret_env {
                    Ok(env) => replica.secret_env = env,
                    Err(why) => {
                        record.replica = Some(replica);
                        self.replica_failed(id, record, &why);
                        return None;
                    }
                }
                info!(job_id = id, reservation = replica.reservation, endpoint = %replica.endpoint,
                    "a service's slot: fetching its component");
                let stage = self.spawn_fetch_of(replica.service.component.clone());
                record.replica = Some(replica);
                Some(stage)
            }
            Err(why) => {
                self.replica_failed(id, record, &why);
                None
            }
        }
    }

    /// Counts a transient call error met while `doing` something for job
    /// `id` and returns the backoff before the retry.
    fn retry_after_call_error(&self, id: JobId, doing: &str, e: &dyn std::fmt::Display) -> Backoff {
        self.metrics.call_errors.inc();
        warn!(job_id = id, error = %e, "{doing}; retrying");
        let mut b = backoff();
        b.failed();
        b
    }

    /// Moves each job to its next stage where it can (`now_ns`: the IC's
    /// time this turn).
    async fn advance(&mut self, now_ns: u64) {
        let ids: Vec<JobId> = self.records.keys().copied().collect();
        for id in ids {
            let mut record = self.records.remove(&id).expect("listed");
            let stage = std::mem::replace(&mut record.stage, Stage::FetchRetry(backoff()));
            record.stage = match stage {
                Stage::Reading(task) if task.is_finished() => match task.await {
                    Ok(Ok(opened)) => {
                        record.secret = opened.secret;
                        let stage = match opened.undecryptable {
                            Some(part) => {
                                warn!(
                                    job_id = id,
                                    part,
                                    "a sealed part of the job does not open with its key; reporting it undecryptable without running it"
                                );
                                self.finish(id, &record, sealed::undecryptable_result(part))
                            }
                            None => self.spawn_fetch(&opened.spec),
                        };
                        record.spec = Some(opened.spec);
                        stage
                    }
                    Ok(Err(e)) if e.is_transient() => {
                        Stage::ReadRetry(self.retry_after_call_error(id, "reading the job", &e))
                    }
                    Ok(Err(ReadError::NotRunning { status, .. })) => {
                        // Its result is in (a result accepted before a
                        // restart), or it ended: nothing to run.
                        info!(job_id = id, ?status, "the job is not running; leaving it");
                        self.done.insert((id, record.attempt));
                        continue;
                    }
                    Ok(Err(ReadError::Key(e))) => {
                        warn!(job_id = id, error = %e,
                            "the job's key is refused to this node; handing the job back");
                        self.to_hand_back.insert(id, record.attempt);
                        self.results.remove(id, record.attempt);
                        continue;
                    }
                    Ok(Err(e)) => {
                        self.metrics.unreadable_replies.inc();
                        warn!(job_id = id, error = %e,
                            "the job can't be read; handing it back before its deadline");
                        self.to_hand_back.insert(id, record.attempt);
                        self.results.remove(id, record.attempt);
                        continue;
                    }
                    Err(e) => {
                        warn!(job_id = id, error = %e, "the read task failed; retrying");
                        Stage::ReadRetry(backoff())
                    }
                },
                Stage::ReadRetry(b) if b.ready() => self.spawn_read(id, record.attempt),
                Stage::ReadingLease(task) if task.is_finished() => match task.await {
                    Ok(Ok(Some(lease))) => match self.on_lease(id, &mut record, lease) {
                        Some(stage) => stage,
                        None => continue,
                    },
                    Ok(Err(e)) if e.is_transient() => Stage::LeaseRetry(
                        self.retry_after_call_error(id, "reading the slot's reservation", &e),
                    ),
                    Ok(result) => {
                        self.metrics.unreadable_replies.inc();
                        let error = result.err().map(|e| e.to_string());
                        warn!(job_id = id, reservation = ?record.reservation(), ?error,
                            "the slot's reservation can't be read; handing the slot back");
                        self.to_hand_back.insert(id, record.attempt);
                        continue;
                    }
                    Err(e) => {
                        warn!(job_id = id, error = %e, "the reservation read task failed; retrying");
                        Stage::LeaseRetry(backoff())
                    }
                },
                Stage::LeaseRetry(b) if b.ready() => match record.reservation() {
                    Some(reservation) => self.spawn_lease_read(id, record.attempt, reservation),
                    None => Stage::Holding,
                },
                Stage::Fetching(task) if task.is_finished() => match task.await {
                    Ok(Ok(bytes)) => match &record.replica {
                        Some(replica) => self.spawn_start(replica, bytes),
                        None => self.run_job(id, &record, bytes, now_ns),
                    },
                    Ok(Err(e)) if e.is_transient() => Stage::FetchRetry(
                        self.retry_after_call_error(id, "fetching the module", &e),
                    ),
                    Ok(Err(e)) if record.replica.is_some() => {
                        self.replica_failed(id, &record, &e);
                        continue;
                    }
                    Ok(Err(e)) => {
                        warn!(job_id = id, error = %e, "the job's module is unusable; reporting it");
                        self.finish(id, &record, failed_module_result(&e))
                    }
                    Err(e) => {
                        warn!(job_id = id, error = %e, "the fetch task failed; retrying");
                        Stage::FetchRetry(backoff())
                    }
                },
                Stage::FetchRetry(b) if b.ready() => match (&record.replica, &record.spec) {
                    (Some(replica), _) => self.spawn_fetch_of(replica.service.component.clone()),
                    (None, Some(spec)) => self.spawn_fetch(spec),
                    (None, None) => self.spawn_read(id, record.attempt),
                },
                Stage::Starting(task) if task.is_finished() => match task.await {
                    Ok(Ok(())) => {
                        self.metrics.replicas_started.inc();
                        self.summary.replicas_started += 1;
                        if let Some(replica) = &record.replica {
                            info!(job_id = id, reservation = replica.reservation,
                                endpoint = %replica.endpoint, "replica serving");
                        }
                        Stage::Serving
                    }
                    Ok(Err(e)) => {
                        self.replica_failed(id, &record, &e);
                        continue;
                    }
                    Err(e) => {
                        self.replica_failed(id, &record, &e);
                        continue;
                    }
                },
                Stage::Running(job) if job.progress().phase == JobPhase::Finished => {
                    let report = job.wait().await;
                    info!(job_id = id, outcome = %report.outcome, fuel = report.fuel_used,
                        run_ms = report.run_time.as_millis() as u64, "job finished");
                    let sealing = record.secret.as_ref().filter(|_| {
                        record
                            .spec
                            .as_ref()
                            .and_then(|s| s.sealed.as_ref())
                            .is_some_and(|s| s.output)
                    });
                    match job_result(&report) {
                        Some(result) => {
                            let result = match sealing {
                                Some(secret) => sealed::seal_result(secret, result),
                                None => result,
                            };
                            self.finish(id, &record, result)
                        }
                        None => {
                            // Cancelled by this node: nothing to report.
                            continue;
                        }
                    }
                }
                other => other,
            };
            self.records.insert(id, record);
        }
    }

    fn run_job(&self, id: JobId, record: &JobRecord, bytes: Vec<u8>, now_ns: u64) -> Stage {
        let Some(spec) = &record.spec else {
            // A module is fetched only once the spec naming it was read.
            return self.spawn_read(id, record.attempt);
        };
        let deadline_ns = record.pace.run_deadline_ns(spec, now_ns);
        let timeout = pace::run_timeout(
            now_ns,
            deadline_ns,
            self.config.poll_interval,
            self.config.max_job_time,
        );
        let job = Job {
            module: WasmModule::new(bytes),
            input: spec.input.clone(),
            args: spec.args.clone(),
            env: spec.env.clone(),
            seed: record.seed,
            limits: sandbox_limits(spec, timeout),
        };
        info!(
            job_id = id,
            fuel = job.limits.fuel,
            memory_mib = spec.limits.memory_mib,
            timeout_ms = timeout.as_millis() as u64,
            result_due_ns = deadline_ns,
            "running the job"
        );
        Stage::Running(self.executor.spawn(job))
    }

    fn finish(&self, id: JobId, record: &JobRecord, mut result: JobResult) -> Stage {
        let fuel = record.pace.result_fuel(result.fuel_used);
        if fuel != result.fuel_used {
            warn!(
                job_id = id,
                used = result.fuel_used,
                reported = fuel,
                "the run used less fuel than the attempt already reported; reporting that"
            );
            result.fuel_used = fuel;
        }
        let args = SubmitResultArgs {
            job_id: id,
            attempt: record.attempt,
            result,
        };
        if let Err(e) = self.results.save(&args) {
            warn!(job_id = id, error = %e, "could not save the result locally; submitting anyway");
        }
        Stage::Finished {
            args,
            backoff: backoff(),
        }
    }

    /// Sends one batch if some job needs it (`all_open`: every job whose
    /// window is open, for the last heartbeat before stopping).
    async fn heartbeat(&mut self, now_ns: u64, all_open: bool) {
        let hb: Vec<HeartbeatSlot> = self
            .records
            .iter()
            .filter(|(_, s)| s.may_heartbeat())
            .map(|(id, s)| s.heartbeat_slot(*id))
            .collect();
        let ids = if all_open {
            hb.iter()
                .filter(|s| s.due_ns.is_some() && now_ns >= s.window_opens_ns())
                .map(|s| s.job_id)
                .collect()
        } else {
            schedule::batch(&hb, now_ns)
        };
        for chunk in ids.chunks(MAX_HEARTBEAT_ITEMS) {
            let items: Vec<HeartbeatItem> = chunk
                .iter()
                .map(|id| {
                    let s = &self.records[id];
                    HeartbeatItem {
                        job_id: *id,
                        attempt: s.attempt,
                        fuel_used: s.heartbeat_fuel(now_ns),
                        // Every heartbeat of a service's slot names its
                        // replica's endpoint (the same one each time).
                        endpoint: s.replica.as_ref().map(|r| r.endpoint.clone()),
                        // A TCP service's slot names its address too.
                        tcp_address: s
                            .replica
                            .as_ref()
                            .and_then(|r| r.tcp.as_ref())
                            .map(|t| t.address.clone()),
                    }
                })
                .collect();
            match self.client.heartbeat(items.clone()).await {
                Ok(acks) => {
                    for (item, ack) in items.iter().zip(acks) {
                        self.on_ack(item, ack, now_ns);
                    }
                }
                Err(e) => {
                    self.metrics.call_errors.inc();
                    warn!(error = %e, jobs = items.len(), "heartbeat failed; retrying on the next turn");
                }
            }
        }
    }

    fn on_ack(&mut self, item: &HeartbeatItem, ack: HeartbeatAck, now_ns: u64) {
        let grace = self.grace_ns;
        let Some(record) = self.records.get_mut(&item.job_id) else {
            return;
        };
        match ack {
            HeartbeatAck::Accepted { next_deadline_ns } => {
                self.metrics.heartbeats_sent.inc();
                self.summary.heartbeats_accepted += 1;
                let hb = record.heartbeat_slot(item.job_id);
                if schedule::is_late(&hb, now_ns) {
                    self.metrics.heartbeats_late.inc();
                    warn!(job_id = item.job_id, "heartbeat sent after its due time");
                }
                let acknowledged = record.due_ns.is_none();
                record.due_ns = Some(next_deadline_ns.saturating_sub(grace));
                if acknowledged {
                    info!(job_id = item.job_id, "assignment acknowledged");
                }
                if matches!(record.kind, JobKind::ReservedSlot { .. }) {
                    // A reserved slot is paid per interval, from the second
                    // heartbeat on.
                    if !acknowledged {
                        self.metrics.count_interval(record.price);
                        debug!(job_id = item.job_id, "interval paid");
                    }
                } else {
                    let (fuel, earned) = record.fuel_accepted(item.fuel_used);
                    self.metrics.count_fuel(fuel, earned);
                    debug!(job_id = item.job_id, fuel = item.fuel_used, "fuel reported");
                }
            }
            HeartbeatAck::Refused { reason } if reason.starts_with("too early") => {
                debug!(job_id = item.job_id, %reason, "heartbeat too early");
            }
            HeartbeatAck::Refused { reason } => {
                self.metrics.heartbeats_refused.inc();
                warn!(job_id = item.job_id, %reason, "heartbeat refused");
                if (item.endpoint.is_some() && reason.contains("endpoint"))
                    || (item.tcp_address.is_some() && reason.contains("tcp_address"))
                {
                    // The matcher won't take this node's endpoint or TCP
                    // address for the replica (another one is recorded, or
                    // it is malformed): the slot can't be kept here, so it
                    // goes back unslashed.
                    let record = self.records.remove(&item.job_id).expect("looked up above");
                    self.replica_failed(item.job_id, &record, &reason);
                    self.discard(item.job_id, record);
                }
            }
        }
    }

    async fn submit_results(&mut self) {
        let ready: Vec<JobId> = self
            .records
            .iter()
            .filter(|(_, s)| {
                s.due_ns.is_some()
                    && matches!(&s.stage, Stage::Finished { backoff, .. } if backoff.ready())
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            let Some(JobRecord {
                stage: Stage::Finished { args, .. },
                ..
            }) = self.records.get(&id)
            else {
                continue;
            };
            let args = args.clone();
            let success = matches!(args.result.outcome, RunOutcome::Exited { code: 0 });
            match self.client.submit_result(args.clone()).await {
                Ok(()) => {
                    info!(job_id = id, attempt = args.attempt, outcome = ?args.result.outcome,
                        fuel = args.result.fuel_used, "result accepted");
                    // The result pays the fuel its heartbeats had not
                    // reported (pending until the challenge window closes).
                    if let Some(mut record) = self.records.remove(&id) {
                        let (fuel, earned) = record.fuel_accepted(args.result.fuel_used);
                        self.metrics.count_fuel(fuel, earned);
                    }
                    self.metrics.jobs_completed.inc();
                    if !success {
                        self.metrics.jobs_failed.inc();
                    }
                    self.summary.results_submitted += 1;
                    self.results.remove(id, args.attempt);
                    self.done.insert((id, args.attempt));
                }
                Err(ClientError::Matcher(
                    e @ (MatcherError::InvalidState { .. }
                    | MatcherError::Unauthorized { .. }
                    | MatcherError::UnknownJob { .. }),
                )) => {
                    // The job moved on (finished, cancelled, reassigned) or
                    // an earlier submission whose answer was lost went through.
                    warn!(job_id = id, error = ?e, "the matcher no longer takes this result");
                    self.results.remove(id, args.attempt);
                    self.records.remove(&id);
                    self.done.insert((id, args.attempt));
                }
                Err(e) => {
                    self.metrics.call_errors.inc();
                    warn!(job_id = id, error = %e, "submitting the result; retrying");
                    if let Some(JobRecord {
                        stage: Stage::Finished { backoff, .. },
                        ..
                    }) = self.records.get_mut(&id)
                    {
                        backoff.failed();
                    }
                }
            }
        }
    }

    /// At shutdown: assignments not yet acknowledged are handed back.
    fn drop_unstarted(&mut self) {
        let unacked: Vec<JobId> = self
            .records
            .iter()
            .filter(|(_, s)| s.due_ns.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in unacked {
            let record = self.records.remove(&id).expect("listed");
            self.to_hand_back.insert(id, record.attempt);
            warn!(
                job_id = id,
                "shutting down before acknowledging this assignment"
            );
            self.discard(id, record);
        }
    }

    /// Hands back the queued assignments; a failed call is retried on the
    /// next turn (or is moot once the deadline passes).
    async fn hand_back_queued(&mut self) {
        for (id, attempt) in std::mem::take(&mut self.to_hand_back) {
            match self.client.hand_back(id, attempt).await {
                Ok(()) => {
                    info!(job_id = id, attempt, "handed the job back to the matcher");
                    self.summary.handed_back += 1;
                    self.handed_back.insert((id, attempt));
                }
                Err(e) if e.is_transient() => {
                    warn!(job_id = id, error = %e, "handing the job back; retrying");
                    self.to_hand_back.insert(id, attempt);
                }
                Err(e) => {
                    warn!(job_id = id, error = %e, "the matcher refused the hand-back");
                    self.handed_back.insert((id, attempt));
                }
            }
        }
    }

    /// The grace period is over: cancel runs, last heartbeat, keep results.
    async fn stop_remaining(&mut self) {
        if let Ok(now_ns) = self.client.time_ns().await {
            self.heartbeat(now_ns, true).await;
        }
        for (id, record) in std::mem::take(&mut self.records) {
            let reservation = record.reservation();
            let replica = matches!(record.stage, Stage::Starting(_) | Stage::Serving);
            // What runs stops; every slot but a finished one goes back.
            match record.stage {
                Stage::Running(job) => {
                    warn!(job_id = id, "cancelling a running job at shutdown");
                    job.cancel();
                    self.summary.cancelled_at_shutdown += 1;
                    let _ = job.wait().await;
                }
                Stage::Fetching(task) => task.abort(),
                Stage::Reading(task) => task.abort(),
                Stage::ReadingLease(task) => task.abort(),
                Stage::Starting(task) => {
                    task.abort();
                    let _ = task.await;
                }
                Stage::Finished { .. } => {
                    info!(
                        job_id = id,
                        "result kept in the state directory for the next start"
                    );
                    continue;
                }
                Stage::Serving
                | Stage::FetchRetry(_)
                | Stage::ReadRetry(_)
                | Stage::LeaseRetry(_)
                | Stage::Holding => {}
            }
            self.to_hand_back.insert(id, record.attempt);
            if replica && let Some(reservation) = reservation {
                self.stop_replica(reservation);
            }
        }
        for (reservation, task) in std::mem::take(&mut self.abandoned_starts) {
            task.abort();
            let _ = task.await;
            self.stop_replica(reservation);
        }
        // Their ports closed before the slots go back.
        self.stop_tcp_replicas().await;
        self.hand_back_queued().await;
    }
}

#[cfg(test)]
mod tests;
