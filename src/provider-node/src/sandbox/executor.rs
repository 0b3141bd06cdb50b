//! The executor: one engine per node, a cache of compiled modules, a bounded
//! pool of job slots on a runtime of its own, and the per-job store with
//! every limit wired in.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::{CallHook, Engine, ExternType, InstancePre, Linker, Module, Store, Trap};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use super::cache::{BoundedMap, DiskCache};
use super::config::{ENGINE_VERSION, SandboxConfig};
use super::determinism::{LogicalClock, SeededRandom, WALL_CLOCK_START_SECS};
use super::error::SandboxError;
use super::job::{Job, WasmModule};
use super::limiter::{JobLimiter, MemoryLimitExceeded};
use super::limits::JobLimits;
use super::outcome::{JobReport, ModuleSource, Outcome, Stream};
use super::output::{CappedOutput, OutputLimitExceeded};
use super::progress::{JobControl, JobPhase, RunningJob};
use super::shape::check_shape;

/// What a job's store holds: its WASI context and its resource limiter.
struct JobState {
    wasi: WasiP1Ctx,
    limiter: JobLimiter,
}

/// A module compiled, linked against WASI and ready to instantiate.
type Prepared = Arc<InstancePre<JobState>>;

/// Why a running job was stopped from outside the guest.
#[derive(Debug, thiserror::Error)]
enum Stopped {
    #[error("wall-clock deadline exceeded")]
    Deadline,
    #[error("cancelled")]
    Cancelled,
}

/// Runs jobs in wasmtime sandboxes. Create one per node and share it (it is
/// cheap to call from many tasks); it owns the node's [`Engine`], the module
/// cache and a small runtime whose threads execute jobs, so guest code never
/// runs on the caller's runtime.
pub struct Executor {
    inner: Arc<Inner>,
    runtime: Option<tokio::runtime::Runtime>,
}

struct Inner {
    config: SandboxConfig,
    engine: Engine,
    linker: Linker<JobState>,
    compiled: BoundedMap<Prepared>,
    refused: BoundedMap<Outcome>,
    disk: Option<DiskCache>,
    job_slots: Arc<Semaphore>,
    compile_slots: Arc<Semaphore>,
}

impl Executor {
    /// Builds the engine, the WASI linker, the caches and the job runtime.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let engine = config.engine()?;
        let mut linker = Linker::new(&engine);
        p1::add_to_linker_async(&mut linker, |state: &mut JobState| &mut state.wasi)
            .map_err(|e| SandboxError::Linker(format!("{e:#}")))?;
        let disk = match &config.cache_dir {
            Some(dir) => Some(DiskCache::open(dir, &engine)?),
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.concurrent_jobs)
            .thread_name("sandbox-job")
            .thread_stack_size(config.max_wasm_stack + (2 << 20))
            .enable_time()
            .build()
            .map_err(SandboxError::Runtime)?;
        let inner = Inner {
            compiled: BoundedMap::new(config.memory_cache_entries),
            refused: BoundedMap::new(config.memory_cache_entries),
            job_slots: Arc::new(Semaphore::new(config.concurrent_jobs)),
            compile_slots: Arc::new(Semaphore::new(config.concurrent_compiles)),
            disk,
            linker,
            engine,
            config,
        };
        Ok(Self {
            inner: Arc::new(inner),
            runtime: Some(runtime),
        })
    }

    /// The node's engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The settings this executor was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Starts `job` and returns a handle to observe, cancel or await it.
    /// The job waits for a free slot if `concurrent_jobs` are running.
    pub fn spawn(&self, job: Job) -> RunningJob {
        let control = Arc::new(JobControl::new());
        let code_hash = *job.module.hash();
        let inner = Arc::clone(&self.inner);
        let task = self
            .runtime()
            .spawn(run_job(inner, job, Arc::clone(&control)));
        RunningJob {
            control,
            task,
            code_hash,
        }
    }

    /// Runs `job` to the end and returns its report.
    pub async fn run(&self, job: Job) -> JobReport {
        self.spawn(job).wait().await
    }

    /// Gets `module` ready to run (checks, compiles, caches) without running
    /// it: how a provider vets a module before accepting a job, and how the
    /// daemon warms the cache when a job is assigned.
    pub async fn prepare(&self, module: WasmModule) -> Result<ModuleSource, Outcome> {
        let inner = Arc::clone(&self.inner);
        let task = self
            .runtime()
            .spawn(async move { inner.prepare(&module).await.map(|(_, source)| source) });
        task.await.unwrap_or_else(|e| {
            Err(Outcome::Trap {
                message: format!("sandbox internal error: {e}"),
            })
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("runtime lives until drop")
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Don't wait for jobs (or abandoned compilations) to finish; this
            // may run inside another runtime, where blocking is not allowed.
            runtime.shutdown_background();
        }
    }
}

/// A report for a job that ended before running.
fn early_report(job: &Job, outcome: Outcome, source: ModuleSource, prepare: Duration) -> JobReport {
    JobReport {
        outcome,
        code_hash: *job.module.hash(),
        stdout: Vec::new(),
        stderr: Vec::new(),
        fuel_used: 0,
        peak_memory_bytes: 0,
        prepare_time: prepare,
        run_time: Duration::ZERO,
        module_source: source,
        engine_version: ENGINE_VERSION,
    }
}

async fn run_job(inner: Arc<Inner>, job: Job, control: Arc<JobControl>) -> JobReport {
    let started = Instant::now();
    let ready = tokio::select! {
        biased;
        _ = control.cancelled() => None,
        ready = async {
            let slot = Arc::clone(&inner.job_slots).acquire_owned().await;
            control.set_phase(JobPhase::Preparing);
            let prepared = match inner.check_job(&job) {
                Err(outcome) => Err((outcome, ModuleSource::None)),
                Ok(()) => inner.prepare(&job.module).await.map_err(|o| (o, ModuleSource::None)),
            };
            (slot, prepared)
        } => Some(ready),
    };
    let report = match ready {
        None => early_report(
            &job,
            Outcome::Cancelled,
            ModuleSource::None,
            started.elapsed(),
        ),
        Some((_slot, Err((outcome, source)))) => {
            early_report(&job, outcome, source, started.elapsed())
        }
        Some((_slot, Ok((pre, source)))) => {
            control.set_phase(JobPhase::Running);
            let prepare_time = started.elapsed();
            let mut report = execute(&inner, &pre, job, &control).await;
            report.prepare_time = prepare_time;
            report.module_source = source;
            report
        }
    };
    control.record_fuel(report.fuel_used);
    control.set_phase(JobPhase::Finished);
    report
}

impl Inner {
    /// Refuses jobs that ask for more than this node offers.
    fn check_job(&self, job: &Job) -> Result<(), Outcome> {
        let c = &self.config;
        let reject = |reason: String| Err(Outcome::Rejected { reason });
        if job.limits.memory_bytes > c.max_job_memory_bytes {
            return reject(format!(
                "memory limit {} bytes exceeds the node's {}",
                job.limits.memory_bytes, c.max_job_memory_bytes
            ));
        }
        if job.limits.table_elements > c.max_job_table_elements {
            return reject(format!(
                "table limit {} exceeds the node's {}",
                job.limits.table_elements, c.max_job_table_elements
            ));
        }
        if job.input.len() > c.max_input_bytes {
            return reject(format!(
                "input of {} bytes exceeds the node's {}",
                job.input.len(),
                c.max_input_bytes
            ));
        }
        let strings = job
            .args
            .iter()
            .map(String::as_str)
            .chain(job.env.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]));
        let mut total = 0usize;
        for s in strings {
            if s.contains('\0') {
                return reject("args and env must not contain NUL".into());
            }
            total += s.len() + 1;
        }
        if total > c.max_args_env_bytes {
            return reject(format!(
                "args and env take {total} bytes, the node allows {}",
                c.max_args_env_bytes
            ));
        }
        if job.env.iter().any(|(k, _)| k.is_empty() || k.contains('=')) {
            return reject("env names must be non-empty and contain no '='".into());
        }
        Ok(())
    }

    /// Finds or builds the ready-to-instantiate module for `module`.
    async fn prepare(&self, module: &WasmModule) -> Result<(Prepared, ModuleSource), Outcome> {
        let hash = module.hash();
        if let Some(pre) = self.compiled.get(hash) {
            return Ok((pre, ModuleSource::MemoryCache));
        }
        if let Some(outcome) = self.refused.get(hash) {
            return Err(outcome);
        }
        let result = self.load_or_compile(module).await;
        match result {
            Ok((compiled, source)) => match self.link(compiled) {
                Ok(pre) => {
                    self.compiled.insert(*hash, Arc::clone(&pre));
                    Ok((pre, source))
                }
                Err(outcome) => {
                    self.refused.insert(*hash, outcome.clone());
                    Err(outcome)
                }
            },
            Err(outcome) => {
                self.refused.insert(*hash, outcome.clone());
                Err(outcome)
            }
        }
    }

    async fn load_or_compile(
        &self,
        module: &WasmModule,
    ) -> Result<(Module, ModuleSource), Outcome> {
        let size = module.bytes().len();
        let limit = self.config.max_module_bytes;
        if size > limit {
            return Err(Outcome::ModuleTooLarge { size, limit });
        }
        if let Some(disk) = &self.disk
            && let Some(compiled) = disk.load(&self.engine, module.hash())
        {
            return Ok((compiled, ModuleSource::DiskCache));
        }
        check_shape(module.bytes(), &self.config.module_shape)
            .map_err(|reason| Outcome::InvalidModule { reason })?;

        // Compile on a blocking thread with a deadline. Cranelift can't be
        // interrupted: on timeout the thread finishes in the background,
        // holding its compile slot, and the module is refused from then on.
        let slot = Arc::clone(&self.compile_slots)
            .acquire_owned()
            .await
            .expect("the compile semaphore is never closed");
        let engine = self.engine.clone();
        let wasm = module.clone();
        let compile = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            Module::new(&engine, wasm.bytes())
        });
        let limit = self.config.max_compile_time;
        let compiled = match tokio::time::timeout(limit, compile).await {
            Err(_) => return Err(Outcome::CompileTimeout { limit }),
            Ok(Err(panic)) => {
                return Err(Outcome::InvalidModule {
                    reason: format!("compiler failed: {panic}"),
                });
            }
            Ok(Ok(Err(e))) => {
                return Err(Outcome::InvalidModule {
                    reason: format!("{e:#}"),
                });
            }
            Ok(Ok(Ok(compiled))) => compiled,
        };
        if let Some(disk) = &self.disk {
            // A cache write failure costs only a recompile later.
            let _ = disk.store(module.hash(), &compiled);
        }
        Ok((compiled, ModuleSource::Compiled))
    }

    fn link(&self, module: Module) -> Result<Prepared, Outcome> {
        match module.get_export("_start") {
            Some(ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() == 0 => {}
            Some(_) => {
                return Err(Outcome::InvalidModule {
                    reason: "export `_start` is not a function of type [] -> []".into(),
                });
            }
            None => {
                return Err(Outcome::InvalidModule {
                    reason: "no `_start` export: a job must be a WASI command module".into(),
                });
            }
        }
        self.linker
            .instantiate_pre(&module)
            .map(Arc::new)
            .map_err(|e| Outcome::LinkError {
                message: format!("{e:#}"),
            })
    }
}

/// Instantiates and runs a prepared job with every limit in place.
async fn execute(inner: &Inner, pre: &Prepared, job: Job, control: &Arc<JobControl>) -> JobReport {
    let limits = job.limits.clone();
    if let Err(outcome) = check_declared_sizes(pre.module(), &limits) {
        return early_report(&job, outcome, ModuleSource::None, Duration::ZERO);
    }
    let stdout = CappedOutput::new(Stream::Stdout, limits.max_stdout_bytes);
    let stderr = CappedOutput::new(Stream::Stderr, limits.max_stderr_bytes);
    let mut argv = Vec::with_capacity(job.args.len() + 1);
    argv.push("job".to_string());
    argv.extend(job.args.iter().cloned());
    let wasi = WasiCtxBuilder::new()
        .stdin(MemoryInputPipe::new(job.input))
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .args(&argv)
        .envs(&job.env)
        .wall_clock(LogicalClock::new(WALL_CLOCK_START_SECS * 1_000_000_000))
        .monotonic_clock(LogicalClock::new(0))
        .secure_random(SeededRandom::new(&job.seed, "secure"))
        .insecure_random(SeededRandom::new(&job.seed, "insecure"))
        .insecure_random_seed(SeededRandom::derive_u128(&job.seed, "insecure-seed"))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build_p1();
    let state = JobState {
        wasi,
        limiter: JobLimiter::new(limits.memory_bytes, limits.table_elements),
    };
    let mut store = Store::new(&inner.engine, state);
    store.limiter(|state| &mut state.limiter);
    store
        .set_fuel(limits.fuel)
        .expect("fuel metering is enabled on the engine");
    // Fuel slices are where guest code can be stopped: after each slice the
    // job yields to `Supervised`, which checks the deadline and the cancel
    // flag and publishes progress. The total is the same, so fuel counts
    // stay deterministic.
    let slice = inner.config.fuel_slice;
    store
        .fuel_async_yield_interval(Some(slice))
        .expect("fuel and async are both available");
    let started = Instant::now();
    let deadline = started + limits.timeout;
    // Host calls end no fuel slice, and a guest can loop on calls that cost
    // it little fuel but the host much work (huge iovec lists, large random
    // fills): check the deadline and the cancel flag on every host call too.
    let hook_control = Arc::clone(control);
    store.call_hook(move |_, hook| {
        if matches!(hook, CallHook::CallingHost | CallHook::ReturningFromHost) {
            if hook_control.is_cancelled() {
                return Err(wasmtime::Error::new(Stopped::Cancelled));
            }
            if Instant::now() >= deadline {
                return Err(wasmtime::Error::new(Stopped::Deadline));
            }
        }
        Ok(())
    });

    let result = {
        let run = std::pin::pin!(async {
            let instance = pre.instantiate_async(&mut store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call_async(&mut store, ()).await
        });
        let supervised = Supervised {
            run,
            control,
            deadline,
            slice,
            budget: limits.fuel,
            slices: 0,
        };
        // `Supervised` stops guest code at its next fuel slice; these arms
        // stop a guest blocked in a host call (e.g. `poll_oneoff` sleeping),
        // which yields no fuel slices.
        tokio::select! {
            result = supervised => result,
            _ = tokio::time::sleep_until(deadline.into()) => {
                Err(wasmtime::Error::new(Stopped::Deadline))
            }
            _ = control.cancelled() => Err(wasmtime::Error::new(Stopped::Cancelled)),
        }
    };
    let run_time = started.elapsed();
    let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let limiter = &store.data().limiter;
    let outcome = classify(result, &stdout, &stderr, limiter);
    JobReport {
        outcome,
        code_hash: *job.module.hash(),
        stdout: stdout.contents(),
        stderr: stderr.contents(),
        fuel_used,
        peak_memory_bytes: limiter.peak_memory(),
        prepare_time: Duration::ZERO,
        run_time,
        module_source: ModuleSource::None,
        engine_version: ENGINE_VERSION,
    }
}

/// Drives a job's instantiation and `_start`. Before each poll it checks
/// the job's deadline and cancel flag, so a guest is stopped at the first
/// fuel slice that ends past either; when the guest yields at the end of a
/// slice, it publishes the fuel used so far.
struct Supervised<'a, F> {
    run: Pin<&'a mut F>,
    control: &'a JobControl,
    deadline: Instant,
    slice: u64,
    budget: u64,
    slices: u64,
}

impl<F: Future<Output = wasmtime::Result<()>>> Future for Supervised<'_, F> {
    type Output = wasmtime::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.control.is_cancelled() {
            return Poll::Ready(Err(wasmtime::Error::new(Stopped::Cancelled)));
        }
        if Instant::now() >= self.deadline {
            return Poll::Ready(Err(wasmtime::Error::new(Stopped::Deadline)));
        }
        // wasmtime ends a fuel slice by waking the task and returning
        // `Pending` in the same poll; host calls that wait (timers) are woken
        // later, from elsewhere. So a wake during the poll marks a slice.
        let watch = Arc::new(SliceWaker {
            woken: AtomicBool::new(false),
            task: cx.waker().clone(),
        });
        let waker = Waker::from(Arc::clone(&watch));
        let poll = self.run.as_mut().poll(&mut Context::from_waker(&waker));
        if poll.is_pending() && watch.woken.load(Ordering::Relaxed) {
            // The k-th slice ends once at least k slices of fuel are spent, so
            // this is a lower bound on the fuel used.
            self.slices += 1;
            let used = self.slices.saturating_mul(self.slice).min(self.budget);
            self.control.record_fuel(used);
        }
        poll
    }
}

/// Wraps the task's waker to notice wakes that happen during a poll.
struct SliceWaker {
    woken: AtomicBool,
    task: Waker,
}

impl Wake for SliceWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Relaxed);
        self.task.wake_by_ref();
    }
}

/// Ends a job whose module declares initial memories or tables above the
/// job's limits, before anything is allocated for it.
fn check_declared_sizes(module: &Module, limits: &JobLimits) -> Result<(), Outcome> {
    let needs = module.resources_required();
    if let Some(pages) = needs.max_initial_memory_size {
        let bytes = pages.saturating_mul(JobLimits::WASM_PAGE);
        if bytes > limits.memory_bytes {
            return Err(Outcome::OutOfMemory {
                detail: format!(
                    "module declares an initial memory of {bytes} bytes, limit {}",
                    limits.memory_bytes
                ),
            });
        }
    }
    if let Some(elements) = needs.max_initial_table_size
        && elements > limits.table_elements
    {
        return Err(Outcome::OutOfMemory {
            detail: format!(
                "module declares an initial table of {elements} elements, limit {}",
                limits.table_elements
            ),
        });
    }
    Ok(())
}

/// Finds an error of type `E` anywhere in `err`'s chain of causes.
fn find<E: std::error::Error + 'static>(err: &wasmtime::Error) -> Option<&E> {
    err.chain().find_map(|cause| cause.downcast_ref::<E>())
}

fn classify(
    result: wasmtime::Result<()>,
    stdout: &CappedOutput,
    stderr: &CappedOutput,
    limiter: &JobLimiter,
) -> Outcome {
    let overflow = [stdout, stderr].into_iter().find(|s| s.overflowed());
    let err = match result {
        Ok(()) => {
            // A guest that ignored a failed write still broke its cap.
            return match overflow {
                Some(s) => output_too_large(s.limit_error()),
                None => Outcome::Exited { code: 0 },
            };
        }
        Err(err) => err,
    };
    if let Some(stopped) = find::<Stopped>(&err) {
        return match stopped {
            Stopped::Deadline => Outcome::Deadline,
            Stopped::Cancelled => Outcome::Cancelled,
        };
    }
    if let Some(e) = find::<MemoryLimitExceeded>(&err) {
        return Outcome::OutOfMemory {
            detail: e.0.clone(),
        };
    }
    if let Some(e) = find::<OutputLimitExceeded>(&err) {
        return output_too_large(OutputLimitExceeded { ..*e });
    }
    if let Some(s) = overflow {
        return output_too_large(s.limit_error());
    }
    if let Some(exit) = find::<I32Exit>(&err) {
        return Outcome::Exited { code: exit.0 };
    }
    if let Some(trap) = find::<Trap>(&err) {
        return match trap {
            Trap::OutOfFuel => Outcome::OutOfFuel,
            trap => Outcome::Trap {
                message: trap.to_string(),
            },
        };
    }
    if let Some(detail) = limiter.violation() {
        return Outcome::OutOfMemory {
            detail: detail.to_string(),
        };
    }
    Outcome::Trap {
        message: format!("{err:#}"),
    }
}

fn output_too_large(e: OutputLimitExceeded) -> Outcome {
    Outcome::OutputTooLarge {
        stream: e.stream,
        limit: e.limit,
    }
}
