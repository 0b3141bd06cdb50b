//! Following a job until it ends, and what it cost.

use std::future::Future;
use std::time::Duration;

use candid::Principal;
use market_api::matcher::{Job, JobKind, JobResult, JobStatus, MatcherEvent, RunOutcome};
use market_api::{EventPage, JobId, PageRequest, Tokens};

use super::{BuyerError, Console, sha256_of, with_retries};
use market_client::client::MarketClient;
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
        /// The price of the current assignment.
        price: Option<Tokens>,
    },
    /// More intervals were paid.
    IntervalsPaid {
        /// Paid so far.
        paid: u32,
        /// The most that can be paid.
        max: u32,
    },
    /// A provider failed the job (missed a deadline) and it was re-queued.
    Retried {
        /// Retries used so far.
        used: u32,
        /// Retries allowed.
        max: u32,
    },
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
    let status = before
        .is_none_or(|b| b.status != now.status || b.provider != now.provider)
        .then_some(JobEvent::Status {
            status: now.status,
            provider: now.provider,
            price: now.price_per_interval,
        });
    let paid = (now.intervals_paid > before.map_or(0, |b| b.intervals_paid)).then_some(
        JobEvent::IntervalsPaid {
            paid: now.intervals_paid,
            max: now.spec.max_intervals,
        },
    );
    // Payments happen while a job runs: show them before its end.
    if now.status.is_terminal() {
        events.extend(paid.into_iter().chain(status));
    } else {
        events.extend(status.into_iter().chain(paid));
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
        } if matches!(status, JobStatus::Assigned | JobStatus::Running) => format!(
            "job {id}: {} {p}{}",
            if *status == JobStatus::Assigned {
                "assigned to"
            } else {
                "running on"
            },
            price.map_or(String::new(), |p| format!(
                " at {} per interval",
                format_tokens(p)
            )),
        ),
        JobEvent::Status { status, .. } => {
            format!("job {id}: {}", format!("{status:?}").to_lowercase())
        }
        JobEvent::IntervalsPaid { paid, max } => {
            format!("job {id}: {paid} of {max} intervals paid")
        }
        JobEvent::Retried { used, max } => format!(
            "job {id}: the provider failed it; re-queued (retry {used} of {max}), the provider \
             is slashed"
        ),
    }
}

/// Polls job `id` every `poll`, printing each change, until it ends
/// (`Some(job)`) or `interrupt` resolves (`None`).
pub async fn watch<T: Transport>(
    client: &MarketClient<T>,
    id: JobId,
    poll: Duration,
    console: &mut Console,
    interrupt: impl Future<Output = ()>,
) -> Result<Option<Job>, BuyerError> {
    let mut interrupt = std::pin::pin!(interrupt);
    let mut last: Option<Job> = None;
    loop {
        let job = tokio::select! {
            job = with_retries(|| client.get_job(id)) => job?,
            () = &mut interrupt => return Ok(None),
        };
        let job = job.ok_or(BuyerError::UnknownJob(id))?;
        for event in job_events(last.as_ref(), &job) {
            console.line(describe_event(id, &event));
        }
        if job.status.is_terminal() {
            return Ok(Some(job));
        }
        last = Some(job);
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = &mut interrupt => return Ok(None),
        }
    }
}

/// What a finished job cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// Locked at submission: price × intervals.
    pub locked: Tokens,
    /// Paid to providers.
    pub paid: Tokens,
    /// Returned to the buyer's free balance.
    pub refunded: Tokens,
    /// Whether the numbers come from the matcher's `JobFinished` event;
    /// otherwise they are estimated from the intervals paid at the last
    /// assignment's price.
    pub exact: bool,
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

/// What a finished job cost: exact from the matcher's event log when its
/// `JobFinished` event is among the latest events, estimated otherwise.
pub async fn settlement<T: Transport>(client: &MarketClient<T>, job: &Job) -> Settlement {
    if let JobKind::InReservation { .. } = job.kind {
        // The reservation's slot pays; the job locks and costs nothing.
        return Settlement {
            locked: 0,
            paid: 0,
            refunded: 0,
            exact: true,
        };
    }
    let locked = job
        .spec
        .max_price_per_interval
        .saturating_mul(Tokens::from(job.spec.max_intervals));
    match refund_event(client, job.id).await {
        Some(refunded) => Settlement {
            locked,
            paid: locked.saturating_sub(refunded),
            refunded,
            exact: true,
        },
        None => {
            let paid = job
                .price_per_interval
                .unwrap_or(0)
                .saturating_mul(Tokens::from(job.intervals_paid))
                .min(locked);
            Settlement {
                locked,
                paid,
                refunded: locked - paid,
                exact: false,
            }
        }
    }
}

/// A person-readable form of a run's outcome.
pub fn describe_outcome(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::Exited { code } => format!("exited with code {code}"),
        RunOutcome::OutOfFuel => "ran out of fuel (raise --fuel or --intervals)".into(),
        RunOutcome::OutOfMemory => "hit the memory limit (raise --memory-mib)".into(),
        RunOutcome::Deadline => "hit its wall-clock deadline".into(),
        RunOutcome::OutputTooLarge => "wrote more output than providers keep".into(),
        RunOutcome::Trap { message } => format!("trapped: {message}"),
        RunOutcome::InvalidModule { message } => format!("invalid module: {message}"),
    }
}

/// Whether the matcher kept only part of the job's stdout.
pub fn output_truncated(result: &JobResult) -> bool {
    sha256_of(&result.output) != result.output_sha256
}

/// The exit status of `market run`/`result`/`watch` for a finished job: 0
/// only for a job that succeeded with exit code 0.
pub fn exit_code(job: &Job) -> u8 {
    let clean = job
        .result
        .as_ref()
        .is_some_and(|r| r.outcome == RunOutcome::Exited { code: 0 });
    if job.status == JobStatus::Succeeded && clean {
        0
    } else {
        1
    }
}

/// The closing summary of a finished job (several lines, for stderr).
pub fn summary(job: &Job, settlement: &Settlement) -> String {
    let status = format!("{:?}", job.status).to_lowercase();
    let mut s = match &job.result {
        Some(r) => format!("job {} {status}: {}", job.id, describe_outcome(&r.outcome)),
        None => format!("job {} {status} without a result", job.id),
    };
    if let Some(p) = job.provider {
        s.push_str(&format!("\n  provider  {p}"));
    }
    if let Some(r) = &job.result {
        let budget = job
            .spec
            .limits
            .fuel_per_interval
            .saturating_mul(u64::from(job.spec.max_intervals));
        s.push_str(&format!(
            "\n  fuel      {} of {budget}\n  engine    {}\n  stdout    {} bytes{}",
            r.fuel_used,
            r.engine,
            r.output.len(),
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
        s.push_str(&format!(
            "\n  cost      {}{} for {} interval{}; {} of the {} locked returned to your escrow \
         balance",
            if settlement.exact { "" } else { "about " },
            format_tokens(settlement.paid),
            job.intervals_paid,
            if job.intervals_paid == 1 { "" } else { "s" },
            format_tokens(settlement.refunded),
            format_tokens(settlement.locked),
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
mod tests {
    use super::*;
    use market_api::matcher::{JobLimits, JobSpec, ModuleSource};

    fn job(status: JobStatus, paid: u32) -> Job {
        Job {
            id: 4,
            owner: Principal::anonymous(),
            spec: JobSpec {
                module: ModuleSource::Stored { sha256: [0; 32] },
                input: vec![],
                args: vec![],
                env: vec![],
                limits: JobLimits {
                    memory_mib: 16,
                    fuel_per_interval: 100,
                },
                interval_secs: 60,
                max_intervals: 5,
                max_price_per_interval: 1_000,
                ledger: Principal::anonymous(),
                min_provider_stake: 0,
                max_retries: 2,
                callback: None,
            },
            status,
            provider: Some(Principal::management_canister()),
            price_per_interval: Some(600),
            intervals_paid: paid,
            retries_used: 0,
            result: None,
            submitted_at_ns: 0,
            kind: market_api::matcher::JobKind::OneOff,
        }
    }

    fn result(code: i32, output: &[u8]) -> JobResult {
        JobResult {
            outcome: RunOutcome::Exited { code },
            output: output.to_vec(),
            output_sha256: sha256_of(output),
            fuel_used: 42,
            engine: "wasmtime-48.0.8".into(),
        }
    }

    #[test]
    fn changes_between_polls_become_events_in_order() {
        let running = job(JobStatus::Running, 1);
        assert_eq!(
            job_events(None, &running),
            [
                JobEvent::Status {
                    status: JobStatus::Running,
                    provider: running.provider,
                    price: Some(600)
                },
                JobEvent::IntervalsPaid { paid: 1, max: 5 }
            ]
        );
        assert!(job_events(Some(&running), &running).is_empty());
        let mut retried = job(JobStatus::Open, 1);
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
        // At the end, the last payment shows before the final status.
        let done = job(JobStatus::Succeeded, 2);
        assert!(matches!(
            job_events(Some(&running), &done)[..],
            [
                JobEvent::IntervalsPaid { paid: 2, .. },
                JobEvent::Status {
                    status: JobStatus::Succeeded,
                    ..
                }
            ]
        ));
    }

    #[test]
    fn exit_status_and_summary_follow_the_outcome() {
        let mut ok = job(JobStatus::Succeeded, 2);
        ok.result = Some(result(0, b"out"));
        assert_eq!(exit_code(&ok), 0);
        let settled = Settlement {
            locked: 5_000,
            paid: 1_200,
            refunded: 3_800,
            exact: true,
        };
        let s = summary(&ok, &settled);
        assert!(s.starts_with("job 4 succeeded: exited with code 0"), "{s}");
        assert!(s.contains("fuel      42 of 500"), "{s}");
        assert!(s.contains("stdout    3 bytes\n"), "{s}");
        assert!(
            s.contains("cost      0.000012 ICP for 2 intervals; 0.000038 ICP of the 0.00005 ICP"),
            "{s}"
        );

        let mut failed = job(JobStatus::Failed, 1);
        failed.result = Some(result(3, b""));
        assert_eq!(exit_code(&failed), 1);
        let mut truncated = result(0, b"partial");
        truncated.output_sha256 = [7; 32];
        assert!(output_truncated(&truncated));
        failed.result = Some(truncated);
        let s = summary(
            &failed,
            &Settlement {
                exact: false,
                ..settled
            },
        );
        assert!(
            s.contains("truncated by the matcher") && s.contains("cost      about"),
            "{s}"
        );

        let expired = job(JobStatus::Expired, 5);
        assert_eq!(exit_code(&expired), 1);
        assert!(summary(&expired, &settled).starts_with("job 4 expired without a result"));
    }
}
