//! Who gets a job's vetKey (see `market_api::privacy`): the provider
//! holding the job's current assignment, for that attempt, while it runs;
//! and the job's owner, to read a sealed result. Derivations are counted
//! per holder before the call, since each costs the matcher cycles.

use super::*;
use market_api::privacy::{JobKeyRequest, MAX_KEYS_PER_HOLDER, Sealed, job_identity};

/// Job keys derived for one job (stored with it).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// Keys derived for the job's owner.
    pub owner: u32,
    /// The assignment attempt `provider` counts for.
    pub attempt: u32,
    /// Keys derived for the provider holding `attempt`.
    pub provider: u32,
}

/// Whom a job key is derived for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyHolder {
    /// The job's owner (for a replica's slot, the lease's owner).
    Owner,
    /// The provider (or its node) holding this attempt.
    Provider {
        /// The attempt it holds.
        attempt: u32,
    },
}

/// A derivation `job_key` may ask for: who gets it, for which identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyGrant {
    /// The job.
    pub job_id: JobId,
    /// Who gets the key.
    pub holder: KeyHolder,
    /// The identity to derive ([`job_identity`]).
    pub identity: Vec<u8>,
}

fn unauthorized() -> MatcherError {
    MatcherError::Unauthorized {
        reason: "only the provider holding the job's assignment (for its attempt) and the \
                 job's owner get its key"
            .into(),
    }
}

impl<M: Memory> Market<M> {
    /// The sealing of a job's contents: a replica slot's is its lease's,
    /// any other job's its own. (A slot's owner is its lease's owner, so
    /// the identity is always the job's owner's.)
    fn sealing_of(&self, rec: &JobRecord) -> Option<Sealed> {
        match rec.kind {
            JobKind::ReservedSlot { reservation, .. } => {
                self.reservation_record(reservation)?.spec.service?.sealed
            }
            _ => rec.spec.sealed.clone(),
        }
    }

    /// Checks that `caller` may get the key `req` asks for; changes
    /// nothing (see [`Market::count_job_key`]).
    pub fn check_job_key(
        &self,
        caller: Principal,
        req: &JobKeyRequest,
    ) -> Result<KeyGrant, MatcherError> {
        let rec = self
            .job(req.job_id)
            .ok_or(MatcherError::UnknownJob { job_id: req.job_id })?;
        let owner = rec.state.owner;
        // The holder of a running attempt whose bond holds (until it
        // does, the job is not the provider's to run).
        let holds = holder_of(&rec) == Some(self.provider_of(caller))
            && rec
                .state
                .assignment
                .as_ref()
                .is_some_and(|a| a.attempt == req.attempt && !a.bond_pending);
        let holder = if holds {
            KeyHolder::Provider {
                attempt: req.attempt,
            }
        } else if owner == caller {
            KeyHolder::Owner
        } else {
            return Err(unauthorized());
        };
        let sealed = self
            .sealing_of(&rec)
            .ok_or_else(|| invalid("job_id", "the job has nothing sealed"))?;
        Ok(KeyGrant {
            job_id: req.job_id,
            holder,
            identity: job_identity(owner, &sealed.key_id),
        })
    }

    /// Counts the derivation `grant` before it is asked for: at most
    /// [`MAX_KEYS_PER_HOLDER`] per assignment attempt for the provider
    /// and per job for the owner. Returns the counts before.
    pub fn count_job_key(&mut self, grant: &KeyGrant) -> Result<KeyCounts, MatcherError> {
        let mut rec = self.job(grant.job_id).ok_or(MatcherError::UnknownJob {
            job_id: grant.job_id,
        })?;
        let limit = || MatcherError::LimitReached {
            what: "job keys for this holder".into(),
            limit: u64::from(MAX_KEYS_PER_HOLDER),
        };
        let before = rec.keys;
        let keys = &mut rec.keys;
        match grant.holder {
            KeyHolder::Owner => {
                if keys.owner >= MAX_KEYS_PER_HOLDER {
                    return Err(limit());
                }
                keys.owner += 1;
            }
            KeyHolder::Provider { attempt } => {
                if keys.attempt != attempt {
                    keys.attempt = attempt;
                    keys.provider = 0;
                }
                if keys.provider >= MAX_KEYS_PER_HOLDER {
                    return Err(limit());
                }
                keys.provider += 1;
            }
        }
        self.put_job(rec);
        Ok(before)
    }

    /// Takes back the count of a derivation the management canister
    /// rejected (it had no effect): the job's counts return to `before`.
    pub fn uncount_job_key(&mut self, job_id: JobId, before: KeyCounts) {
        let Some(mut rec) = self.job(job_id) else {
            return;
        };
        rec.keys = before;
        self.put_job(rec);
    }
}
