//! Retries with doubling delays: one [`Backoff`] for the daemon's jobs
//! (which wait for their turn without blocking the loop) and for
//! [`with_retries`] (which waits in place).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::ClientError;

/// Doubling delays between attempts, from `first` up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    delay: Duration,
    max: Duration,
    retry_at: Instant,
}

impl Backoff {
    /// Ready at once; the first failure waits `first`, each next one twice
    /// as long, never more than `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            delay: first,
            max,
            retry_at: Instant::now(),
        }
    }

    /// Records a failure: the next attempt is due after the current delay,
    /// which then doubles.
    pub fn failed(&mut self) {
        self.retry_at = Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(self.max);
    }

    /// When the next attempt is due.
    pub fn retry_at(&self) -> Instant {
        self.retry_at
    }

    /// Whether the next attempt is due.
    pub fn ready(&self) -> bool {
        Instant::now() >= self.retry_at
    }
}

/// Calls `call` again after transient failures (network, busy canister),
/// with backoff from 250 ms to 5 s, at most five times in all. Only for
/// calls that are safe to repeat (queries, and updates the canister makes
/// idempotent).
pub async fn with_retries<R, F, Fut>(mut call: F) -> Result<R, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<R, ClientError>>,
{
    const ATTEMPTS: u32 = 5;
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    let mut attempts = 1;
    loop {
        match call().await {
            Err(e) if e.is_transient() && attempts < ATTEMPTS => {
                backoff.failed();
                tokio::time::sleep_until(backoff.retry_at()).await;
                attempts += 1;
            }
            other => return other,
        }
    }
}
