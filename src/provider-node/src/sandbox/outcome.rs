//! How a job ended, and the report handed back to the daemon or the CLI.

use std::fmt;
use std::time::Duration;

/// Which output stream a limit applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The job's stdout (its result).
    Stdout,
    /// The job's stderr (its diagnostics).
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// How a job ended. Exactly one outcome per job; every limit has its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `_start` returned or the job called `proc_exit`; `code` 0 is success.
    Exited {
        /// The exit code (0 when `_start` returned).
        code: i32,
    },
    /// The fuel budget ran out: deterministic, reproducible by anyone.
    OutOfFuel,
    /// The job tried to grow a memory or table past its limit, or declared
    /// one larger than the limit.
    OutOfMemory {
        /// What was asked for beyond the limit.
        detail: String,
    },
    /// The wall-clock deadline passed (not deterministic: depends on the
    /// machine and its load).
    Deadline,
    /// The job wrote more than its cap to a stream; the output kept is the
    /// first `limit` bytes.
    OutputTooLarge {
        /// The stream that overflowed.
        stream: Stream,
        /// The cap in bytes.
        limit: usize,
    },
    /// The job trapped (stack overflow, unreachable, division by zero...).
    Trap {
        /// wasmtime's description of the trap.
        message: String,
    },
    /// The module is larger than the node accepts (checked before parsing).
    ModuleTooLarge {
        /// The module's size in bytes.
        size: usize,
        /// The node's limit in bytes.
        limit: usize,
    },
    /// The module is malformed, fails validation, has a shape
    /// over the node's limits, or has no `_start`.
    InvalidModule {
        /// Why the module was refused.
        reason: String,
    },
    /// The module imports something the sandbox does not provide.
    LinkError {
        /// The linker's message naming the import.
        message: String,
    },
    /// Compiling the module took longer than the node allows.
    CompileTimeout {
        /// The limit that was exceeded.
        limit: Duration,
    },
    /// The job asked for more than the node offers (memory, input size...).
    Rejected {
        /// Which request exceeded which node limit.
        reason: String,
    },
    /// The job was cancelled through its [`RunningJob`](super::RunningJob).
    Cancelled,
}

impl Outcome {
    /// True only for a clean exit with code 0.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Exited { code: 0 })
    }

    /// True when the outcome depends only on the module, input and limits,
    /// so a re-execution must reproduce it with the same output and fuel.
    pub fn is_deterministic(&self) -> bool {
        !matches!(
            self,
            Outcome::Deadline | Outcome::Cancelled | Outcome::CompileTimeout { .. }
        )
    }

    /// A short stable name for logs and the CLI (`exited`, `out-of-fuel`...).
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Exited { .. } => "exited",
            Outcome::OutOfFuel => "out-of-fuel",
            Outcome::OutOfMemory { .. } => "out-of-memory",
            Outcome::Deadline => "deadline",
            Outcome::OutputTooLarge { .. } => "output-too-large",
            Outcome::Trap { .. } => "trap",
            Outcome::ModuleTooLarge { .. } => "module-too-large",
            Outcome::InvalidModule { .. } => "invalid-module",
            Outcome::LinkError { .. } => "link-error",
            Outcome::CompileTimeout { .. } => "compile-timeout",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited { code } => write!(f, "exited with code {code}"),
            Outcome::OutOfFuel => f.write_str("out of fuel"),
            Outcome::OutOfMemory { detail } => write!(f, "out of memory: {detail}"),
            Outcome::Deadline => f.write_str("wall-clock deadline exceeded"),
            Outcome::OutputTooLarge { stream, limit } => {
                write!(f, "{stream} exceeded its limit of {limit} bytes")
            }
            Outcome::Trap { message } => write!(f, "trap: {message}"),
            Outcome::ModuleTooLarge { size, limit } => {
                write!(f, "module is {size} bytes, limit {limit}")
            }
            Outcome::InvalidModule { reason } => write!(f, "invalid module: {reason}"),
            Outcome::LinkError { message } => write!(f, "link error: {message}"),
            Outcome::CompileTimeout { limit } => {
                write!(f, "compilation exceeded {} ms", limit.as_millis())
            }
            Outcome::Rejected { reason } => write!(f, "rejected: {reason}"),
            Outcome::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// Where the compiled module came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleSource {
    /// Found compiled in memory.
    MemoryCache,
    /// Loaded from the on-disk cache after its integrity check.
    DiskCache,
    /// Compiled for this job.
    Compiled,
    /// Refused before a compiled module existed.
    None,
}

/// Everything the sandbox reports about one finished job.
#[derive(Clone, Debug)]
pub struct JobReport {
    /// How the job ended.
    pub outcome: Outcome,
    /// sha256 of the module's bytes.
    pub code_hash: [u8; 32],
    /// What the job wrote to stdout (at most its cap).
    pub stdout: Vec<u8>,
    /// What the job wrote to stderr (at most its cap).
    pub stderr: Vec<u8>,
    /// Fuel consumed by instantiation and `_start`. Deterministic whenever
    /// [`Outcome::is_deterministic`] holds.
    pub fuel_used: u64,
    /// Largest linear memory the job reached, in bytes.
    pub peak_memory_bytes: u64,
    /// Time spent getting the module ready (cache lookup or compilation).
    pub prepare_time: Duration,
    /// Time spent instantiating and running the job.
    pub run_time: Duration,
    /// Where the compiled module came from.
    pub module_source: ModuleSource,
    /// The engine version the fuel count and output are valid for.
    pub engine_version: &'static str,
}
