//! Service leases: a reservation with a [`ServiceSpec`] whose slots each
//! hold one replica of a `wasi:http` component, every replica on a
//! different provider. Funds, bonds, heartbeats, slashes and re-matches are
//! the reserved slots' (see [`super::reservations`]); on top of them:
//!
//! - **Matching**: a slot is never matched to a provider that holds, or
//!   last failed, another slot of the lease, nor to a provider acting
//!   through the same node as one (the rule audits use).
//! - **Discovery**: the heartbeat that acknowledges a slot must carry the
//!   replica's endpoint (`<base URL>/<lease id>/`) and, for a TCP service,
//!   its `host:port` (refused for an HTTP one); they are recorded, logged
//!   (`ServiceEndpoint`) and told to the owner's callback once. When the
//!   slot loses its provider (a missed deadline, failed probes, a hand-back,
//!   the lease's end) they are cleared the same way. A later heartbeat may
//!   repeat them or leave them out; a different one is refused (a provider
//!   that moves hands the slot back). A TCP service is probed like any
//!   other, at its endpoint: the provider's ingress answers there whether
//!   the service's port takes connections.
//! - **Availability checked by the chain**: each acknowledged replica's
//!   health path is probed once per probe interval by an HTTPS outcall, an
//!   outbox step of the slot. A 2xx answer resets the failure count; any
//!   other answer or a reject counts one more (`ProbeFailed`); at the
//!   configured count the slot is handled exactly as a missed heartbeat
//!   deadline. An answer for an older attempt than the slot's is ignored.
//! - **Probe fee**: the lease locks slots x intervals x probes per interval
//!   x the fee besides its slots' price, counts the probes made, and at
//!   settle pays their fee (at most what it locked for them) to the
//!   matcher's own escrow account before the rest is refunded.

use super::*;
use market_api::matcher::{
    MAX_ALLOWED_HOSTS, ReplicaHealth, ReplicaView, ServiceNotice, ServiceSpec, ServiceView,
    check_allowed_host, check_endpoint, check_health_path, check_tcp_address,
};

/// What the matcher keeps about one replica: one slot of a service lease.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Replica {
    /// Where it answers, as its provider reported on acknowledging the
    /// slot; `None` before and after.
    pub endpoint: Option<String>,
    /// A TCP service's `host:port`, reported and cleared with the
    /// endpoint.
    #[serde(default)]
    pub tcp_address: Option<String>,
    /// The provider that reported it.
    pub provider: Option<Principal>,
    /// The slot's attempt the endpoint belongs to.
    pub attempt: u32,
    /// What the probes of this attempt saw.
    pub health: ReplicaHealth,
    /// When the next probe is due (its key in the probe index); `None`
    /// while a probe is out, or without an endpoint.
    pub next_probe_ns: Option<u64>,
}

/// What a probe's answer came to, for the event log and the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeAnswer {
    /// The lease.
    pub reservation: JobId,
    /// The replica's slot.
    pub slot: u32,
    /// Its provider.
    pub provider: Principal,
    /// Whether the probe failed.
    pub failed: bool,
    /// Probes failed in a row, this one included.
    pub consecutive: u32,
}

/// Checks every bound of a service: the component as a job's module, the
/// env as a job's, the hosts, the health path, the callback, the
/// per-request limits and a TCP service's limits.
pub fn validate_service(service: &ServiceSpec) -> Result<(), MatcherError> {
    if let Some(sealed) = &service.sealed {
        sealed.check_service().map_err(super::sealing_error)?;
    }
    if let ModuleSource::Url { url, .. } = &service.component
        && (url.len() > MAX_URL_LEN || !url.starts_with("https://"))
    {
        return Err(invalid(
            "component",
            format!("an https:// URL of at most {MAX_URL_LEN} bytes"),
        ));
    }
    let env_too_long = service
        .env
        .iter()
        .any(|(k, v)| k.len() > MAX_ARG_LEN || v.len() > MAX_ARG_LEN);
    if service.env.len() > MAX_ARGS || env_too_long {
        return Err(invalid(
            "env",
            format!("at most {MAX_ARGS} entries, each name and value at most {MAX_ARG_LEN} bytes"),
        ));
    }
    if service.allowed_hosts.len() > MAX_ALLOWED_HOSTS {
        return Err(invalid(
            "allowed_hosts",
            format!("at most {MAX_ALLOWED_HOSTS}"),
        ));
    }
    for host in &service.allowed_hosts {
        check_allowed_host(host).map_err(|e| invalid("allowed_hosts", e))?;
    }
    check_health_path(&service.health_path).map_err(|e| invalid("health_path", e))?;
    if let Some(m) = &service.callback
        && (m.is_empty() || m.len() > MAX_METHOD_LEN)
    {
        return Err(invalid("callback", format!("1 to {MAX_METHOD_LEN} bytes")));
    }
    service
        .limits
        .check()
        .map_err(|(field, reason)| invalid(&format!("limits.{field}"), reason))?;
    if let Some(tcp) = &service.tcp {
        tcp.check()
            .map_err(|(field, reason)| invalid(&format!("tcp.{field}"), reason))?;
    }
    Ok(())
}

/// The fee a lease's probes owe when it settles: the probes made at its
/// fee, never more than its lock holds for them.
pub fn probe_fee_due(r: &ReservationRecord) -> Tokens {
    Tokens::from(r.probes)
        .saturating_mul(r.probe_fee)
        .min(r.probe_locked)
}

/// The URL a replica's probe asks for: its endpoint without the trailing
/// slash, then the health path.
pub fn probe_url(endpoint: &str, health_path: &str) -> String {
    format!("{}{health_path}", endpoint.trim_end_matches('/'))
}

/// An acknowledgement of a service's slot: the replica's endpoint and,
/// for a TCP service, its `host:port`.
pub struct ReplicaAck {
    reservation: JobId,
    slot: u32,
    endpoint: String,
    tcp_address: Option<String>,
}

impl<M: Memory> Market<M> {
    /// A service lease's record; `None` for anything else.
    fn lease(&self, reservation: JobId) -> Option<ReservationRecord> {
        self.reservation_record(reservation)
            .filter(|r| r.spec.service.is_some())
    }

    fn secs_ns(secs: u64) -> u64 {
        secs.saturating_mul(1_000_000_000)
    }

    /// Providers slot `slot` of lease `reservation` must not be matched
    /// to: those holding another slot of the lease or the last to fail
    /// one, and the providers acting through the same nodes. Empty for
    /// reserved capacity without a service.
    pub(super) fn lease_exclusions(&self, reservation: JobId, slot: u32) -> Vec<Principal> {
        let Some(r) = self.lease(reservation) else {
            return vec![];
        };
        let mut out: Vec<Principal> = vec![];
        for (i, id) in r.slots.iter().enumerate() {
            if i == slot as usize {
                continue;
            }
            let Some(other) = self.job(*id) else { continue };
            if !other.state.status.is_terminal() {
                out.extend(other.state.assignment.as_ref().map(|a| a.provider));
            }
            out.extend(other.state.failed_providers.last().copied());
        }
        self.with_node_mates(out)
    }

    /// Checks a heartbeat item against a service's slot before the
    /// lifecycle sees it: the acknowledgement must carry a valid endpoint
    /// and, for a TCP service (only), a valid `host:port` (returned, to be
    /// recorded once the heartbeat is accepted); a later heartbeat may
    /// repeat them or leave them out, not change them.
    pub(super) fn service_heartbeat(
        &self,
        rec: &JobRecord,
        item: &HeartbeatItem,
    ) -> Result<Option<ReplicaAck>, String> {
        let JobKind::ReservedSlot { reservation, slot } = rec.kind else {
            return Ok(None);
        };
        let Some(r) = self.lease(reservation) else {
            return Ok(None);
        };
        let tcp = r.spec.service.as_ref().is_some_and(|s| s.tcp.is_some());
        if !tcp && item.tcp_address.is_some() {
            return Err("tcp_address: this service serves HTTP, not TCP".into());
        }
        if rec.state.status == JobStatus::Assigned {
            let endpoint = item.endpoint.clone().ok_or(
                "a service's slot is acknowledged with its replica's endpoint".to_string(),
            )?;
            check_endpoint(&endpoint, reservation).map_err(|e| format!("endpoint: {e}"))?;
            let tcp_address = match (&item.tcp_address, tcp) {
                (Some(address), _) => {
                    check_tcp_address(address).map_err(|e| format!("tcp_address: {e}"))?;
                    Some(address.clone())
                }
                (None, true) => {
                    return Err(
                        "tcp_address: a TCP service's slot is acknowledged with its replica's host:port"
                            .into(),
                    );
                }
                (None, false) => None,
            };
            return Ok(Some(ReplicaAck {
                reservation,
                slot,
                endpoint,
                tcp_address,
            }));
        }
        let recorded = r.replicas.get(slot as usize);
        if let (Some(new), Some(old)) = (&item.endpoint, recorded.and_then(|x| x.endpoint.as_ref()))
            && new != old
        {
            return Err(format!(
                "the replica's endpoint is {old}; to move it, hand the slot back"
            ));
        }
        if let (Some(new), Some(old)) = (
            &item.tcp_address,
            recorded.and_then(|x| x.tcp_address.as_ref()),
        ) && new != old
        {
            return Err(format!(
                "the replica's tcp_address is {old}; to move it, hand the slot back"
            ));
        }
        Ok(None)
    }

    /// A service's slot was acknowledged with its endpoint: recorded, its
    /// first probe due one probe interval from now, and the change logged
    /// and told to the owner.
    pub(super) fn replica_up(
        &mut self,
        p: &Params,
        now_ns: u64,
        slot_id: JobId,
        provider: Principal,
        attempt: u32,
        ack: ReplicaAck,
    ) {
        let Some(mut r) = self.lease(ack.reservation) else {
            return;
        };
        let Some(replica) = r.replicas.get_mut(ack.slot as usize) else {
            return;
        };
        if let Some(at) = replica.next_probe_ns.take() {
            self.probes.remove(&(at, slot_id, replica.attempt));
        }
        let next = now_ns.saturating_add(Self::secs_ns(p.probe_interval_secs));
        *replica = Replica {
            endpoint: Some(ack.endpoint.clone()),
            tcp_address: ack.tcp_address.clone(),
            provider: Some(provider),
            attempt,
            health: ReplicaHealth::default(),
            next_probe_ns: Some(next),
        };
        self.probes.insert((next, slot_id, attempt), ());
        let callback = r.spec.service.as_ref().and_then(|s| s.callback.clone());
        self.put_reservation(ack.reservation, r);
        self.endpoint_changed(
            ack.reservation,
            ack.slot,
            provider,
            (Some(ack.endpoint), ack.tcp_address),
            callback,
        );
    }

    /// Slot `slot` (job `slot_id`) of a lease lost its provider: its
    /// endpoint is cleared, its probes stop, and the change is logged and
    /// told to the owner. Nothing for a slot without an endpoint. A TCP
    /// service's address is cleared with it.
    pub(super) fn replica_down(&mut self, reservation: JobId, slot_id: JobId, slot: u32) {
        let Some(mut r) = self.lease(reservation) else {
            return;
        };
        let Some(replica) = r.replicas.get_mut(slot as usize) else {
            return;
        };
        if let Some(at) = replica.next_probe_ns.take() {
            self.probes.remove(&(at, slot_id, replica.attempt));
        }
        let had_address = replica.tcp_address.take().is_some();
        let (Some(_), Some(provider)) = (replica.endpoint.take(), replica.provider) else {
            if had_address {
                self.put_reservation(reservation, r);
            }
            return;
        };
        let callback = r.spec.service.as_ref().and_then(|s| s.callback.clone());
        self.put_reservation(reservation, r);
        self.endpoint_changed(reservation, slot, provider, (None, None), callback);
    }

    /// Queues the event of a replica's endpoint change (`at`: its
    /// endpoint and TCP address now) and, if the owner named a callback,
    /// its notice (in the lease's outbox queue, so a slow callback never
    /// holds up a slot's bond).
    fn endpoint_changed(
        &mut self,
        reservation: JobId,
        slot: u32,
        provider: Principal,
        at: (Option<String>, Option<String>),
        callback: Option<String>,
    ) {
        let (endpoint, tcp_address) = at;
        self.outbox.push(
            reservation,
            Effect::Endpoint {
                slot,
                provider,
                endpoint: endpoint.clone(),
                tcp_address: tcp_address.clone(),
            },
        );
        if let Some(method) = callback {
            let notice = ServiceNotice {
                service: reservation,
                slot,
                provider: endpoint.is_some().then_some(provider),
                endpoint,
                tcp_address,
            };
            self.outbox
                .push(reservation, Effect::ServiceNotice { method, notice });
        }
    }

    /// When the next probe is due, for arming the timer.
    pub fn next_probe_ns(&self) -> Option<u64> {
        self.probes.keys().next().map(|(at, _, _)| at)
    }

    /// Starts up to `budget` probes due by `now_ns`: each becomes an
    /// outbox step of its slot; the next is scheduled when it is answered.
    /// A probe of a slot that moved on since is dropped. Returns how many
    /// due entries it handled.
    pub fn process_probes(&mut self, now_ns: u64, budget: usize) -> usize {
        let due: Vec<(u64, JobId, u32)> = self
            .probes
            .keys_range((0, 0, 0)..=(now_ns, JobId::MAX, u32::MAX))
            .take(budget)
            .collect();
        for key in &due {
            self.probes.remove(key);
            let (_, slot_id, attempt) = *key;
            let Some(rec) = self.job(slot_id) else {
                continue;
            };
            let JobKind::ReservedSlot { reservation, slot } = rec.kind else {
                continue;
            };
            let running = rec.state.status == JobStatus::Running
                && rec.state.assignment.as_ref().map(|a| a.attempt) == Some(attempt);
            let Some(mut r) = self.lease(reservation) else {
                continue;
            };
            let health_path = r
                .spec
                .service
                .as_ref()
                .map(|s| s.health_path.clone())
                .unwrap_or_default();
            let Some(replica) = r.replicas.get_mut(slot as usize) else {
                continue;
            };
            if !running || replica.attempt != attempt {
                continue;
            }
            let Some(endpoint) = replica.endpoint.clone() else {
                continue;
            };
            replica.next_probe_ns = None;
            self.put_reservation(reservation, r);
            let url = probe_url(&endpoint, &health_path);
            self.outbox.push(slot_id, Effect::Probe { attempt, url });
        }
        due.len()
    }

    /// The answer to a probe of slot job `slot_id`'s `attempt`: healthy
    /// (`Some(true)`: 2xx), failed (`Some(false)`: anything else or a
    /// reject) or unknown (`None`: the call's outcome was lost, which
    /// counts neither way). The probe is counted for the lease's fee
    /// whatever it found; an answer for an attempt that is not the slot's
    /// running one changes nothing else. The `probe_failures`-th failure in
    /// a row is handled as a missed heartbeat deadline; otherwise the next
    /// probe is scheduled. Returns what the probe found, if it counted.
    pub fn probe_answered(
        &mut self,
        p: &Params,
        now_ns: u64,
        slot_id: JobId,
        attempt: u32,
        healthy: Option<bool>,
    ) -> Option<ProbeAnswer> {
        let rec = self.job(slot_id)?;
        let JobKind::ReservedSlot { reservation, slot } = rec.kind else {
            return None;
        };
        let mut r = self.lease(reservation)?;
        if !r.settled {
            r.probes = r.probes.saturating_add(1);
        }
        let running = rec.state.status == JobStatus::Running
            && rec.state.assignment.as_ref().map(|a| a.attempt) == Some(attempt);
        let Some(replica) = r
            .replicas
            .get_mut(slot as usize)
            .filter(|x| running && x.attempt == attempt && x.endpoint.is_some())
        else {
            self.put_reservation(reservation, r);
            return None;
        };
        let h = &mut replica.health;
        h.last_probe_ns = Some(now_ns);
        h.probes = h.probes.saturating_add(1);
        match healthy {
            Some(true) => {
                h.consecutive_failures = 0;
                h.last_ok = Some(true);
            }
            Some(false) => {
                h.consecutive_failures = h.consecutive_failures.saturating_add(1);
                h.last_ok = Some(false);
            }
            None => {}
        }
        let answer = ProbeAnswer {
            reservation,
            slot,
            provider: replica.provider.unwrap_or(Principal::anonymous()),
            failed: healthy == Some(false),
            consecutive: h.consecutive_failures,
        };
        let out = answer.failed && answer.consecutive >= p.probe_failures;
        if !out {
            let next = now_ns.saturating_add(Self::secs_ns(p.probe_interval_secs));
            replica.next_probe_ns = Some(next);
            self.probes.insert((next, slot_id, attempt), ());
        }
        self.put_reservation(reservation, r);
        if out {
            // As a missed heartbeat deadline: slashed, recorded, matched
            // anew (the endpoint is cleared as the slot is freed).
            let _ = self.transition(p, now_ns, slot_id, |rec| {
                Ok(rec.state.probes_failed(p, attempt))
            });
        }
        Some(answer)
    }

    /// The public view of a service lease: no env, no delegates.
    pub fn service(&self, id: JobId) -> Option<ServiceView> {
        let r = self.lease(id)?;
        let rec = self.job(id)?;
        let service = r.spec.service.as_ref()?;
        let component_sha256 = match &service.component {
            ModuleSource::Stored { sha256 } | ModuleSource::Url { sha256, .. } => *sha256,
        };
        let mut paid: Tokens = 0;
        let mut replicas = Vec::with_capacity(r.slots.len());
        for (i, slot_id) in r.slots.iter().enumerate() {
            let Some(slot) = self.job(*slot_id) else {
                continue;
            };
            paid = paid.saturating_add(slot.state.released);
            let replica = r.replicas.get(i).cloned().unwrap_or_default();
            let job = slot.to_job();
            replicas.push(ReplicaView {
                slot: i as u32,
                job_id: *slot_id,
                status: job.status,
                provider: job.provider,
                endpoint: replica.endpoint,
                tcp_address: replica.tcp_address,
                health: replica.health,
                rematches: job.retries_used,
            });
        }
        Some(ServiceView {
            id,
            owner: rec.state.owner,
            status: r.status,
            component_sha256,
            health_path: service.health_path.clone(),
            allowed_hosts: service.allowed_hosts.clone(),
            limits: service.limits,
            tcp: service.tcp,
            replicas,
            interval_secs: r.spec.interval_secs,
            intervals: r.spec.intervals,
            locked: r.locked,
            paid: paid.saturating_add(probe_fee_due(&r)),
        })
    }
}
