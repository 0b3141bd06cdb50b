//! Deterministic replacements for the WASI clocks and random sources, seeded
//! from the job, so that a re-execution sees the same values.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// Wall-clock time (seconds since 1970) every job starts at: 2025-01-01.
pub const WALL_CLOCK_START_SECS: u64 = 1_735_689_600;

/// How far a clock moves on each read. A logical clock that advances on
/// reads lets a guest that waits for time to pass finish deterministically.
pub const CLOCK_STEP: Duration = Duration::from_micros(1000);

/// A clock that starts at a fixed instant and advances by [`CLOCK_STEP`]
/// each time it is read.
#[derive(Debug)]
pub struct LogicalClock {
    start_nanos: u64,
    reads: AtomicU64,
}

impl LogicalClock {
    /// A clock whose first reading is `start_nanos`.
    pub fn new(start_nanos: u64) -> Self {
        Self {
            start_nanos,
            reads: AtomicU64::new(0),
        }
    }

    fn tick(&self) -> u64 {
        let reads = self.reads.fetch_add(1, Ordering::Relaxed);
        let step = CLOCK_STEP.as_nanos() as u64;
        self.start_nanos.saturating_add(reads.saturating_mul(step))
    }
}

impl HostWallClock for LogicalClock {
    fn resolution(&self) -> Duration {
        CLOCK_STEP
    }
    fn now(&self) -> Duration {
        Duration::from_nanos(self.tick())
    }
}

impl HostMonotonicClock for LogicalClock {
    fn resolution(&self) -> u64 {
        CLOCK_STEP.as_nanos() as u64
    }
    fn now(&self) -> u64 {
        self.tick()
    }
}

/// A random source that is SHA-256 in counter mode over a seed: the same
/// seed always gives the same bytes, on every machine.
pub struct SeededRandom {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRandom {
    /// A stream for `purpose` (e.g. "secure") derived from the job's seed,
    /// so that distinct sources of one job don't repeat each other.
    pub fn new(job_seed: &[u8; 32], purpose: &str) -> Self {
        let seed: [u8; 32] = Sha256::new()
            .chain_update(b"provider-node/sandbox/random/")
            .chain_update(purpose.as_bytes())
            .chain_update(job_seed)
            .finalize()
            .into();
        Self {
            seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    /// A 128-bit value derived from the job's seed for `purpose`.
    pub fn derive_u128(job_seed: &[u8; 32], purpose: &str) -> u128 {
        let mut rng = Self::new(job_seed, purpose);
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes);
        u128::from_le_bytes(bytes)
    }

    fn fill(&mut self, dst: &mut [u8]) {
        for byte in dst {
            if self.used == self.block.len() {
                self.block = Sha256::new()
                    .chain_update(self.seed)
                    .chain_update(self.counter.to_le_bytes())
                    .finalize()
                    .into();
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }
}

impl rand_core::TryRng for SeededRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0u8; 4];
        self.fill(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.fill(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_purposes_differ() {
        let seed = [7u8; 32];
        let (mut a, mut b) = (SeededRandom::new(&seed, "x"), SeededRandom::new(&seed, "x"));
        let (mut ba, mut bb) = ([0u8; 100], [0u8; 100]);
        a.fill(&mut ba);
        b.fill(&mut bb);
        assert_eq!(ba, bb);
        let mut c = SeededRandom::new(&seed, "y");
        let mut bc = [0u8; 100];
        c.fill(&mut bc);
        assert_ne!(ba, bc);
    }

    #[test]
    fn clock_advances_by_step() {
        let clock = LogicalClock::new(5);
        assert_eq!(HostMonotonicClock::now(&clock), 5);
        assert_eq!(
            HostMonotonicClock::now(&clock),
            5 + CLOCK_STEP.as_nanos() as u64
        );
    }
}
