//! The per-job resource limiter: caps linear memory and tables, records the
//! peak, and ends the job on the first growth past a limit.

use wasmtime::ResourceLimiter;

/// The error that ends a job growing a memory or table past its limit.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MemoryLimitExceeded(pub String);

/// Enforces a job's memory and table limits and tracks its peak memory.
#[derive(Debug)]
pub struct JobLimiter {
    memory_limit: u64,
    table_limit: u64,
    peak_memory: u64,
    violation: Option<String>,
}

impl JobLimiter {
    /// A limiter for `memory_limit` bytes and `table_limit` elements.
    pub fn new(memory_limit: u64, table_limit: u64) -> Self {
        Self {
            memory_limit,
            table_limit,
            peak_memory: 0,
            violation: None,
        }
    }

    /// Largest linear memory size reached, in bytes.
    pub fn peak_memory(&self) -> u64 {
        self.peak_memory
    }

    /// What went over a limit, if anything did.
    pub fn violation(&self) -> Option<&str> {
        self.violation.as_deref()
    }

    fn refuse(&mut self, detail: String) -> wasmtime::Result<bool> {
        self.violation = Some(detail.clone());
        Err(wasmtime::Error::new(MemoryLimitExceeded(detail)))
    }
}

impl ResourceLimiter for JobLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let desired = desired as u64;
        if desired > self.memory_limit {
            return self.refuse(format!(
                "linear memory of {desired} bytes requested (from {current}), limit {}",
                self.memory_limit
            ));
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.table_limit {
            return self.refuse(format!(
                "table of {desired} elements requested (from {current}), limit {}",
                self.table_limit
            ));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}
