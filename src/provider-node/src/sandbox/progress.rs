//! Observing and cancelling a running job: the hooks the daemon uses for
//! heartbeats and for jobs the buyer or the matcher cancelled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::ENGINE_VERSION;
use super::outcome::{JobReport, ModuleSource, Outcome};

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPhase {
    /// Waiting for a free execution slot.
    Queued,
    /// Looking up or compiling the module.
    Preparing,
    /// Instantiating or running `_start`.
    Running,
    /// Done; the report is ready.
    Finished,
}

/// A snapshot of a job's progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobProgress {
    /// The job's phase.
    pub phase: JobPhase,
    /// Fuel consumed so far. Updated at the end of each fuel slice
    /// ([`SandboxConfig::fuel_slice`](super::SandboxConfig::fuel_slice))
    /// while running, so it may lag by up to one slice; exact in the final
    /// report.
    pub fuel_used: u64,
    /// Time since the job was handed to the executor.
    pub elapsed: Duration,
}

/// State shared between a running job and its [`RunningJob`] handle.
#[derive(Debug)]
pub(crate) struct JobControl {
    submitted: Instant,
    phase: AtomicU8,
    fuel_used: AtomicU64,
    cancel: watch::Sender<bool>,
}

impl JobControl {
    pub(crate) fn new() -> Self {
        Self {
            submitted: Instant::now(),
            phase: AtomicU8::new(JobPhase::Queued as u8),
            fuel_used: AtomicU64::new(0),
            cancel: watch::Sender::new(false),
        }
    }

    pub(crate) fn set_phase(&self, phase: JobPhase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    pub(crate) fn record_fuel(&self, used: u64) {
        self.fuel_used.store(used, Ordering::Relaxed);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Resolves once the job is cancelled.
    pub(crate) async fn cancelled(&self) {
        let mut rx = self.cancel.subscribe();
        // The sender lives as long as `self`, so this can't fail.
        let _ = rx.wait_for(|cancelled| *cancelled).await;
    }

    fn cancel(&self) {
        self.cancel.send_replace(true);
    }

    fn progress(&self) -> JobProgress {
        let phase = match self.phase.load(Ordering::Acquire) {
            0 => JobPhase::Queued,
            1 => JobPhase::Preparing,
            2 => JobPhase::Running,
            _ => JobPhase::Finished,
        };
        JobProgress {
            phase,
            fuel_used: self.fuel_used.load(Ordering::Relaxed),
            elapsed: self.submitted.elapsed(),
        }
    }
}

/// A job handed to the [`Executor`](super::Executor): observe it, cancel it,
/// or wait for its report. Dropping the handle does not stop the job.
#[derive(Debug)]
pub struct RunningJob {
    pub(crate) control: Arc<JobControl>,
    pub(crate) task: JoinHandle<JobReport>,
    pub(crate) code_hash: [u8; 32],
}

impl RunningJob {
    /// The job's progress right now.
    pub fn progress(&self) -> JobProgress {
        self.control.progress()
    }

    /// Asks the job to stop. It ends with [`Outcome::Cancelled`] at the end
    /// of its current fuel slice, or at once if it is blocked in a host call.
    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// Waits for the job to finish and returns its report.
    pub async fn wait(self) -> JobReport {
        match self.task.await {
            Ok(report) => report,
            Err(e) => JobReport {
                outcome: Outcome::Trap {
                    message: format!("sandbox internal error: {e}"),
                },
                code_hash: self.code_hash,
                stdout: Vec::new(),
                stderr: Vec::new(),
                fuel_used: self.control.progress().fuel_used,
                peak_memory_bytes: 0,
                prepare_time: Duration::ZERO,
                run_time: Duration::ZERO,
                module_source: ModuleSource::None,
                engine_version: ENGINE_VERSION,
            },
        }
    }
}
