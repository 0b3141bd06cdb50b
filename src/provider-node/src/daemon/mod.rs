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
//! intervals whose window is open, and returns. Every job it will not
//! finish (assignments not yet started, jobs assigned while draining, runs
//! cancelled at the end of the grace period) is handed back to the matcher
//! (`hand_back`), which matches it again without slashing this provider;
//! a reserved slot's intervals already heartbeated stay paid (a one-off
//! job's fuel pay, pending until a result, goes back to its buyer). Withdraw offers first when a
//! node stops for long, so that no new jobs are assigned to it meanwhile.

pub mod fetch;
pub mod metrics;
pub mod pace;
pub mod read;
pub mod results;
pub mod schedule;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use candid::Principal;
use market_api::matcher::{
    Assignment, HeartbeatAck, HeartbeatItem, JobKind, JobResult, JobSpec, MAX_OUTPUT_BYTES,
    MatcherError, RunOutcome, SubmitResultArgs, fuel_cost,
};
use market_api::{JobId, Tokens};
use sha2::Digest;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::sandbox::{
    ENGINE_VERSION, Executor, Job, JobLimits, JobPhase, JobReport, Outcome, RunningJob, WasmModule,
};
use market_client::retry::Backoff;
use market_client::transport::Transport;
use market_client::{ClientError, MarketClient};

use fetch::{EgressPolicy, FetchError, ModuleFetcher};
use metrics::Metrics;
use pace::Pace;
use read::ReadError;
use results::ResultStore;
use schedule::HeartbeatSlot;

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
    /// Jobs handed back to the matcher at shutdown.
    pub handed_back: u64,
}

/// The daemon's retries: from 250 ms, doubling, up to 30 s.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(250), Duration::from_secs(30))
}

enum Stage {
    /// A reserved slot: nothing runs; it is heartbeated every interval,
    /// busy or idle, until the matcher stops listing it.
    Holding,
    /// Its spec and input being read from the matcher.
    Reading(JoinHandle<Result<JobSpec, ReadError>>),
    ReadRetry(Backoff),
    Fetching(JoinHandle<Result<Vec<u8>, FetchError>>),
    FetchRetry(Backoff),
    Running(RunningJob),
    Finished {
        args: SubmitResultArgs,
        backoff: Backoff,
    },
}

/// One assignment the daemon holds (a job, or a reserved slot it
/// heartbeats): its terms, its heartbeat due time and how far it got.
struct JobRecord {
    attempt: u32,
    kind: JobKind,
    /// What to run, once read (`None` for a reserved slot, or until read).
    spec: Option<JobSpec>,
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
    grace_ns: u64,
    records: BTreeMap<JobId, JobRecord>,
    draining: bool,
    /// Assignments to hand back (draining), and those already handed back.
    to_hand_back: BTreeMap<JobId, u32>,
    handed_back: std::collections::BTreeSet<(JobId, u32)>,
    /// Assignments whose result is in (the job's challenge window open) or
    /// that ended: left alone while the listing still shows them.
    done: std::collections::BTreeSet<(JobId, u32)>,
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
        max_stdout_bytes: MAX_OUTPUT_BYTES,
        max_stderr_bytes: MAX_STDERR_BYTES,
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
            grace_ns: 0,
            records: BTreeMap::new(),
            draining: false,
            to_hand_back: BTreeMap::new(),
            handed_back: Default::default(),
            done: Default::default(),
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
                    .all(|s| matches!(s.stage, Stage::Holding))
                {
                    // The jobs in them are done: give the slots back, so
                    // they are matched anew without a slash.
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
            .filter(|s| matches!(s.stage, Stage::Holding))
            .count();
        self.metrics.slots_held.set(held as i64);
        self.metrics.jobs_running.set(
            self.records
                .values()
                .filter(|s| !matches!(s.stage, Stage::Finished { .. } | Stage::Holding))
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

    /// Forgets a slot: cancels its run and its saved result.
    fn discard(&mut self, job_id: JobId, record: JobRecord) {
        match record.stage {
            Stage::Running(job) => job.cancel(),
            Stage::Fetching(task) => task.abort(),
            Stage::Reading(task) => task.abort(),
            Stage::Finished { .. } => {
                self.metrics.jobs_failed.inc();
            }
            Stage::FetchRetry(_) | Stage::ReadRetry(_) | Stage::Holding => {}
        }
        self.results.remove(job_id, record.attempt);
    }

    fn start(&mut self, a: Assignment, due_ns: Option<u64>) {
        let stage = match self.results.load(a.job_id, a.attempt) {
            _ if matches!(a.kind, JobKind::ReservedSlot { .. }) => {
                info!(
                    job_id = a.job_id,
                    attempt = a.attempt,
                    price = a.price,
                    kind = ?a.kind,
                    "holding a reserved slot: heartbeating it every interval"
                );
                Stage::Holding
            }
            Some(args) => {
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
            None => {
                info!(
                    job_id = a.job_id,
                    attempt = a.attempt,
                    resumed = due_ns.is_some(),
                    price = a.price,
                    kind = ?a.kind,
                    input_bytes = a.input_bytes,
                    "job assigned; reading it"
                );
                self.spawn_read(a.job_id)
            }
        };
        self.records.insert(
            a.job_id,
            JobRecord {
                attempt: a.attempt,
                kind: a.kind,
                interval_ns: a.interval_secs.saturating_mul(1_000_000_000).max(1),
                spec: None,
                price: a.price,
                pace: Pace::of(&a),
                due_ns,
                seed: a.seed,
                stage,
            },
        );
    }

    fn spawn_read(&self, job_id: JobId) -> Stage {
        let client = self.client.clone();
        Stage::Reading(tokio::spawn(async move {
            read::read_job(&client, job_id).await
        }))
    }

    fn spawn_fetch(&self, spec: &JobSpec) -> Stage {
        let client = self.client.clone();
        let fetcher = self.fetcher.clone();
        let source = spec.module.clone();
        Stage::Fetching(tokio::spawn(async move {
            fetcher.fetch(&client, &source).await
        }))
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
                    Ok(Ok(spec)) => {
                        let stage = self.spawn_fetch(&spec);
                        record.spec = Some(spec);
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
                Stage::ReadRetry(b) if b.ready() => self.spawn_read(id),
                Stage::Fetching(task) if task.is_finished() => match task.await {
                    Ok(Ok(bytes)) => self.run_job(id, &record, bytes, now_ns),
                    Ok(Err(e)) if e.is_transient() => Stage::FetchRetry(
                        self.retry_after_call_error(id, "fetching the module", &e),
                    ),
                    Ok(Err(e)) => {
                        warn!(job_id = id, error = %e, "the job's module is unusable; reporting it");
                        self.finish(id, &record, failed_module_result(&e))
                    }
                    Err(e) => {
                        warn!(job_id = id, error = %e, "the fetch task failed; retrying");
                        Stage::FetchRetry(backoff())
                    }
                },
                Stage::FetchRetry(b) if b.ready() => match &record.spec {
                    Some(spec) => self.spawn_fetch(spec),
                    None => self.spawn_read(id),
                },
                Stage::Running(job) if job.progress().phase == JobPhase::Finished => {
                    let report = job.wait().await;
                    info!(job_id = id, outcome = %report.outcome, fuel = report.fuel_used,
                        run_ms = report.run_time.as_millis() as u64, "job finished");
                    match job_result(&report) {
                        Some(result) => self.finish(id, &record, result),
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
            return self.spawn_read(id);
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
                        endpoint: None,
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
            match record.stage {
                Stage::Running(job) => {
                    warn!(job_id = id, "cancelling a running job at shutdown");
                    job.cancel();
                    self.summary.cancelled_at_shutdown += 1;
                    let _ = job.wait().await;
                    self.to_hand_back.insert(id, record.attempt);
                }
                Stage::Fetching(task) => {
                    task.abort();
                    self.to_hand_back.insert(id, record.attempt);
                }
                Stage::Reading(task) => {
                    task.abort();
                    self.to_hand_back.insert(id, record.attempt);
                }
                Stage::Finished { .. } => {
                    info!(
                        job_id = id,
                        "result kept in the state directory for the next start"
                    );
                }
                Stage::FetchRetry(_) | Stage::ReadRetry(_) | Stage::Holding => {
                    self.to_hand_back.insert(id, record.attempt);
                }
            }
        }
        self.hand_back_queued().await;
    }
}

#[cfg(test)]
mod tests;
