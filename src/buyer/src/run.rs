//! `market run` and `market submit`: check funds, upload if needed, submit,
//! and (for `run`) follow the job to its end.

use std::future::Future;
use std::time::Duration;

use market_api::escrow::{EscrowError, storage_fee};
use market_api::matcher::{Job, MatcherError, ModuleSource, ReservationId, market_fee_ceil};
use market_api::{JobId, Tokens};

use super::funds::{AUDITED_JOB, JOB, check_funds_for, require_free};
use super::pricing::lock_now;
use super::privacy::{Sealing, job_spec};
use super::request::{audit_ppm_of, format_ppm, job_lock};
use super::{
    BuyerError, Console, JobRequest, Settlement, ensure_module, funds, settlement, sha256_of,
    submit_reserved, watch, with_retries,
};
use market_api::prices::Currency;
use market_client::client::prices::Price;
use market_client::client::tokens::format_tokens;
use market_client::client::{ClientError, MarketClient};
use market_client::transport::Transport;

/// How `run` behaves.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// How often the job is polled while waiting.
    pub poll_interval: Duration,
    /// Submit and return without waiting.
    pub detach: bool,
    /// Run the job in this reservation's slots (which pay for it) instead
    /// of paying for it from the escrow balance.
    pub reservation: Option<ReservationId>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            poll_interval: Duration::from_secs(1),
            detach: false,
            reservation: None,
        }
    }
}

/// How `run` ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunReport {
    /// Submitted with `detach`.
    Detached(JobId),
    /// The wait was interrupted; the job goes on.
    Interrupted(JobId),
    /// The job's result is in (its challenge window open, or final), or
    /// it ended without one.
    Finished {
        /// The job with its result.
        job: Box<Job>,
        /// What it cost.
        settlement: Settlement,
    },
}

/// Checks the request and the escrow balance, uploads the module unless
/// the matcher has it, and submits the job (the matcher locks its maximum
/// cost from the escrow balance). Nothing is uploaded when the balance is
/// short.
pub async fn submit<T: Transport>(
    client: &MarketClient<T>,
    wasm: &[u8],
    request: &JobRequest,
    console: &mut Console,
) -> Result<JobId, BuyerError> {
    request.validate()?;
    let overflow = || BuyerError::Request("--max-price-per-gfuel × --fuel overflows".into());
    let max_cost = request.max_cost().ok_or_else(overflow)?;
    let config = with_retries(|| client.matcher_config()).await?;
    let audit_ppm = audit_ppm_of(request.audit_ppm, config.min_audit_ppm());
    let fee_ppm = config.market_fee_ppm();
    let cost = job_lock(max_cost, audit_ppm).ok_or_else(overflow)?;
    // An XDR price locks its value in the ledger's token at the rate now;
    // the market's fee on it comes on top.
    let (pay, quote) = lock_now(client, request.currency, cost).await?;
    let fee = market_fee_ceil(pay, fee_ppm).ok_or_else(overflow)?;
    let lock = pay.checked_add(fee).ok_or_else(overflow)?;
    // Sealed before the funds are checked: the sealed spec is what is
    // stored (and paid for), and a market without a privacy key refuses
    // before anything is spent.
    let mut spec = job_spec(client, request, sha256_of(wasm), client.ids().ledger).await?;
    let f = funds(client).await?;
    let storage = storage_fee(f.fee, spec.stored_bytes())
        .ok_or_else(|| BuyerError::Request("the storage fee overflows".into()))?;
    let needed = lock.checked_add(storage).ok_or_else(overflow)?;
    let what = if audit_ppm > 0 { AUDITED_JOB } else { JOB };
    require_free(&f, client.sender(), what, needed)?;
    let module = ensure_module(client, wasm, console).await?;
    spec.module = ModuleSource::Stored {
        sha256: module.sha256,
    };
    // Not retried: a repeated submission would be a second job.
    let id = match client.submit_job(spec).await {
        Err(ClientError::Matcher(
            e @ MatcherError::Escrow(EscrowError::InsufficientBalance { .. }),
        )) => {
            // Spent meanwhile (another job): say how much is missing now.
            check_funds_for(client, what, needed).await?;
            return Err(ClientError::Matcher(e).into());
        }
        other => other?,
    };
    console.line(format!(
        "submitted job {id}: up to {} locked ({}{} fuel at most {} per billion{}{}{}), {} storage \
         fee paid",
        format_tokens(lock),
        if audit_ppm > 0 { "twice " } else { "" },
        request.fuel,
        quote.format(&Price::of_spec(
            request.max_price_per_gfuel,
            request.currency
        )),
        audit_text(audit_ppm),
        deadline_text(request.deadline_secs),
        market_fee_text(fee_ppm, fee),
        format_tokens(storage),
    ));
    if let Some(text) = sealing_text(&request.sealing) {
        console.line(format!("  {text}"));
    }
    if request.currency == Some(Currency::Xdr) {
        console.line(format!(
            "  priced in XDR: the lock is its value in ICP at the rate now, plus {} as a buffer;              the price agreed converts at the rate when the job is matched, what is unused              returns at settle",
            format_ppm(quote.buffer_ppm)
        ));
    }
    Ok(id)
}

/// What a job's sealing reads as after its submission (`None`: nothing
/// sealed). Names the secret variables, never their values.
pub(super) fn sealing_text(sealing: &Sealing) -> Option<String> {
    Some(format!(
        "sealed to the job's key: {} (read by you and by the provider while it runs the job, \
         which sees them in plain; by no one else)",
        sealed_parts(sealing)?
    ))
}

/// The parts of a job `sealing` seals, in words (`its input, its secret
/// env (API_KEY) and its output`; `None`: nothing). Names the secret
/// variables, never their values.
pub fn sealed_parts(sealing: &Sealing) -> Option<String> {
    let mut parts = vec![];
    if sealing.input {
        parts.push("its input".to_string());
    }
    if !sealing.secret_env.is_empty() {
        let names: Vec<&str> = sealing.secret_env.iter().map(|(k, _)| k.as_str()).collect();
        parts.push(format!("its secret env ({})", names.join(", ")));
    }
    if sealing.output {
        parts.push("its output".to_string());
    }
    let last = parts.pop()?;
    Some(match parts.is_empty() {
        true => last,
        false => format!("{} and {last}", parts.join(", ")),
    })
}

/// How a job's audit probability reads in what its lock holds.
pub(super) fn audit_text(audit_ppm: u32) -> String {
    match audit_ppm {
        0 => String::new(),
        p => format!(
            ": for the run and for an audit's re-run, the result audited with probability {}",
            format_ppm(p)
        ),
    }
}

/// How the market's fee on a cost reads in what a lock holds: nothing
/// when the market takes none.
pub fn market_fee_text(fee_ppm: u32, fee: Tokens) -> String {
    match fee_ppm {
        0 => String::new(),
        ppm => format!(
            ", and the market's fee of {} of the provider's pay, up to {}",
            format_ppm(ppm),
            format_tokens(fee)
        ),
    }
}

/// How a request's deadline reads after its fuel.
pub(super) fn deadline_text(deadline_secs: Option<u64>) -> String {
    deadline_secs.map_or_else(
        || ", deadline from the provider's speed".into(),
        |d| format!(", {d} s per attempt"),
    )
}

/// [`submit`] (or [`submit_reserved`] with `options.reservation`), then
/// (unless detached) follows the job until its result is in (or it ends
/// without one) or `interrupt` resolves.
pub async fn run<T: Transport>(
    client: &MarketClient<T>,
    wasm: &[u8],
    request: &JobRequest,
    options: &RunOptions,
    console: &mut Console,
    interrupt: impl Future<Output = ()>,
) -> Result<RunReport, BuyerError> {
    let id = match options.reservation {
        Some(r) => submit_reserved(client, wasm, r, request, console).await?,
        None => submit(client, wasm, request, console).await?,
    };
    if options.detach {
        return Ok(RunReport::Detached(id));
    }
    match watch(client, id, options.poll_interval, console, interrupt).await? {
        None => Ok(RunReport::Interrupted(id)),
        Some(job) => Ok(RunReport::Finished {
            settlement: settlement(client, &job).await,
            job: Box::new(job),
        }),
    }
}

/// What to tell a person who stopped waiting for job `id`.
pub fn interrupted_message(id: JobId) -> String {
    format!(
        "stopped waiting; job {id} goes on.\n  follow it:      market watch {id}\n  its output:     \
         market result {id}\n  stop it:        market cancel {id}   (unspent funds return to \
         your escrow balance)"
    )
}
