//! `market dispute`: the owner of a one-off job asks for its result to be
//! audited while its challenge window is open. Another provider runs the
//! job again, paid from the job's lock; a disagreement is broken by a third
//! run, and a result the majority disagrees with costs its provider its
//! bond, paid to the owner.

use market_api::JobId;
use market_api::matcher::{Job, JobKind, JobStatus, MatcherError};

use super::watch::{audit_reason, verdict_text};
use super::{BuyerError, with_retries};
use market_client::client::time::format_time;
use market_client::client::{ClientError, MarketClient, describe_matcher};
use market_client::transport::Transport;

/// Disputes the result of job `id` (the caller's): returns the job as it
/// is now, its audit pending. A refusal says in plain words why (not the
/// owner, no result yet, window closed, already audited, not auditable).
pub async fn dispute<T: Transport>(client: &MarketClient<T>, id: JobId) -> Result<Job, BuyerError> {
    // Not retried: after an unknown outcome the job shows whether it is
    // being audited, and a second dispute would be refused as audited.
    match client.dispute_job(id).await {
        Ok(()) => {}
        Err(ClientError::Matcher(e)) => return Err(refusal(client, id, e).await),
        Err(e) => return Err(e.into()),
    }
    with_retries(|| client.get_job(id))
        .await?
        .ok_or(BuyerError::UnknownJob(id))
}

/// The matcher refused to dispute job `id` with `e`: why, in the job's
/// terms.
async fn refusal<T: Transport>(client: &MarketClient<T>, id: JobId, e: MatcherError) -> BuyerError {
    let refused = |reason: String| BuyerError::DisputeRefused { id, reason };
    match e {
        MatcherError::UnknownJob { .. } => BuyerError::UnknownJob(id),
        MatcherError::Unauthorized { .. } => {
            refused("it is not yours: only a job's owner may dispute its result".into())
        }
        MatcherError::InvalidState { .. } => {
            let job = client.get_job(id).await.ok().flatten();
            let now_ns = client.time_ns().await.ok();
            match job {
                Some(job) => refused(why_not_disputable(&job, now_ns)),
                None => refused(describe_matcher(&e)),
            }
        }
        other => ClientError::Matcher(other).into(),
    }
}

/// Why the result of `job` can't be disputed (at IC time `now_ns`, if
/// known), for a job the matcher refused to dispute as it stands.
pub fn why_not_disputable(job: &Job, now_ns: Option<u64>) -> String {
    let id = job.id;
    match job.kind {
        JobKind::OneOff => {}
        JobKind::InReservation { .. } => {
            return "a job run in a reservation is not audited: its slot pays for time, not for \
                    the job's fuel"
                .into();
        }
        _ => return "only a one-off job's result can be disputed".into(),
    }
    if let Some(audit) = &job.audit {
        return match audit.verdict {
            None => format!(
                "its result is already being audited ({}); `market watch {id}` waits for the \
                 verdict",
                audit_reason(audit)
            ),
            Some(v) => format!(
                "its result was already audited ({}): {}",
                audit_reason(audit),
                verdict_text(v)
            ),
        };
    }
    match job.status {
        JobStatus::Open | JobStatus::Assigned | JobStatus::Running => format!(
            "it has no result yet (it is {}); dispute it once its result is in (`market watch \
             {id}` waits for it)",
            format!("{:?}", job.status).to_lowercase()
        ),
        JobStatus::Succeeded => "its challenge window closed: the result is final".into(),
        JobStatus::Reported => match (job.window_closes_at_ns, now_ns) {
            (Some(closes), Some(now)) if now >= closes => format!(
                "its challenge window closed at {}: the result is final",
                format_time(closes)
            ),
            _ => "its result can't be audited: its bid asked for no audits and this market's \
                  least audit probability is 0 (submit with --audit-ppm to make a job \
                  disputable)"
                .into(),
        },
        status => format!(
            "it ended {} and has no result to dispute",
            format!("{status:?}").to_lowercase()
        ),
    }
}

/// What `market dispute` says once job `id`'s result is disputed: what
/// happens next and how to follow it.
pub fn dispute_message(id: JobId) -> String {
    format!(
        "disputed job {id}: its result is withheld while another provider runs the job again, \
         paid from the job's lock (a third run breaks a tie).\n  \
         if the majority agrees with the result, it stands.\n  \
         if the majority disagrees, the provider is slashed in your favour, forfeits its pay, \
         and the majority's result replaces its result.\n  \
         follow it:  market watch {id}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::tests::job;
    use market_api::matcher::{AuditVerdict, JobAudit};

    const S: u64 = 1_000_000_000;

    #[test]
    fn refusals_say_why_in_the_jobs_terms() {
        let running = job(JobStatus::Running, 1);
        let why = why_not_disputable(&running, Some(0));
        assert!(
            why.starts_with("it has no result yet (it is running)")
                && why.contains("market watch 4"),
            "{why}"
        );

        let mut reported = job(JobStatus::Reported, 1);
        reported.window_closes_at_ns = Some(60 * S);
        let why = why_not_disputable(&reported, Some(61 * S));
        assert_eq!(
            why,
            "its challenge window closed at 1970-01-01 00:01:00 UTC: the result is final"
        );
        let why = why_not_disputable(&reported, Some(59 * S));
        assert!(
            why.contains("asked for no audits") && why.contains("--audit-ppm"),
            "{why}"
        );

        reported.audit = Some(JobAudit {
            disputed: false,
            drawing: false,
            verdict: None,
            runs: vec![],
        });
        let why = why_not_disputable(&reported, Some(59 * S));
        assert_eq!(
            why,
            "its result is already being audited (drawn); `market watch 4` waits for the verdict"
        );
        reported.audit = Some(JobAudit {
            disputed: true,
            drawing: false,
            verdict: Some(AuditVerdict::Agreed),
            runs: vec![5],
        });
        let why = why_not_disputable(&reported, Some(59 * S));
        assert!(
            why.starts_with("its result was already audited (disputed): agreed"),
            "{why}"
        );

        let succeeded = job(JobStatus::Succeeded, 1);
        assert_eq!(
            why_not_disputable(&succeeded, None),
            "its challenge window closed: the result is final"
        );
        let cancelled = job(JobStatus::Cancelled, 1);
        assert_eq!(
            why_not_disputable(&cancelled, None),
            "it ended cancelled and has no result to dispute"
        );
        let mut reserved = job(JobStatus::Reported, 1);
        reserved.kind = JobKind::InReservation { reservation: 2 };
        assert!(why_not_disputable(&reserved, None).contains("in a reservation is not audited"));

        let e = BuyerError::DisputeRefused {
            id: 4,
            reason: "it is not yours".into(),
        };
        assert_eq!(e.to_string(), "job 4 can't be disputed: it is not yours");
    }

    #[test]
    fn a_dispute_says_what_happens_next() {
        let m = dispute_message(9);
        for part in [
            "another provider runs the job again",
            "paid from the job's lock",
            "slashed in your favour",
            "majority's result replaces",
            "market watch 9",
        ] {
            assert!(m.contains(part), "{part:?} in {m}");
        }
    }
}
