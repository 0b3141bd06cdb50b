//! `provider-node exec`: runs a module in the same sandbox, with the same
//! limits, as a provider would. Buyers use it to test and price a job before
//! paying; providers use it to vet a module before accepting it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use provider_node::sandbox::{Executor, Job, JobLimits, SandboxConfig, WasmModule};

/// Flags of `exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The WASI preview1 command module (.wasm).
    pub module: PathBuf,
    /// File given to the job as stdin (default: empty).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Fuel budget (the deterministic work budget a buyer pays for).
    #[arg(long, default_value_t = JobLimits::default().fuel)]
    pub fuel: u64,
    /// Linear memory limit in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory_mib: u64,
    /// Table limit in elements.
    #[arg(long, default_value_t = JobLimits::default().table_elements)]
    pub table_elements: u64,
    /// Wall-clock deadline in seconds (fractions allowed).
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Cap on stdout in bytes.
    #[arg(long, default_value_t = JobLimits::default().max_stdout_bytes)]
    pub max_stdout: usize,
    /// Cap on stderr in bytes.
    #[arg(long, default_value_t = JobLimits::default().max_stderr_bytes)]
    pub max_stderr: usize,
    /// Environment variable for the job, NAME=VALUE (repeatable). Nothing of
    /// this shell's environment is passed on.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Seed of the job's deterministic random sources, as 64 hex digits.
    #[arg(long)]
    pub seed: Option<String>,
    /// Directory of the on-disk compiled-module cache.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Largest module accepted, in MiB.
    #[arg(long, default_value_t = 16)]
    pub max_module_mib: usize,
    /// Compile-time limit in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub compile_timeout: f64,
    /// Print the report as one line of key=value pairs.
    #[arg(long)]
    pub quiet: bool,
    /// Arguments passed to the job (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Runs the job; exit status 0 only for a clean exit with code 0, 1 for any
/// other outcome.
pub fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(&args.module)
        .with_context(|| format!("reading {}", args.module.display()))?;
    let input = match &args.input {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => Vec::new(),
    };
    let env = super::local::env_flags(&args.env)?;
    let seed = match &args.seed {
        Some(hex_seed) => {
            let bytes = hex::decode(hex_seed).context("--seed: not hex")?;
            bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("--seed: expected 32 bytes (64 hex digits)"))?
        }
        None => [0u8; 32],
    };
    let timeout = Duration::try_from_secs_f64(args.timeout).context("--timeout")?;
    let limits = JobLimits {
        fuel: args.fuel,
        memory_bytes: args.memory_mib.saturating_mul(1 << 20),
        table_elements: args.table_elements,
        timeout,
        max_stdout_bytes: args.max_stdout,
        max_stderr_bytes: args.max_stderr,
    };
    let config = SandboxConfig {
        concurrent_jobs: 1,
        cache_dir: args.cache_dir.clone(),
        max_module_bytes: args.max_module_mib.saturating_mul(1 << 20),
        max_compile_time: Duration::try_from_secs_f64(args.compile_timeout)
            .context("--compile-timeout")?,
        max_job_memory_bytes: limits
            .memory_bytes
            .max(SandboxConfig::default().max_job_memory_bytes),
        max_job_table_elements: limits
            .table_elements
            .max(SandboxConfig::default().max_job_table_elements),
        ..SandboxConfig::default()
    };
    let executor = Executor::new(config)?;
    let job = Job {
        module: WasmModule::new(wasm),
        input,
        args: args.args.clone(),
        env,
        seed,
        limits,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(executor.run(job));

    std::io::stdout().write_all(&report.stdout)?;
    std::io::stdout().flush()?;
    let mut err = std::io::stderr().lock();
    // The job's stderr comes first, then the sandbox's report.
    err.write_all(&report.stderr)?;
    let fields = [
        ("outcome", report.outcome.to_string()),
        ("fuel_used", report.fuel_used.to_string()),
        ("peak_memory_bytes", report.peak_memory_bytes.to_string()),
        (
            "prepare_ms",
            format!("{:.3}", report.prepare_time.as_secs_f64() * 1e3),
        ),
        (
            "run_ms",
            format!("{:.3}", report.run_time.as_secs_f64() * 1e3),
        ),
        ("module", format!("{:?}", report.module_source)),
        ("code_sha256", hex::encode(report.code_hash)),
        ("engine", report.engine_version.to_string()),
    ];
    if args.quiet {
        let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        writeln!(err, "{}", line.join(" "))?;
    } else {
        writeln!(err, "--- provider-node exec ---")?;
        for (k, v) in &fields {
            writeln!(err, "{k:>18}: {v}")?;
        }
    }
    Ok(if report.outcome.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
