//! The daemon's small durable state: results computed but not yet accepted
//! by the matcher. A result is written here before it is submitted and
//! removed once the matcher took it (or no longer wants it), so a node that
//! restarts in between submits the same result instead of running the job
//! again, and never reports a job twice.

use std::path::{Path, PathBuf};

use market_api::JobId;
use market_api::matcher::SubmitResultArgs;

/// Results waiting for the matcher, one file per (job, attempt).
#[derive(Clone, Debug)]
pub struct ResultStore {
    dir: PathBuf,
}

impl ResultStore {
    /// Opens (creating) `state_dir/results`.
    pub fn open(state_dir: &Path) -> std::io::Result<Self> {
        let dir = state_dir.join("results");
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, job_id: JobId, attempt: u32) -> PathBuf {
        self.dir.join(format!("{job_id}-{attempt}.result"))
    }

    /// Saves a result atomically (write, fsync, rename).
    pub fn save(&self, args: &SubmitResultArgs) -> std::io::Result<()> {
        let bytes = candid::encode_one(args).map_err(std::io::Error::other)?;
        let path = self.path(args.job_id, args.attempt);
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)
    }

    /// The saved result of (job, attempt), if any and readable.
    pub fn load(&self, job_id: JobId, attempt: u32) -> Option<SubmitResultArgs> {
        let bytes = std::fs::read(self.path(job_id, attempt)).ok()?;
        match candid::decode_one::<SubmitResultArgs>(&bytes) {
            Ok(args) if args.job_id == job_id && args.attempt == attempt => Some(args),
            _ => {
                tracing::warn!(job_id, attempt, "ignoring an unreadable saved result");
                None
            }
        }
    }

    /// Forgets the result of (job, attempt).
    pub fn remove(&self, job_id: JobId, attempt: u32) {
        let _ = std::fs::remove_file(self.path(job_id, attempt));
    }

    /// Every (job, attempt) with a saved result.
    pub fn list(&self) -> Vec<(JobId, u32)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        entries
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".result")?;
                let (job, attempt) = stem.split_once('-')?;
                Some((job.parse().ok()?, attempt.parse().ok()?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use market_api::matcher::{JobResult, RunOutcome};

    #[test]
    fn results_survive_a_reopen_and_are_forgotten_once_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResultStore::open(dir.path()).unwrap();
        let args = SubmitResultArgs {
            job_id: 7,
            attempt: 2,
            result: JobResult {
                outcome: RunOutcome::Exited { code: 0 },
                output: b"out".to_vec(),
                output_sha256: [3; 32],
                fuel_used: 9,
                engine: "e".into(),
            },
        };
        store.save(&args).unwrap();
        let again = ResultStore::open(dir.path()).unwrap();
        assert_eq!(again.list(), vec![(7, 2)]);
        assert_eq!(again.load(7, 2), Some(args));
        assert_eq!(again.load(7, 3), None);
        again.remove(7, 2);
        assert!(again.list().is_empty());
    }
}
