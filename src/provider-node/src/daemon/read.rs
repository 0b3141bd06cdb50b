//! Reading a job to run from the matcher in replies that stay small
//! whatever the buyer put in it: its spec without the input (`job_view`),
//! then the input in chunks (`job_chunk`), checked against the size and
//! sha256 the view gives. A job that is no longer running (its result
//! already in, or ended) is not read further.

use market_api::JobId;
use market_api::matcher::{
    JobChunkRequest, JobPart, JobSpec, JobStatus, MAX_INPUT_BYTES, MAX_OUTPUT_BYTES, Sha256,
};
use market_client::transport::Transport;
use market_client::{ClientError, MarketClient};
use sha2::Digest;

use super::sealed::KeyError;

/// Why a job could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A call failed or its reply could not be read.
    #[error(transparent)]
    Call(#[from] ClientError),
    /// The matcher no longer has the job.
    #[error("the matcher has no job {0}")]
    Gone(JobId),
    /// The job is past running: its result is in (challenge window open)
    /// or it ended.
    #[error("job {job_id} is {status:?}, not running")]
    NotRunning {
        /// The job.
        job_id: JobId,
        /// Its status.
        status: JobStatus,
    },
    /// The job is sealed and its key could not be had (see
    /// [`KeyError::is_transient`]).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The bytes read do not match what the job's view says of them.
    #[error("job {job_id}: {reason}")]
    Corrupt {
        /// The job.
        job_id: JobId,
        /// What did not match.
        reason: String,
    },
}

impl ReadError {
    /// Whether reading again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ReadError::Call(e) => e.is_transient(),
            ReadError::Key(e) => e.is_transient(),
            ReadError::Gone(_) | ReadError::NotRunning { .. } | ReadError::Corrupt { .. } => false,
        }
    }
}

/// The spec of job `job_id` with its input, read in bounded replies, if
/// the job is assigned or running.
pub async fn read_job<T: Transport>(
    client: &MarketClient<T>,
    job_id: JobId,
) -> Result<JobSpec, ReadError> {
    let view = client
        .job_view(job_id)
        .await?
        .ok_or(ReadError::Gone(job_id))?;
    let status = view.job.status;
    if !matches!(status, JobStatus::Assigned | JobStatus::Running) {
        return Err(ReadError::NotRunning { job_id, status });
    }
    let mut spec = view.job.spec;
    spec.input = read_part(
        client,
        job_id,
        JobPart::Input,
        view.input_bytes,
        view.input_sha256,
    )
    .await?;
    Ok(spec)
}

/// A job's input or output, chunk by chunk: `total` bytes hashing to `sha256`.
pub async fn read_part<T: Transport>(
    client: &MarketClient<T>,
    job_id: JobId,
    part: JobPart,
    total: u64,
    sha256: Sha256,
) -> Result<Vec<u8>, ReadError> {
    let corrupt = |reason: String| ReadError::Corrupt { job_id, reason };
    let limit = match part {
        JobPart::Input => MAX_INPUT_BYTES,
        JobPart::Output => MAX_OUTPUT_BYTES,
    };
    let total = usize::try_from(total)
        .ok()
        .filter(|t| *t <= limit)
        .ok_or_else(|| corrupt(format!("{part:?} of {total} bytes, over {limit}")))?;
    let mut bytes = Vec::with_capacity(total);
    while bytes.len() < total {
        let chunk = client
            .job_chunk(JobChunkRequest {
                job_id,
                part,
                offset: bytes.len() as u64,
            })
            .await?;
        if chunk.total_bytes != total as u64 || chunk.sha256 != sha256 {
            return Err(corrupt(format!("{part:?} changed while it was read")));
        }
        if chunk.bytes.is_empty() || bytes.len() + chunk.bytes.len() > total {
            return Err(corrupt(format!(
                "a chunk of {} bytes at offset {} of {total}",
                chunk.bytes.len(),
                bytes.len()
            )));
        }
        bytes.extend_from_slice(&chunk.bytes);
    }
    let got: Sha256 = sha2::Sha256::digest(&bytes).into();
    if got != sha256 {
        return Err(corrupt(format!(
            "{part:?} does not hash to the sha256 its view gives"
        )));
    }
    Ok(bytes)
}
