//! Following a job until its result is in, and what it cost.
//!
//! A one-off job's result opens a challenge window (`Reported`): the output
//! is there and the bill known, but the provider's pay stays pending and
//! the rest of the lock returns only when the window closes undisputed.
//! Following a job stops at its result; it does not wait the window out.
//! A result drawn for audit, or disputed, is withheld until the audit's
//! verdict: following such a job waits for the verdict.

use std::future::Future;
use std::time::Duration;

use candid::Principal;
use market_api::matcher::{
    AuditVerdict, Job, JobAudit, JobKind, JobResult, JobStatus, MatcherEvent, RunOutcome, fuel_cost,
};
use market_api::{EventPage, JobId, PageRequest, Tokens};

use super::pricing::{job_locked, job_pricing_text};
use super::request::audit_ppm_of;
use super::{BuyerError, Console, sha256_of, with_retries};
use market_client::client::MarketClient;
pub use market_client::client::time::format_time;
use market_client::client::tokens::format_tokens;
use market_client::transport::{Call, Transport};

/// A change of a job seen between two polls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEvent {
    /// The status or the provider changed.
    Status {
        /// The new status.
        status: JobStatus,
        /// The provider it is assigned to, if any.
        provider: Option<Principal>,
        /// The price of the current assignment (per billion fuel; 0 for a
        /// job in a reservation).
        price: Option<Tokens>,
        /// When the result's challenge window closes (`Reported`).
        window_closes_at_ns: Option<u64>,
    },
    /// The provider reported more fuel (by heartbeat or result).
    FuelReported {
        /// Fuel reported by the current attempt.
        fuel: u64,
        /// The job's budget.
        budget: u64,
        /// Paid to providers so far, pending until the window closes.
        paid: Tokens,
    },
    /// More intervals of the reservation's slot went by (a job in a
    /// reservation, which its slot pays for).
    IntervalsPaid {
        /// Intervals so far.
        paid: u32,
    },
    /// The result's audit started (drawn or disputed), or reached its
    /// verdict.
    Audit {
        /// Whether the owner asked for it.
        disputed: bool,
        /// Whether the draw deciding it is still to come back.
        drawing: bool,
        /// `None` while the audit runs.
        verdict: Option<AuditVerdict>,
    },
    /// A provider failed the job (missed a deadline) and it was re-queued.
    Retried {
        /// Retries used so far.
        used: u32,
        /// Retries allowed.
        max: u32,
    },
}

/// Whether job's result is in (its challenge window open, or final) or it
/// ended without one: following it stops there. A result being audited is
/// not in: it is withheld until the verdict.
pub fn result_in(job: &Job) -> bool {
    (job.status == JobStatus::Reported && !audit_pending(job)) || job.status.is_terminal()
}

/// Whether the job's result is being audited: withheld until the verdict.
pub fn audit_pending(job: &Job) -> bool {
    job.audit.as_ref().is_some_and(|a| a.verdict.is_none())
}

/// Why a result is withheld for audit: `disputed` (its owner asked),
/// `drawn`, or `drawing` (the draw is still to come back).
pub fn audit_reason(audit: &JobAudit) -> &'static str {
    match (audit.disputed, audit.drawing) {
        (true, _) => "disputed",
        (false, true) => "drawing",
        (false, false) => "drawn",
    }
}

/// What an audit's verdict means for the buyer.
pub fn verdict_text(verdict: AuditVerdict) -> &'static str {
    match verdict {
        AuditVerdict::Agreed => "agreed: another provider's run gave the same result; it stands",
        AuditVerdict::Overturned => {
            "overturned: the provider's result lost the audit; its stake was slashed to you; \
             this is the majority's result"
        }
        AuditVerdict::Inconclusive => {
            "inconclusive: no two runs agreed (or no auditor answered); the result stands and no \
             one was slashed"
        }
    }
}

/// A job's audit in a listing: `-` (none), `drawn`/`disputed` while it
/// runs, else its verdict.
pub fn audit_state(job: &Job) -> String {
    match &job.audit {
        None => "-".into(),
        Some(a) => match a.verdict {
            None => format!("{} (pending)", audit_reason(a)),
            Some(v) => {
                let verdict = format!("{v:?}").to_lowercase();
                if a.disputed {
                    format!("{verdict} (disputed)")
                } else {
                    verdict
                }
            }
        },
    }
}

/// What changed from `before` (None: first sight) to `now`.
pub fn job_events(before: Option<&Job>, now: &Job) -> Vec<JobEvent> {
    let mut events = vec![];
    if before.is_some_and(|b| b.retries_used < now.retries_used) {
        events.push(JobEvent::Retried {
            used: now.retries_used,
            max: now.spec.max_retries,
        });
    }
    // A result being audited is not shown as in: the audit event says it
    // is withheld, and the status follows at the verdict.
    let status = (!audit_pending(now)
        && before.is_none_or(|b| {
            b.status != now.status || b.provider != now.provider || audit_pending(b)
        }))
    .then_some(JobEvent::Status {
        status: now.status,
        provider: now.provider,
        price: now.price,
        window_closes_at_ns: now.window_closes_at_ns,
    });
    let audit_of = |j: &Job| j.audit.as_ref().map(|a| (a.disputed, a.drawing, a.verdict));
    let audit = audit_of(now)
        .filter(|a| before.is_none_or(|b| audit_of(b) != Some(*a)))
        .map(|(disputed, drawing, verdict)| JobEvent::Audit {
            disputed,
            drawing,
            verdict,
        });
    let paid = if let JobKind::InReservation { .. } = now.kind {
        (now.intervals_paid > before.map_or(0, |b| b.intervals_paid)).then_some(
            JobEvent::IntervalsPaid {
                paid: now.intervals_paid,
            },
        )
    } else {
        (now.fuel_reported > before.map_or(0, |b| b.fuel_reported)).then_some(
            JobEvent::FuelReported {
                fuel: now.fuel_reported,
                budget: now.spec.limits.fuel,
                paid: now.paid,
            },
        )
    };
    // Payments happen while a job runs: show them before its result, and
    // an audit's start or verdict before the result it withholds or lets
    // through.
    if now.status == JobStatus::Reported || now.status.is_terminal() {
        events.extend(paid.into_iter().chain(audit).chain(status));
    } else {
        events.extend(status.into_iter().chain(paid).chain(audit));
    }
    events
}

fn describe_event(id: JobId, event: &JobEvent) -> String {
    match event {
        JobEvent::Status {
            status: JobStatus::Open,
            ..
        } => format!("job {id}: open, waiting for a provider"),
        JobEvent::Status {
            status,
            provider: Some(p),
            price,
            ..
        } if matches!(status, JobStatus::Assigned | JobStatus::Running) => format!(
            "job {id}: {} {p}{}",
            if *status == JobStatus::Assigned {
                "assigned to"
            } else {
                "running on"
            },
            match price {
                Some(0) | None => String::new(),
                Some(p) => format!(" at {} per billion fuel", format_tokens(*p)),
            },
        ),
        JobEvent::Status {
            status: JobStatus::Reported,
            window_closes_at_ns,
            ..
        } => format!(
            "job {id}: result in, challenge window open until {}",
            window_closes_at_ns.map_or_else(|| "it closes".into(), format_time)
        ),
        JobEvent::Status { status, .. } => {
            format!("job {id}: {}", format!("{status:?}").to_lowercase())
        }
        JobEvent::FuelReported { fuel, budget, paid } => format!(
            "job {id}: {fuel} of {budget} fuel reported, {} paid (pending)",
            format_tokens(*paid)
        ),
        JobEvent::IntervalsPaid { paid } => {
            format!(
                "job {id}: {paid} interval{} of its slot",
                if *paid == 1 { "" } else { "s" }
            )
        }
        JobEvent::Audit {
            drawing: true,
            verdict: None,
            ..
        } => format!("job {id}: the result is in; the matcher is drawing whether to audit it"),
        JobEvent::Audit {
            disputed,
            verdict: None,
            ..
        } => format!(
            "job {id}: the result is being audited ({}); waiting for the verdict",
            if *disputed { "disputed" } else { "drawn" }
        ),
        JobEvent::Audit {
            verdict: Some(v), ..
        } => format!("job {id}: audit {}", verdict_text(*v)),
        JobEvent::Retried { used, max } => format!(
            "job {id}: the provider failed it; re-queued (retry {used} of {max}), the provider \
             is slashed"
        ),
    }
}

/// Polls job `id` every `poll`, printing each change, until its result is
/// in (after its audit's verdict, if it is audited) or it ends
/// ([`result_in`]: `Some(job)`), or `interrupt` resolves (`None`).
pub async fn watch<T: Transport>(
    client: &MarketClient<T>,
    id: JobId,
    poll: Duration,
    console: &mut Console,
    interrupt: impl Future<Output = ()>,
) -> Result<Option<Job>, BuyerError> {
    let fetch = async || {
        let job = with_retries(|| client.get_job(id)).await?;
        job.ok_or(BuyerError::UnknownJob(id))
    };
    let report = async |last: Option<&Job>, job: &Job| {
        for event in job_events(last, job) {
            console.line(describe_event(id, &event));
        }
        // A provider newly holding the job: what it did before, if the
        // registry answers (the record is advice, no reason to stop).
        let holder = job
            .provider
            .filter(|_| matches!(job.status, JobStatus::Assigned | JobStatus::Running));
        if let Some(p) = holder
            && last.and_then(|l| l.provider) != Some(p)
            && let Ok(Some(record)) = client.track_record(p).await
        {
            console.line(format!("job {id}: {p} has a record of {record}"));
        }
        result_in(job)
    };
    follow(poll, interrupt, fetch, report).await
}

/// Polls every `poll` until what it follows is done (`Some` of its last
/// view) or `interrupt` resolves (`None`, at any wait). Each round
/// `fetch`es the view and hands it, with the round before's, to `report`,
/// which prints what changed and answers whether it is done.
pub(crate) async fn follow<V>(
    poll: Duration,
    interrupt: impl Future<Output = ()>,
    mut fetch: impl AsyncFnMut() -> Result<V, BuyerError>,
    mut report: impl AsyncFnMut(Option<&V>, &V) -> bool,
) -> Result<Option<V>, BuyerError> {
    let mut interrupt = std::pin::pin!(interrupt);
    let mut last: Option<V> = None;
    loop {
        let view = tokio::select! {
            view = fetch() => view?,
            () = &mut interrupt => return Ok(None),
        };
        if report(last.as_ref(), &view).await {
            return Ok(Some(view));
        }
        last = Some(view);
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = &mut interrupt => return Ok(None),
        }
    }
}

/// What a job cost, once its result is in or it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// Locked at submission: the fuel budget at the highest price, twice
    /// if the result may be audited, and the market's fee on it.
    pub locked: Tokens,
    /// Paid to providers: the bill (fuel used at the agreed price) once the
    /// result is in, pending while its challenge window is open; with an
    /// audit's verdict, what the job's lock paid its provider and auditors.
    pub paid: Tokens,
    /// Returned (or, while the window is open, to be returned) to the
    /// buyer's free balance.
    pub refunded: Tokens,
    /// The market's fee paid with `paid` (see `Job::market_fee`).
    pub fee: Tokens,
    /// Whether the numbers are exact: from the matcher's `JobFinished`
    /// event, or from the result's fuel while the window is open;
    /// otherwise the job's record of what it paid.
    pub exact: bool,
}

impl Settlement {
    /// `paid` of `locked` paid, the rest refunded; [`Settlement::exact`]
    /// as `exact` says.
    fn paying(locked: Tokens, paid: Tokens, exact: bool) -> Settlement {
        Settlement::paying_fee(locked, paid, 0, exact)
    }

    /// `paid` of `locked` paid to providers and `fee` to the market, the
    /// rest refunded.
    fn paying_fee(locked: Tokens, paid: Tokens, fee: Tokens, exact: bool) -> Settlement {
        Settlement {
            locked,
            paid,
            refunded: locked.saturating_sub(paid).saturating_sub(fee),
            fee,
            exact,
        }
    }
}

const EVENT_PAGE: u32 = 500;
/// Pages of the matcher's event log searched from the end.
const EVENT_PAGES: u32 = 4;

async fn query_events<T: Transport>(
    client: &MarketClient<T>,
    page: PageRequest,
) -> Option<EventPage<MatcherEvent>> {
    let arg = candid::encode_one(page).ok()?;
    let reply = client
        .transport()
        .query(Call {
            canister: client.ids().matcher,
            method: "get_events",
            arg,
        })
        .await
        .ok()?;
    candid::decode_one(&reply).ok()
}

/// The refund of job `id` from the end of the matcher's event log.
async fn refund_event<T: Transport>(client: &MarketClient<T>, id: JobId) -> Option<Tokens> {
    let first = query_events(
        client,
        PageRequest {
            start: None,
            limit: Some(1),
        },
    )
    .await?;
    let mut end = first.total;
    for _ in 0..EVENT_PAGES {
        if end == 0 {
            break;
        }
        let start = end.saturating_sub(u64::from(EVENT_PAGE));
        let page = query_events(
            client,
            PageRequest {
                start: Some(start),
                limit: Some(EVENT_PAGE),
            },
        )
        .await?;
        let refunded = page.events.iter().rev().find_map(|e| match e.event {
            MatcherEvent::JobFinished {
                job_id, refunded, ..
            } if job_id == id => Some(refunded),
            _ => None,
        });
        if refunded.is_some() {
            return refunded;
        }
        end = start;
    }
    None
}

/// Whether `job`'s result may be audited (and so its lock holds its budget
/// twice): it was, or its bid asked, or the market's minimum says so
/// (`None`: the matcher's settings could not be read).
async fn may_be_audited<T: Transport>(client: &MarketClient<T>, job: &Job) -> Option<bool> {
    if job.audit.is_some() || job.spec.audit_ppm.is_some_and(|p| p > 0) {
        return Some(true);
    }
    let min = with_retries(|| client.matcher_config())
        .await
        .ok()?
        .min_audit_ppm();
    Some(audit_ppm_of(job.spec.audit_ppm, min) > 0)
}

/// What a job cost: while its challenge window is open, the bill its
/// result sets (or, after an audit's verdict, what the lock paid); once
/// final, exact from the matcher's event log when its `JobFinished` event
/// is among the latest events, else from the job's record of what it paid.
pub async fn settlement<T: Transport>(client: &MarketClient<T>, job: &Job) -> Settlement {
    if let JobKind::InReservation { .. } = job.kind {
        // The reservation's slot pays; the job locks and costs nothing.
        return Settlement::paying(0, 0, true);
    }
    let audited = may_be_audited(client, job).await;
    let known = audited.is_some();
    // A one-off job that may be audited locks its budget twice; an XDR
    // job's lock is that at its lock's rate, with its buffer; the
    // market's fee on it comes on top.
    let locked = job_locked(job, audited == Some(true))
        .and_then(|l| l.checked_add(job.market_fee.locked))
        .unwrap_or(Tokens::MAX);
    let fee = job.market_fee.paid;
    if job.status == JobStatus::Reported {
        // After a verdict the lock paid auditors too (and took back a
        // losing provider's pay): the job's record says what it paid.
        let verdict = job.audit.as_ref().is_some_and(|a| a.verdict.is_some());
        let paid = if verdict { Some(job.paid) } else { bill(job) };
        let paid = paid.unwrap_or(job.paid).min(locked);
        return Settlement::paying_fee(locked, paid, fee, known);
    }
    match refund_event(client, job.id).await {
        Some(refunded) => Settlement {
            locked,
            paid: locked.saturating_sub(refunded).saturating_sub(fee),
            refunded,
            fee,
            exact: known,
        },
        None => Settlement::paying_fee(locked, job.paid.min(locked), fee, false),
    }
}

/// What the job's result bills: the fuel it used at the agreed price
/// (`None` without a result or a price).
pub fn bill(job: &Job) -> Option<Tokens> {
    fuel_cost(job.result.as_ref()?.fuel_used, job.price?)
}

/// A person-readable form of a run's outcome.
pub fn describe_outcome(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::Exited { code } => format!("exited with code {code}"),
        RunOutcome::OutOfFuel => "ran out of fuel (raise --fuel)".into(),
        RunOutcome::OutOfMemory => "hit the memory limit (raise --memory-mib)".into(),
        RunOutcome::Deadline => "hit its wall-clock deadline (raise --deadline)".into(),
        RunOutcome::OutputTooLarge => "wrote more output than providers keep".into(),
        RunOutcome::Trap { message } => format!("trapped: {message}"),
        RunOutcome::InvalidModule { message } => format!("invalid module: {message}"),
        RunOutcome::Undecryptable { part } => {
            format!("its sealed {part} did not decrypt with the job's key")
        }
    }
}

/// Whether the matcher kept only part of the job's stdout.
pub fn output_truncated(result: &JobResult) -> bool {
    sha256_of(&result.output) != result.output_sha256
}

/// The exit status of `market run`/`result`/`watch` for a job whose result
/// is in: 0 only for a result that exited with code 0, while its challenge
/// window is open or once it succeeded.
pub fn exit_code(job: &Job) -> u8 {
    let clean = job
        .result
        .as_ref()
        .is_some_and(|r| r.outcome == RunOutcome::Exited { code: 0 });
    if matches!(job.status, JobStatus::Succeeded | JobStatus::Reported) && clean {
        0
    } else {
        1
    }
}

/// The closing summary of a job whose result is in, or that ended
/// (several lines, for stderr).
pub fn summary(job: &Job, settlement: &Settlement) -> String {
    let status = match (job.status, job.window_closes_at_ns) {
        (JobStatus::Reported, Some(t)) => {
            format!("reported (challenge window open until {})", format_time(t))
        }
        (status, _) => format!("{status:?}").to_lowercase(),
    };
    let mut s = match &job.result {
        Some(r) => format!("job {} {status}: {}", job.id, describe_outcome(&r.outcome)),
        None => format!("job {} {status} without a result", job.id),
    };
    if let Some(p) = job.provider {
        s.push_str(&format!("\n  provider  {p}"));
    }
    if let Some(r) = &job.result {
        s.push_str(&format!(
            "\n  fuel      {} of {}\n  engine    {}\n  stdout    {} bytes{}{}",
            r.fuel_used,
            job.spec.limits.fuel,
            r.engine,
            r.output.len(),
            if super::output_sealed(job) && !r.output.is_empty() {
                " sealed to the job's key (only you open them: `market result`)"
            } else {
                ""
            },
            if output_truncated(r) {
                format!(
                    " (truncated by the matcher; the full output's sha256 is {})",
                    hex::encode(r.output_sha256)
                )
            } else {
                String::new()
            }
        ));
    }
    if let JobKind::InReservation { reservation } = job.kind {
        s.push_str(&format!(
            "\n  cost      nothing of its own: reservation {reservation}'s slot paid for its {} \
             interval{}",
            job.intervals_paid,
            if job.intervals_paid == 1 { "" } else { "s" },
        ));
    } else {
        let fuel = job
            .result
            .as_ref()
            .map_or(job.fuel_reported, |r| r.fuel_used);
        let price = job.price.map_or_else(String::new, |p| {
            format!(" at {} per billion fuel", format_tokens(p))
        });
        let (bill, returned) = if job.status == JobStatus::Reported {
            (
                "bill",
                "returns to your escrow balance when the window closes",
            )
        } else {
            ("cost", "returned to your escrow balance")
        };
        let fee = match (settlement.fee, job.market_fee.fee_ppm) {
            (0, 0) => String::new(),
            (fee, ppm) => format!(
                " and {} market fee ({} of the pay)",
                format_tokens(fee),
                crate::request::format_ppm(ppm)
            ),
        };
        s.push_str(&format!(
            "\n  {bill}      {}{} for {fuel} fuel{price}{fee}; {} of the {} locked {returned}",
            if settlement.exact { "" } else { "about " },
            format_tokens(settlement.paid),
            format_tokens(settlement.refunded),
            format_tokens(settlement.locked),
        ));
    }
    if let Some(p) = job_pricing_text(job) {
        s.push_str(&format!("\n  pricing   {p}"));
    }
    if let Some(a) = &job.audit {
        s.push_str(&format!(
            "\n  audit     {} ({})",
            a.verdict.map_or(
                "pending: the result is withheld until the verdict",
                verdict_text
            ),
            audit_reason(a)
        ));
    }
    if job.retries_used > 0 {
        s.push_str(&format!(
            "\n  retries   {} (providers that failed it were slashed)",
            job.retries_used
        ));
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::request::JobRequest;

    const S: u64 = 1_000_000_000;

    /// A one-off job of 5,000 million fuel at up to 1,000 per billion, on
    /// a provider at 600 per billion that reported `fuel`.
    pub(crate) fn job(status: JobStatus, fuel: u64) -> Job {
        Job {
            market_fee: Default::default(),
            pricing: None,
            id: 4,
            owner: Principal::anonymous(),
            spec: JobRequest {
                max_retries: 2,
                ..crate::privacy::tests::bare_request()
            }
            .spec([0; 32], Principal::anonymous()),
            status,
            provider: Some(Principal::management_canister()),
            price: Some(600),
            intervals_paid: 0,
            fuel_reported: fuel,
            paid: fuel_cost(fuel, 600).unwrap(),
            window_closes_at_ns: None,
            retries_used: 0,
            result: None,
            submitted_at_ns: 0,
            kind: JobKind::OneOff,
            audit: None,
        }
    }

    #[test]
    fn an_xdr_job_shows_the_rates_its_lock_and_its_price_converted_at() {
        use market_api::matcher::JobPricing;
        use market_api::prices::{Currency, PriceConversion, Valuation, XdrTerms};
        let at = |permyriad: u64, secs: u64| Valuation::icp(permyriad, secs).unwrap();
        let mut j = job(JobStatus::Running, 0);
        j.spec.currency = Some(Currency::Xdr);
        // 0.02 XDR per billion fuel, 5 billion fuel: 0.1 XDR.
        j.spec.max_price_per_gfuel = 20_000_000_000;
        assert_eq!(
            job_pricing_text(&j).unwrap(),
            "at most 0.02 XDR per billion fuel; not locked yet"
        );
        assert_eq!(job_locked(&j, false), None, "no lock rate recorded");
        j.pricing = Some(JobPricing {
            terms: XdrTerms {
                max_price_cycles: 20_000_000_000,
                lock_rate: at(40_000, 3_600),
                buffer_ppm: 100_000,
            },
            conversion: Some(PriceConversion {
                price_cycles: 15_000_000_000,
                rate: at(50_000, 7_200),
                capped: false,
            }),
        });
        // 0.1 XDR at 4 XDR per ICP is 0.025 ICP, and 10 % more; twice
        // when it may be audited.
        assert_eq!(job_locked(&j, false), Some(2_750_000));
        assert_eq!(job_locked(&j, true), Some(5_500_000));
        let text = job_pricing_text(&j).unwrap();
        assert_eq!(
            text,
            "at most 0.02 XDR (about 0.005 ICP) per billion fuel; locked at 1 ICP = 4 XDR (rate \
             of 1970-01-01 01:00:00 UTC), 10% buffer; agreed 0.015 XDR per billion fuel, \
             converted at 1 ICP = 5 XDR (rate of 1970-01-01 02:00:00 UTC)"
        );
        let s = summary(&j, &Settlement::paying(2_750_000, 0, false));
        assert!(s.contains(&format!("\n  pricing   {text}")), "{s}");
        assert_eq!(job_pricing_text(&job(JobStatus::Running, 0)), None);
    }

    fn result(code: i32, output: &[u8]) -> JobResult {
        JobResult {
            outcome: RunOutcome::Exited { code },
            output: output.to_vec(),
            output_sha256: sha256_of(output),
            fuel_used: 2_000_000_000,
            engine: "wasmtime-48.0.8".into(),
        }
    }

    #[test]
    fn changes_between_polls_become_events_in_order() {
        let running = job(JobStatus::Running, 1_000_000_000);
        assert_eq!(
            job_events(None, &running),
            [
                JobEvent::Status {
                    status: JobStatus::Running,
                    provider: running.provider,
                    price: Some(600),
                    window_closes_at_ns: None,
                },
                JobEvent::FuelReported {
                    fuel: 1_000_000_000,
                    budget: 5_000_000_000,
                    paid: 600,
                }
            ]
        );
        assert!(job_events(Some(&running), &running).is_empty());
        let mut retried = job(JobStatus::Open, 1_000_000_000);
        retried.retries_used = 1;
        retried.provider = None;
        assert!(matches!(
            job_events(Some(&running), &retried)[..],
            [
                JobEvent::Retried { used: 1, max: 2 },
                JobEvent::Status {
                    status: JobStatus::Open,
                    ..
                }
            ]
        ));
        // At the result, the fuel it pays shows before the status.
        let mut reported = job(JobStatus::Reported, 2_000_000_000);
        reported.window_closes_at_ns = Some(3_600 * S);
        let events = job_events(Some(&running), &reported);
        assert!(matches!(
            events[..],
            [
                JobEvent::FuelReported {
                    fuel: 2_000_000_000,
                    paid: 1_200,
                    ..
                },
                JobEvent::Status {
                    status: JobStatus::Reported,
                    ..
                }
            ]
        ));
        assert!(result_in(&reported) && !result_in(&running));
        assert_eq!(
            describe_event(4, &events[1]),
            "job 4: result in, challenge window open until 1970-01-01 01:00:00 UTC"
        );
        assert_eq!(
            describe_event(4, &events[0]),
            "job 4: 2000000000 of 5000000000 fuel reported, 0.000012 ICP paid (pending)"
        );
        // A job in a reservation counts its slot's intervals instead.
        let mut reserved = job(JobStatus::Running, 0);
        reserved.kind = JobKind::InReservation { reservation: 9 };
        reserved.intervals_paid = 2;
        assert_eq!(
            job_events(Some(&running), &reserved).last(),
            Some(&JobEvent::IntervalsPaid { paid: 2 })
        );
    }

    #[test]
    fn exit_status_and_summary_follow_the_outcome() {
        let mut reported = job(JobStatus::Reported, 2_000_000_000);
        reported.result = Some(result(0, b"out"));
        reported.window_closes_at_ns = Some(3_600 * S);
        assert_eq!(exit_code(&reported), 0, "the result is in");
        assert_eq!(bill(&reported), Some(1_200), "2 billion fuel at 600");
        let open = Settlement::paying(5_000, 1_200, true);
        let s = summary(&reported, &open);
        assert!(
            s.starts_with(
                "job 4 reported (challenge window open until 1970-01-01 01:00:00 UTC): \
                 exited with code 0"
            ),
            "{s}"
        );
        assert!(s.contains("fuel      2000000000 of 5000000000"), "{s}");
        assert!(s.contains("stdout    3 bytes\n"), "{s}");
        assert!(
            s.contains(
                "bill      0.000012 ICP for 2000000000 fuel at 0.000006 ICP per billion fuel; \
                 0.000038 ICP of the 0.00005 ICP locked returns to your escrow balance when \
                 the window closes"
            ),
            "{s}"
        );

        let mut ok = reported.clone();
        ok.status = JobStatus::Succeeded;
        assert_eq!(exit_code(&ok), 0);
        let s = summary(&ok, &open);
        assert!(s.starts_with("job 4 succeeded: exited with code 0"), "{s}");
        assert!(
            s.contains("cost      0.000012 ICP for 2000000000 fuel")
                && s.contains("locked returned to your escrow balance"),
            "{s}"
        );

        let mut failed = job(JobStatus::Failed, 2_000_000_000);
        failed.result = Some(result(3, b""));
        assert_eq!(exit_code(&failed), 1);
        failed.status = JobStatus::Reported;
        assert_eq!(exit_code(&failed), 1, "in, but not clean");
        let mut truncated = result(0, b"partial");
        truncated.output_sha256 = [7; 32];
        assert!(output_truncated(&truncated));
        failed.status = JobStatus::Failed;
        failed.result = Some(truncated);
        let s = summary(
            &failed,
            &Settlement {
                exact: false,
                ..open
            },
        );
        assert!(
            s.contains("truncated by the matcher") && s.contains("cost      about"),
            "{s}"
        );

        let cancelled = job(JobStatus::Cancelled, 1_000_000_000);
        assert_eq!(exit_code(&cancelled), 1);
        let s = summary(&cancelled, &open);
        assert!(s.starts_with("job 4 cancelled without a result"), "{s}");
        assert!(s.contains("for 1000000000 fuel"), "{s}");
    }

    fn audit(disputed: bool, verdict: Option<AuditVerdict>) -> Option<JobAudit> {
        Some(JobAudit {
            disputed,
            drawing: false,
            verdict,
            runs: if verdict.is_some() { vec![5] } else { vec![] },
        })
    }

    #[test]
    fn a_result_being_audited_is_waited_for_until_its_verdict() {
        let running = job(JobStatus::Running, 1_000_000_000);
        // Reported, but drawn for audit: the result is withheld.
        let mut drawn = job(JobStatus::Reported, 2_000_000_000);
        drawn.window_closes_at_ns = Some(3_600 * S);
        drawn.audit = audit(false, None);
        assert!(!result_in(&drawn) && audit_pending(&drawn));
        let events = job_events(Some(&running), &drawn);
        assert!(
            matches!(
                events[..],
                [
                    JobEvent::FuelReported { .. },
                    JobEvent::Audit {
                        disputed: false,
                        drawing: false,
                        verdict: None
                    }
                ]
            ),
            "no result-in status while withheld: {events:?}"
        );
        assert_eq!(
            describe_event(4, &events[1]),
            "job 4: the result is being audited (drawn); waiting for the verdict"
        );
        assert!(job_events(Some(&drawn), &drawn).is_empty());

        // The verdict: it is printed, then the result is in.
        let mut overturned = drawn.clone();
        overturned.audit = audit(false, Some(AuditVerdict::Overturned));
        overturned.result = Some(result(0, b"majority"));
        assert!(result_in(&overturned) && !audit_pending(&overturned));
        let events = job_events(Some(&drawn), &overturned);
        assert!(
            matches!(
                events[..],
                [
                    JobEvent::Audit {
                        verdict: Some(AuditVerdict::Overturned),
                        ..
                    },
                    JobEvent::Status {
                        status: JobStatus::Reported,
                        ..
                    }
                ]
            ),
            "{events:?}"
        );
        assert_eq!(
            describe_event(4, &events[0]),
            "job 4: audit overturned: the provider's result lost the audit; its stake was \
             slashed to you; this is the majority's result"
        );
        assert!(describe_event(4, &events[1]).contains("result in, challenge window open"));

        // While the draw is made the result is withheld too, and said so.
        let mut drawing = drawn.clone();
        drawing.audit.as_mut().unwrap().drawing = true;
        assert!(!result_in(&drawing) && audit_pending(&drawing));
        let events = job_events(Some(&running), &drawing);
        assert_eq!(
            describe_event(4, &events[1]),
            "job 4: the result is in; the matcher is drawing whether to audit it"
        );

        // A draw that passes the result over: the result shows as in.
        let mut passed = drawn.clone();
        passed.audit = None;
        passed.result = Some(result(0, b"out"));
        assert!(matches!(
            job_events(Some(&drawn), &passed)[..],
            [JobEvent::Status {
                status: JobStatus::Reported,
                ..
            }]
        ));

        // A dispute of a result already seen.
        let mut disputed = passed.clone();
        disputed.result = None;
        disputed.audit = audit(true, None);
        let events = job_events(Some(&passed), &disputed);
        assert_eq!(
            events,
            [JobEvent::Audit {
                disputed: true,
                drawing: false,
                verdict: None
            }]
        );
        assert_eq!(
            describe_event(4, &events[0]),
            "job 4: the result is being audited (disputed); waiting for the verdict"
        );
        let mut agreed = passed.clone();
        agreed.audit = audit(true, Some(AuditVerdict::Agreed));
        assert_eq!(
            describe_event(4, &job_events(Some(&disputed), &agreed)[0]),
            "job 4: audit agreed: another provider's run gave the same result; it stands"
        );
    }

    #[test]
    fn listings_and_summaries_show_the_audit() {
        let mut j = job(JobStatus::Reported, 2_000_000_000);
        assert_eq!(audit_state(&j), "-");
        j.audit = audit(false, None);
        assert_eq!(audit_state(&j), "drawn (pending)");
        j.audit = audit(true, None);
        assert_eq!(audit_state(&j), "disputed (pending)");
        j.audit = audit(true, Some(AuditVerdict::Overturned));
        assert_eq!(audit_state(&j), "overturned (disputed)");
        j.audit = audit(false, Some(AuditVerdict::Inconclusive));
        assert_eq!(audit_state(&j), "inconclusive");

        j.result = Some(result(0, b"out"));
        let settled = Settlement::paying(10_000, 2_400, true);
        let s = summary(&j, &settled);
        assert!(
            s.contains(
                "\n  audit     inconclusive: no two runs agreed (or no auditor answered); the \
                 result stands and no one was slashed (drawn)"
            ),
            "{s}"
        );
        j.audit = audit(true, None);
        j.result = None;
        let s = summary(&j, &settled);
        assert!(
            s.contains("audit     pending: the result is withheld until the verdict (disputed)"),
            "{s}"
        );
    }

    #[test]
    fn a_summary_shows_the_market_fee_beside_the_cost() {
        let mut done = job(JobStatus::Succeeded, 2_000_000_000);
        done.result = Some(result(0, b"ok"));
        done.market_fee = market_api::matcher::MarketFee {
            fee_ppm: 25_000,
            locked: 125,
            paid: 30,
        };
        // 2 billion fuel at 600: 1,200 paid, 30 of fee, the rest of
        // 5,125 returned.
        let settled = Settlement::paying_fee(5_125, 1_200, 30, true);
        assert_eq!(settled.refunded, 3_895);
        let s = summary(&done, &settled);
        assert!(
            s.contains(
                "cost      0.000012 ICP for 2000000000 fuel at 0.000006 ICP per billion fuel \
                 and 0.0000003 ICP market fee (2.5% of the pay); 0.00003895 ICP of the \
                 0.00005125 ICP locked returned"
            ),
            "{s}"
        );
        done.market_fee = Default::default();
        let no_fee = summary(&done, &Settlement::paying(5_000, 1_200, true));
        assert!(!no_fee.contains("market fee"), "{no_fee}");
    }
}
