//! Who may read a job's contents, a service's secrets and a stored module.
//!
//! A job's *readers* are its owner; for a job run in a reservation (or a
//! reserved slot), the reservation's owner and delegates; and the
//! provider holding the job's current assignment, or the node it bound
//! (see [`Market::provider_of`]). Everyone else sees hashes, sizes and
//! terms: the views here empty the contents for them.
//!
//! A service's env (plain and sealed) is read by the reservation's owner
//! and delegates and by the providers holding one of its slots: a
//! replica's provider reads the lease to start the service.

use super::*;
use market_api::matcher::{Reservation, Sha256};

/// Empties a job's contents: its input, args, env, sealed env and output
/// (the output's sha256 stays).
pub fn hide_job_contents(job: &mut Job) {
    job.spec.input = Vec::new();
    job.spec.args = Vec::new();
    job.spec.env = Vec::new();
    if let Some(s) = job.spec.sealed.as_mut() {
        s.env = None;
    }
    if let Some(r) = job.result.as_mut() {
        r.output = Vec::new();
    }
}

/// Bytes of a job's args, env names and values, and sealed env.
pub fn args_env_bytes(spec: &JobSpec) -> u64 {
    let args: usize = spec.args.iter().map(String::len).sum();
    let env: usize = spec.env.iter().map(|(k, v)| k.len() + v.len()).sum();
    let sealed = spec
        .sealed
        .as_ref()
        .and_then(|s| s.env.as_ref())
        .map_or(0, |e| e.len());
    (args + env + sealed) as u64
}

impl<M: Memory> Market<M> {
    /// Whether `caller` acts for the provider holding `rec`'s current
    /// assignment (the provider itself or its bound node).
    pub fn holds_assignment(&self, caller: Principal, rec: &JobRecord) -> bool {
        rec.state
            .assignment
            .as_ref()
            .is_some_and(|a| self.provider_of(caller) == a.provider)
    }

    /// Whether `caller` owns reservation `id` or is one of its delegates.
    pub fn owns_or_delegate(&self, caller: Principal, id: JobId) -> bool {
        let owner = self.job(id).map(|j| j.state.owner);
        owner == Some(caller)
            || self
                .reservation_record(id)
                .is_some_and(|r| r.spec.delegates.contains(&caller))
    }

    /// Whether `caller` may read `rec`'s contents.
    pub fn reads_job(&self, caller: Principal, rec: &JobRecord) -> bool {
        if rec.state.owner == caller || self.holds_assignment(caller, rec) {
            return true;
        }
        match rec.kind {
            JobKind::InReservation { reservation } | JobKind::ReservedSlot { reservation, .. } => {
                self.owns_or_delegate(caller, reservation)
            }
            _ => false,
        }
    }

    /// Whether `caller` may read the env of reservation `id`'s service:
    /// its owner, a delegate, or the holder of one of its slots.
    pub fn reads_lease(&self, caller: Principal, id: JobId) -> bool {
        if self.owns_or_delegate(caller, id) {
            return true;
        }
        self.reservation_record(id).is_some_and(|r| {
            r.slots.iter().any(|slot| {
                self.job(*slot).is_some_and(|s| {
                    !s.state.status.is_terminal() && self.holds_assignment(caller, &s)
                })
            })
        })
    }

    /// A job as `caller` may see it.
    pub fn job_for(&self, caller: Principal, id: JobId) -> Option<Job> {
        let rec = self.job(id)?;
        let mut job = rec.to_job();
        if !self.reads_job(caller, &rec) {
            hide_job_contents(&mut job);
        }
        Some(job)
    }

    /// A reservation as `caller` may see it.
    pub fn reservation_for(&self, caller: Principal, id: JobId) -> Option<Reservation> {
        let mut r = self.reservation(id)?;
        if !self.reads_lease(caller, id)
            && let Some(service) = r.spec.service.as_mut()
        {
            service.env = Vec::new();
            if let Some(s) = service.sealed.as_mut() {
                s.env = None;
            }
        }
        Some(r)
    }

    /// Whether the module `sha256` runs in `rec` (for a reserved slot, as
    /// its lease's component).
    fn runs_module(&self, rec: &JobRecord, sha256: &Sha256) -> bool {
        let stored =
            |m: &ModuleSource| matches!(m, ModuleSource::Stored { sha256: s } if s == sha256);
        match rec.kind {
            JobKind::ReservedSlot { reservation, .. } => self
                .reservation_record(reservation)
                .and_then(|r| r.spec.service)
                .is_some_and(|s| stored(&s.component)),
            _ => stored(&rec.spec.module),
        }
    }

    /// Whether `caller` may read the stored module `sha256`: its uploader,
    /// the owner of a live job (or lease) that runs it, or the provider
    /// (or its node) holding an assignment of one.
    pub fn reads_module(&self, caller: Principal, sha256: &Sha256) -> bool {
        if self
            .modules
            .meta(sha256)
            .is_some_and(|m| m.uploader == caller)
        {
            return true;
        }
        let owns = self
            .active_by_owner
            .keys_range((caller, 0)..=(caller, JobId::MAX))
            .filter_map(|(_, id)| self.job(id))
            .any(|r| self.runs_module(&r, sha256));
        if owns {
            return true;
        }
        let provider = self.provider_of(caller);
        self.assigned_by_provider
            .keys_range((provider, 0)..=(provider, JobId::MAX))
            .filter_map(|(_, id)| self.job(id))
            .any(|r| self.holds_assignment(caller, &r) && self.runs_module(&r, sha256))
    }
}
