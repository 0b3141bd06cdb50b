//! A job as a buyer asks for it, checked before anything is spent.

use candid::Principal;
use market_api::Tokens;
use market_api::matcher::{
    JobLimits, JobSpec, MAX_ARG_LEN, MAX_ARGS, MAX_INPUT_BYTES, MAX_JOB_FUEL, ModuleSource, Sha256,
    fuel_cost_ceil, stored_bytes,
};

use super::BuyerError;

/// Everything about a job except its module: what it gets, what it may use,
/// and what the buyer pays at most.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRequest {
    /// Bytes on the job's stdin.
    pub input: Vec<u8>,
    /// argv[1..].
    pub args: Vec<String>,
    /// The job's whole environment (nothing of the caller's is passed on).
    pub env: Vec<(String, String)>,
    /// Highest price per billion fuel, in e8s.
    pub max_price_per_gfuel: Tokens,
    /// The fuel budget: the most the job may use and be billed for.
    pub fuel: u64,
    /// The wall-clock time one attempt may take; `None`: derived from the
    /// budget and the provider's declared speed.
    pub deadline_secs: Option<u64>,
    /// How often the provider heartbeats.
    pub interval_secs: u64,
    /// Linear memory limit.
    pub memory_mib: u32,
    /// Re-queues after a provider fails the job.
    pub max_retries: u32,
    /// Smallest stake a provider must have.
    pub min_provider_stake: Tokens,
}

impl JobRequest {
    /// What the job locks from the escrow balance when submitted: its
    /// budget at its highest price, rounded up (as `JobSpec::max_cost`).
    pub fn max_cost(&self) -> Option<Tokens> {
        fuel_cost_ceil(self.fuel, self.max_price_per_gfuel)
    }

    /// Bytes of the job's contents the buyer pays the storage fee for.
    pub fn stored_bytes(&self) -> u64 {
        stored_bytes(&self.input, &self.args, &self.env)
    }

    /// Checks what can be checked locally, with the flag to change.
    pub fn validate(&self) -> Result<(), BuyerError> {
        self.validate_run()?;
        if self.max_price_per_gfuel == 0 {
            return Err(BuyerError::Request(
                "--max-price-per-gfuel: must be more than zero".into(),
            ));
        }
        if self.max_cost().is_none() {
            return Err(BuyerError::Request(
                "--max-price-per-gfuel × --fuel overflows".into(),
            ));
        }
        Ok(())
    }

    /// Checks what the job gets and may use, not what it pays: all that
    /// matters for a job run in a reservation's slot, which the slot pays.
    pub fn validate_run(&self) -> Result<(), BuyerError> {
        let bad = |m: String| Err(BuyerError::Request(m));
        if self.input.len() > MAX_INPUT_BYTES {
            return bad(format!(
                "--input: {} bytes, the matcher takes at most {MAX_INPUT_BYTES}",
                self.input.len()
            ));
        }
        if self.args.len() > MAX_ARGS || self.env.len() > MAX_ARGS {
            return bad(format!("--arg/--env: at most {MAX_ARGS} of each"));
        }
        let too_long = self.args.iter().any(|a| a.len() > MAX_ARG_LEN)
            || self
                .env
                .iter()
                .any(|(k, v)| k.len() > MAX_ARG_LEN || v.len() > MAX_ARG_LEN);
        if too_long {
            return bad(format!(
                "--arg/--env: each argument, name and value at most {MAX_ARG_LEN} bytes"
            ));
        }
        if self.deadline_secs == Some(0) {
            return bad("--deadline: at least 1 second".into());
        }
        if self.interval_secs == 0 {
            return bad("--interval-secs: at least 1".into());
        }
        if self.memory_mib == 0 {
            return bad("--memory-mib: at least 1".into());
        }
        if self.fuel == 0 || self.fuel > MAX_JOB_FUEL {
            return bad(format!("--fuel: 1 to {MAX_JOB_FUEL}"));
        }
        Ok(())
    }

    /// The matcher's job spec for the stored module `sha256`, paid on `ledger`.
    pub fn spec(&self, sha256: Sha256, ledger: Principal) -> JobSpec {
        JobSpec {
            module: ModuleSource::Stored { sha256 },
            input: self.input.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
            limits: JobLimits {
                memory_mib: self.memory_mib,
                fuel: self.fuel,
            },
            max_price_per_gfuel: self.max_price_per_gfuel,
            deadline_secs: self.deadline_secs,
            interval_secs: self.interval_secs,
            ledger,
            min_provider_stake: self.min_provider_stake,
            min_record: None,
            max_retries: self.max_retries,
            callback: None,
            audit_ppm: None,
        }
    }
}
