//! A job as a buyer asks for it, checked before anything is spent.

use candid::Principal;
use market_api::Tokens;
use market_api::matcher::{
    AUDIT_ALWAYS_PPM, JobLimits, JobSpec, MAX_ARG_LEN, MAX_ARGS, MAX_INPUT_BYTES, MAX_JOB_FUEL,
    ModuleSource, Sha256, fuel_cost_ceil, stored_bytes,
};
use market_api::prices::Currency;

use super::BuyerError;
use super::privacy::Sealing;

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
    /// Highest price per billion fuel, in e8s (or, in XDR, in cycles).
    pub max_price_per_gfuel: Tokens,
    /// What the price is counted in (`None`: the ledger's token).
    pub currency: Option<Currency>,
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
    /// The probability that the result is audited, in parts per million
    /// (`None`: the market's minimum).
    pub audit_ppm: Option<u32>,
    /// What of the job is sealed to its key (nothing, by default).
    pub sealing: Sealing,
}

/// The audit probability, in parts per million, of a one-off job whose bid
/// asks for `asked` on a market whose least is `min_audit_ppm`: the higher
/// of the two, at most always (as the matcher sets it).
pub fn audit_ppm_of(asked: Option<u32>, min_audit_ppm: u32) -> u32 {
    asked.unwrap_or(0).max(min_audit_ppm).min(AUDIT_ALWAYS_PPM)
}

/// What a one-off job of `max_cost` (its budget at its highest price)
/// locks besides its storage fee: `max_cost`, twice when its result may
/// be audited (`audit_ppm` > 0: once for the run, once for the audit's
/// re-run); `None` if it overflows.
pub fn job_lock(max_cost: Tokens, audit_ppm: u32) -> Option<Tokens> {
    max_cost.checked_mul(if audit_ppm > 0 { 2 } else { 1 })
}

/// A probability in parts per million as a percentage (`50000`: `5%`),
/// exact: no floats.
pub fn format_ppm(ppm: u32) -> String {
    let whole = ppm / 10_000;
    let frac = ppm % 10_000;
    if frac == 0 {
        return format!("{whole}%");
    }
    let digits = format!("{frac:04}");
    format!("{whole}.{}%", digits.trim_end_matches('0'))
}

/// `--audit-ppm`: parts per million, 0 to [`AUDIT_ALWAYS_PPM`].
pub fn parse_audit_ppm(text: &str) -> Result<u32, String> {
    let range = || {
        format!(
            "parts per million, a whole number from 0 to {AUDIT_ALWAYS_PPM} ({AUDIT_ALWAYS_PPM}: \
             every result is audited; 50000: one in twenty)"
        )
    };
    match text.trim().parse::<u32>() {
        Ok(ppm) if ppm <= AUDIT_ALWAYS_PPM => Ok(ppm),
        _ => Err(format!("{text:?} is not {}", range())),
    }
}

impl JobRequest {
    /// What the job locks from the escrow balance when submitted: its
    /// budget at its highest price, rounded up (as `JobSpec::max_cost`);
    /// for an XDR price, in cycles (the lock is its value in the token).
    pub fn max_cost(&self) -> Option<Tokens> {
        fuel_cost_ceil(self.fuel, self.max_price_per_gfuel)
    }

    /// Bytes of the job's plain contents (the storage fee of a sealed job
    /// is of its sealed spec: `JobSpec::stored_bytes`).
    pub fn stored_bytes(&self) -> u64 {
        stored_bytes(&self.input, &self.args, &self.env)
    }

    /// What the job locks from the escrow balance, besides its storage
    /// fee, on a market whose least audit probability is `min_audit_ppm`
    /// (see [`job_lock`]).
    pub fn lock(&self, min_audit_ppm: u32) -> Option<Tokens> {
        job_lock(
            self.max_cost()?,
            audit_ppm_of(self.audit_ppm, min_audit_ppm),
        )
    }

    /// Checks what can be checked locally, with the flag to change.
    pub fn validate(&self) -> Result<(), BuyerError> {
        self.validate_run()?;
        if let Some(ppm) = self.audit_ppm {
            parse_audit_ppm(&ppm.to_string())
                .map_err(|e| BuyerError::Request(format!("--audit-ppm: {e}")))?;
        }
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
        self.sealing.validate(self.input.len())
    }

    /// The matcher's job spec for the stored module `sha256`, paid on
    /// `ledger`, with its contents in plain: `privacy::job_spec` seals
    /// what [`JobRequest::sealing`] asks.
    pub fn spec(&self, sha256: Sha256, ledger: Principal) -> JobSpec {
        JobSpec {
            sealed: None,
            currency: self.currency,
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
            audit_ppm: self.audit_ppm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_probabilities_read_as_percentages_and_double_the_lock() {
        assert_eq!(format_ppm(50_000), "5%");
        assert_eq!(format_ppm(1_000_000), "100%");
        assert_eq!(format_ppm(1_000), "0.1%");
        assert_eq!(format_ppm(1), "0.0001%");
        assert_eq!(format_ppm(123_450), "12.345%");
        assert_eq!(format_ppm(0), "0%");

        assert_eq!(audit_ppm_of(None, 50_000), 50_000, "the market's minimum");
        assert_eq!(audit_ppm_of(Some(10), 50_000), 50_000);
        assert_eq!(audit_ppm_of(Some(200_000), 50_000), 200_000, "the bid's");
        assert_eq!(audit_ppm_of(Some(0), 0), 0);

        assert_eq!(job_lock(700, 0), Some(700));
        assert_eq!(job_lock(700, 1), Some(1_400), "the run and an audit's");
        assert_eq!(job_lock(Tokens::MAX, 1), None);

        let mut r = crate::privacy::tests::bare_request();
        assert_eq!(r.lock(0), Some(5_000), "never audited: the budget once");
        assert_eq!(r.lock(50_000), Some(10_000), "the market audits");
        r.audit_ppm = Some(1);
        assert_eq!(r.lock(0), Some(10_000), "the bid asks");
        assert_eq!(
            r.spec([0; 32], Principal::anonymous()).audit_ppm,
            Some(1),
            "the bid carries it"
        );
        r.audit_ppm = Some(AUDIT_ALWAYS_PPM + 1);
        let e = r.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("--audit-ppm: \"1000001\" is not parts per million"),
            "{e}"
        );

        assert_eq!(parse_audit_ppm("1000000"), Ok(AUDIT_ALWAYS_PPM));
        assert_eq!(parse_audit_ppm("0"), Ok(0));
        for bad in ["-1", "0.5", "5%", "1000001", ""] {
            let e = parse_audit_ppm(bad).unwrap_err();
            assert!(e.contains("0 to 1000000"), "{bad}: {e}");
        }
    }
}
