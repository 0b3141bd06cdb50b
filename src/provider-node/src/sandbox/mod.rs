//! The job sandbox: runs buyers' untrusted WASI preview1 command modules in
//! wasmtime, with every resource limited and every result reproducible.
//!
//! # Model
//!
//! A [`Job`] is a module ([`WasmModule`], named by its sha256), stdin bytes,
//! args, env, a seed and [`JobLimits`]. The [`Executor`] (one per node) runs
//! it and returns a [`JobReport`]: the [`Outcome`], stdout, stderr, fuel
//! used, peak memory and timings. [`Executor::spawn`] returns a
//! [`RunningJob`] whose [`progress`](RunningJob::progress) and
//! [`cancel`](RunningJob::cancel) serve the daemon's heartbeats.
//!
//! # Limits
//!
//! | limit | mechanism | outcome |
//! |---|---|---|
//! | module size | checked before parsing | [`Outcome::ModuleTooLarge`] |
//! | module shape | parse-only check of functions, body size, locals, nesting, imports | [`Outcome::InvalidModule`] |
//! | compile time | compiled on a blocking thread under a timeout | [`Outcome::CompileTimeout`] |
//! | fuel | `consume_fuel`, budget from the job | [`Outcome::OutOfFuel`] |
//! | memory, tables | a `ResourceLimiter`; growth past the limit ends the job | [`Outcome::OutOfMemory`] |
//! | wall clock | checked each time the job yields, after every fuel slice ([`SandboxConfig::fuel_slice`]), on every host call (a call hook), and an async timeout (host calls such as `poll_oneoff`) | [`Outcome::Deadline`] |
//! | wasm stack | `max_wasm_stack` | [`Outcome::Trap`] ("call stack exhausted") |
//! | stdout, stderr | capped pipes; an overflowing write ends the job | [`Outcome::OutputTooLarge`] |
//!
//! The guest gets no preopened directories, no sockets, no host environment
//! and no host args.
//!
//! Guest code is stopped only where it yields, at the end of each fuel
//! slice: that bounds deadline latency in fuel, not in time (a slice of
//! cache-missing loads takes longer than a slice of arithmetic). Host calls
//! are not interrupted, and a guest looping on host calls that are cheap in
//! fuel but expensive for the host can outrun its deadline by far; checking
//! the deadline on host calls needs wasmtime's `call-hook` feature.
//!
//! # Determinism
//!
//! NaNs are canonicalised, relaxed SIMD, threads and shared memory are off,
//! and the WASI clocks and random sources are replaced by logical clocks and
//! seeded generators ([`determinism`]). For the same module, input, args,
//! env, seed and limits, a job gives the same output, outcome and fuel on any
//! x86_64 or aarch64 machine running the same [`ENGINE_VERSION`]. Not
//! deterministic: [`Outcome::Deadline`], [`Outcome::Cancelled`] and
//! [`Outcome::CompileTimeout`] (they depend on the machine's speed and
//! load), and the timings in the report. Fuel costs may change between
//! wasmtime versions, which is why the report carries the engine version.
//!
//! # Caching
//!
//! Compiled modules are cached by sha256 in memory (linked and ready to
//! instantiate) and optionally on disk ([`DiskCache`], HMAC-sealed so that
//! only artefacts this node wrote are ever deserialised). Modules refused
//! for a deterministic reason are remembered so that they are never
//! compiled twice.

pub(crate) mod cache;
mod config;
pub mod determinism;
mod error;
mod executor;
mod job;
mod limiter;
mod limits;
mod outcome;
mod output;
mod progress;
mod shape;

pub use cache::{Artefact, CodeHash, DiskCache};
pub use config::{DEFAULT_FUEL_SLICE, ENGINE_VERSION, ModuleShapeLimits, SandboxConfig};
pub(crate) use config::{DENIED_PROPOSALS, metered_config};
pub use error::SandboxError;
pub use executor::Executor;
pub use job::{Job, WasmModule};
pub use limits::JobLimits;
pub use outcome::{JobReport, ModuleSource, Outcome, Stream};
pub use progress::{JobPhase, JobProgress, RunningJob};
pub use shape::check_shape;
