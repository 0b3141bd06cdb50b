//! The daemon against a fake matcher that enforces the real heartbeat
//! windows ([`market_api::matcher::heartbeat_window_opens_ns`]) and fuel
//! rules (the declared speed, the budget, no decrease) on a clock the test
//! drives.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use candid::{Decode, Encode, Principal};
use market_api::escrow::Balance;
use market_api::matcher::{
    Assignment, AssignmentPage, HeartbeatAck, HeartbeatItem, Job as ApiJob, JobChunk,
    JobChunkRequest, JobLimits as ApiLimits, JobSpec, JobStatus, JobView, MatcherError,
    MatcherInit, ModuleInfo, ModuleSource, Reservation, ReservationSpec, ReservationStatus,
    RunOutcome, ServiceLimits, ServiceSpec, SubmitResultArgs, fuel_cost, heartbeat_window_opens_ns,
};
use market_api::{JobId, PageRequest};
use market_fixture::jobs::HELLO;
use sha2::Digest;

use super::*;
use crate::sandbox::SandboxConfig;
use market_client::client::CanisterIds;
use market_client::transport::{Call, TransportError};

const S: u64 = 1_000_000_000;
const GRACE: u64 = 5 * S;
/// What the fake pays per billion fuel.
const PRICE: market_api::Tokens = 100;
/// The speed the fake's offers declare unless a test says otherwise: more
/// than any test's run reaches, so that only time counted caps a report.
const FAST: u64 = 1_000_000_000_000;

struct FakeJob {
    attempt: u32,
    spec: JobSpec,
    acknowledged: bool,
    due_ns: u64,
    result: Option<SubmitResultArgs>,
    /// Heartbeats that closed an interval.
    paid: u32,
    missed: bool,
    handed_back: bool,
    /// The declared speed and when the attempt's fuel began to count.
    fuel_per_sec: u64,
    counting_from_ns: u64,
    /// When the result is due, if the listing says.
    result_deadline_ns: Option<u64>,
    /// Cumulative fuel accepted from heartbeats and the result.
    fuel_reported: u64,
    /// The seed the assignment names: the job's own, or (an audit run)
    /// the audited job's.
    seed: [u8; 32],
    /// What the record stands for: a job, or a reserved slot.
    kind: JobKind,
    /// A service slot's replica endpoint, as recorded when acknowledged.
    endpoint: Option<String>,
    /// A TCP service slot's address, as recorded when acknowledged.
    tcp_address: Option<String>,
}

impl FakeJob {
    /// The matcher's rule: declared speed × seconds counted, within the budget.
    fn fuel_allowed(&self, now: u64) -> u64 {
        let elapsed = u128::from(now.saturating_sub(self.counting_from_ns));
        let allowed = u128::from(self.fuel_per_sec) * elapsed / u128::from(S);
        u64::try_from(allowed)
            .unwrap_or(u64::MAX)
            .min(self.spec.limits.fuel)
    }

    /// Why the matcher refuses `fuel` reported at `now` (`None`: a result).
    fn fuel_refusal(&self, fuel: u64, now: Option<u64>) -> Option<String> {
        if fuel < self.fuel_reported {
            return Some(format!("fuel decreased below {}", self.fuel_reported));
        }
        if fuel > self.spec.limits.fuel {
            return Some("fuel over the budget".into());
        }
        let allowed = now.map(|t| self.fuel_allowed(t))?;
        (fuel > allowed).then(|| format!("fuel {fuel} over the {allowed} allowed"))
    }
}

#[derive(Default)]
struct FakeState {
    jobs: BTreeMap<JobId, FakeJob>,
    modules: BTreeMap<[u8; 32], Vec<u8>>,
    /// (time, job, accepted)
    heartbeats: Vec<(u64, JobId, bool)>,
    /// (time, job, fuel) of each accepted heartbeat item.
    fuel_reports: Vec<(u64, JobId, u64)>,
    /// Why heartbeat items and results were refused.
    refusals: Vec<String>,
    submissions: Vec<SubmitResultArgs>,
    /// (job, heartbeat items received before the hand-back)
    hand_backs: Vec<(JobId, usize)>,
    /// Reservations, for `get_reservation`.
    reservations: BTreeMap<ReservationId, Reservation>,
    /// (job, accepted, endpoint) of each heartbeat item received.
    endpoints: Vec<(JobId, bool, Option<String>)>,
    /// (job, accepted, tcp address) of each heartbeat item received.
    tcp_addresses: Vec<(JobId, bool, Option<String>)>,
    /// Each `job_key` request received.
    key_requests: Vec<market_api::privacy::JobKeyRequest>,
    /// What `job_key` answers instead of a key: each error once, in order,
    /// then keys.
    key_errors: Vec<MatcherError>,
}

/// A matcher (and the bits of escrow the daemon reads) in memory.
#[derive(Default)]
struct FakeMarket {
    now: AtomicU64,
    state: Mutex<FakeState>,
    /// Update calls to fail with a network error before answering again.
    fail_updates: AtomicU32,
    /// Most assignments a page holds (0: one).
    page_size: usize,
    /// Most bytes a chunk of a job's input holds.
    chunk_size: usize,
    /// A job whose input chunks come with one bit flipped, as a broken or
    /// lying answer would give them.
    corrupt_input_of: Option<JobId>,
    /// Listing replies still to answer with something that does not decode.
    garbled_listings: AtomicU32,
    /// Pages of `assignments` answered.
    pages_read: AtomicU64,
}

impl FakeMarket {
    fn advance(&self, by: u64) {
        let now = self.now.fetch_add(by, Ordering::SeqCst) + by;
        // Deadlines pass: a missed one is recorded (a real matcher slashes).
        let mut st = self.state.lock().unwrap();
        for j in st.jobs.values_mut() {
            let result_late = j.result_deadline_ns.is_some_and(|d| now > d + GRACE);
            if j.result.is_none() && (now > j.due_ns + GRACE || result_late) {
                j.missed = true;
            }
        }
    }

    fn add_job(&self, job_id: JobId, spec: JobSpec) {
        let now = self.now.load(Ordering::SeqCst);
        let due_ns = now + spec.interval_secs * S;
        self.state.lock().unwrap().jobs.insert(
            job_id,
            FakeJob {
                attempt: 1,
                spec,
                acknowledged: false,
                due_ns,
                result: None,
                paid: 0,
                missed: false,
                handed_back: false,
                fuel_per_sec: FAST,
                counting_from_ns: now,
                result_deadline_ns: None,
                fuel_reported: 0,
                seed: job_seed(job_id),
                kind: JobKind::OneOff,
                endpoint: None,
                tcp_address: None,
            },
        );
    }

    /// Adds reservation `reservation` (running `service`, if any) with one
    /// slot, job `job_id`, assigned to the node, in intervals of 10 s.
    fn add_slot(&self, job_id: JobId, reservation: ReservationId, service: Option<ServiceSpec>) {
        let mut slot = spec([0; 32], 10);
        slot.limits.fuel = 0;
        self.add_job(job_id, slot);
        let lease = lease(reservation, service);
        let mut st = self.state.lock().unwrap();
        st.jobs.get_mut(&job_id).unwrap().kind = JobKind::ReservedSlot {
            reservation,
            slot: 0,
        };
        st.reservations.insert(reservation, lease);
    }

    /// Changes job `id`'s terms.
    fn tune_job(&self, id: JobId, tune: impl FnOnce(&mut FakeJob)) {
        tune(self.state.lock().unwrap().jobs.get_mut(&id).unwrap());
    }

    fn store(&self, wasm: &[u8]) -> [u8; 32] {
        let sha: [u8; 32] = sha2::Sha256::digest(wasm).into();
        self.state
            .lock()
            .unwrap()
            .modules
            .insert(sha, wasm.to_vec());
        sha
    }

    /// Stores `holds`'s module under the digest of `named`'s, as a store
    /// handing out the wrong bytes would.
    fn store_as(&self, named: &str, holds: &str) -> [u8; 32] {
        let sha: [u8; 32] = sha2::Sha256::digest(wasm(named)).into();
        self.state.lock().unwrap().modules.insert(sha, wasm(holds));
        sha
    }

    fn handle(&self, method: &str, arg: &[u8]) -> Result<Vec<u8>, TransportError> {
        let now = self.now.load(Ordering::SeqCst);
        let mut guard = self.state.lock().unwrap();
        let st = &mut *guard;
        let bytes = match method {
            "get_config" => Encode!(&MatcherInit::new(
                Principal::anonymous(),
                Principal::anonymous(),
                Principal::anonymous(),
                GRACE / S,
            )),
            "assignments" => {
                let (_, page) = Decode!(arg, Principal, PageRequest).unwrap();
                let garble = self
                    .garbled_listings
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if garble {
                    return Ok(Encode!(&"surprise").unwrap());
                }
                let start = page.start.unwrap_or(0);
                let mut held = st
                    .jobs
                    .range(start..)
                    // A reported job stays listed while its challenge
                    // window is open (which, here, it always is).
                    .filter(|(_, j)| !j.missed && !j.handed_back)
                    .map(|(id, j)| Assignment {
                        job_id: *id,
                        attempt: j.attempt,
                        price: PRICE,
                        next_deadline_ns: j.due_ns + GRACE,
                        result_deadline_ns: j.result_deadline_ns,
                        fuel_reported: j.fuel_reported,
                        fuel_per_sec: j.fuel_per_sec,
                        counting_from_ns: Some(j.counting_from_ns),
                        acknowledged: j.acknowledged,
                        kind: j.kind,
                        interval_secs: j.spec.interval_secs,
                        intervals_paid: j.paid,
                        input_bytes: j.spec.input.len() as u64,
                        seed: j.seed,
                    });
                let assignments: Vec<Assignment> =
                    held.by_ref().take(self.page_size.max(1)).collect();
                let next = held.next().map(|a| a.job_id);
                self.pages_read.fetch_add(1, Ordering::SeqCst);
                Encode!(&AssignmentPage { assignments, next })
            }
            "job_view" => {
                let id = Decode!(arg, JobId).unwrap();
                let view = st.jobs.get(&id).map(|j| {
                    let mut job = api_job(id, j);
                    let input = std::mem::take(&mut job.spec.input);
                    JobView {
                        args_env_bytes: 0,
                        contents_hidden: false,
                        job,
                        input_bytes: input.len() as u64,
                        input_sha256: sha2::Sha256::digest(&input).into(),
                        output_bytes: 0,
                    }
                });
                Encode!(&view)
            }
            "job_chunk" => {
                let req = Decode!(arg, JobChunkRequest).unwrap();
                let reply = match st.jobs.get(&req.job_id) {
                    Some(j) => {
                        let mut whole = j.spec.input.clone();
                        let sha256 = sha2::Sha256::digest(&whole).into();
                        if self.corrupt_input_of == Some(req.job_id) {
                            whole[0] ^= 1;
                        }
                        let start = (req.offset as usize).min(whole.len());
                        let end = (start + self.chunk_size).min(whole.len());
                        Ok(JobChunk {
                            bytes: whole[start..end].to_vec(),
                            total_bytes: whole.len() as u64,
                            sha256,
                        })
                    }
                    None => Err(MatcherError::UnknownJob { job_id: req.job_id }),
                };
                Encode!(&reply)
            }
            "heartbeat" => {
                let items = Decode!(arg, Vec<HeartbeatItem>).unwrap();
                let mut acks = vec![];
                for item in items {
                    // The lease whose replica this slot runs, if a service's.
                    let (lease, tcp) = match st.jobs.get(&item.job_id).map(|j| j.kind) {
                        Some(JobKind::ReservedSlot { reservation, .. }) => st
                            .reservations
                            .get(&reservation)
                            .and_then(|r| r.spec.service.as_ref())
                            .map_or((None, false), |s| (Some(reservation), s.tcp.is_some())),
                        _ => (None, false),
                    };
                    let Some(j) = st.jobs.get_mut(&item.job_id) else {
                        acks.push(HeartbeatAck::Refused {
                            reason: "unknown job".into(),
                        });
                        continue;
                    };
                    let interval = j.spec.interval_secs * S;
                    let ack = if j.result.is_some()
                        || j.missed
                        || j.handed_back
                        || j.attempt != item.attempt
                    {
                        HeartbeatAck::Refused {
                            reason: "the job is not assigned to this provider and attempt".into(),
                        }
                    } else if let Some(reason) = j.fuel_refusal(item.fuel_used, Some(now)) {
                        st.refusals.push(reason.clone());
                        HeartbeatAck::Refused { reason }
                    } else if let Some(reason) = lease
                        .and_then(|id| endpoint_refusal(j, id, &item))
                        .or_else(|| tcp_refusal(j, lease.is_some() && tcp, &item))
                    {
                        st.refusals.push(reason.clone());
                        HeartbeatAck::Refused { reason }
                    } else if !j.acknowledged {
                        j.acknowledged = true;
                        if lease.is_some() {
                            j.endpoint = item.endpoint.clone();
                            j.tcp_address = item.tcp_address.clone();
                        }
                        j.due_ns = now + interval;
                        j.fuel_reported = item.fuel_used;
                        HeartbeatAck::Accepted {
                            next_deadline_ns: j.due_ns + GRACE,
                        }
                    } else if now < heartbeat_window_opens_ns(j.due_ns, interval) {
                        HeartbeatAck::Refused {
                            reason: format!(
                                "too early: the next heartbeat is accepted from {}",
                                heartbeat_window_opens_ns(j.due_ns, interval)
                            ),
                        }
                    } else {
                        j.paid += 1;
                        j.due_ns += interval;
                        j.fuel_reported = item.fuel_used;
                        HeartbeatAck::Accepted {
                            next_deadline_ns: j.due_ns + GRACE,
                        }
                    };
                    let accepted = matches!(ack, HeartbeatAck::Accepted { .. });
                    st.heartbeats.push((now, item.job_id, accepted));
                    st.endpoints
                        .push((item.job_id, accepted, item.endpoint.clone()));
                    st.tcp_addresses
                        .push((item.job_id, accepted, item.tcp_address.clone()));
                    if accepted {
                        st.fuel_reports.push((now, item.job_id, item.fuel_used));
                    }
                    acks.push(ack);
                }
                Encode!(&Ok::<_, MatcherError>(acks))
            }
            "submit_result" => {
                let args = Decode!(arg, SubmitResultArgs).unwrap();
                let fuel = args.result.fuel_used;
                let reply = match st.jobs.get_mut(&args.job_id) {
                    Some(j) if j.result.is_none() && !j.missed && j.attempt == args.attempt => {
                        match j.fuel_refusal(fuel, None) {
                            Some(reason) => {
                                st.refusals.push(reason.clone());
                                Err(MatcherError::InvalidArgument {
                                    field: "fuel_used".into(),
                                    reason,
                                })
                            }
                            None => {
                                // Reported: the challenge window opens.
                                j.fuel_reported = fuel;
                                j.result = Some(args.clone());
                                Ok(())
                            }
                        }
                    }
                    Some(_) => Err(MatcherError::InvalidState {
                        status: JobStatus::Reported,
                    }),
                    None => Err(MatcherError::UnknownJob {
                        job_id: args.job_id,
                    }),
                };
                st.submissions.push(args);
                Encode!(&reply)
            }
            "hand_back" => {
                let (job_id, attempt) = Decode!(arg, JobId, u32).unwrap();
                let received = st.heartbeats.len();
                st.hand_backs.push((job_id, received));
                let reply = match st.jobs.get_mut(&job_id) {
                    Some(j) if j.attempt == attempt && j.result.is_none() && !j.missed => {
                        j.handed_back = true;
                        Ok(())
                    }
                    _ => Err(MatcherError::UnknownJob { job_id }),
                };
                Encode!(&reply)
            }
            "module_info_of" => {
                let sha = Decode!(arg, serde_bytes::ByteBuf).unwrap();
                let sha: [u8; 32] = sha.as_slice().try_into().unwrap();
                let info = st.modules.get(&sha).map(|m| ModuleInfo {
                    sha256: sha,
                    size: m.len() as u64,
                    chunks: 1,
                    committed: true,
                    refs: 1,
                });
                Encode!(&info)
            }
            "module_chunk" => {
                let (sha, _index) = Decode!(arg, serde_bytes::ByteBuf, u32).unwrap();
                let sha: [u8; 32] = sha.as_slice().try_into().unwrap();
                let chunk = st
                    .modules
                    .get(&sha)
                    .map(|m| serde_bytes::ByteBuf::from(m.clone()))
                    .ok_or(MatcherError::UnknownModule { sha256: sha });
                Encode!(&chunk)
            }
            "job_key" => {
                let req = Decode!(arg, market_api::privacy::JobKeyRequest).unwrap();
                st.key_requests.push(req.clone());
                let reply = if st.key_errors.is_empty() {
                    fake_job_key(st, &req)
                } else {
                    Err(st.key_errors.remove(0))
                };
                Encode!(&reply)
            }
            "get_reservation" => {
                let id = Decode!(arg, ReservationId).unwrap();
                Encode!(&st.reservations.get(&id))
            }
            "get_job" => {
                let id = Decode!(arg, JobId).unwrap();
                Encode!(&st.jobs.get(&id).map(|j| api_job(id, j)))
            }
            "balance_of" => Encode!(&Balance {
                ledger: Principal::anonymous(),
                free: 0,
                claimable: 0,
                pending: 0,
                locked: 0,
            }),
            other => panic!("unexpected call {other}"),
        };
        Ok(bytes.unwrap())
    }
}

/// Why the matcher refuses `item` for a slot of service `lease`: an
/// acknowledgement must name the replica's endpoint (the matcher's
/// [`check_endpoint`](market_api::matcher::check_endpoint)), and a later
/// one may not name another.
fn endpoint_refusal(j: &FakeJob, lease: ReservationId, item: &HeartbeatItem) -> Option<String> {
    let Some(new) = &item.endpoint else {
        return (!j.acknowledged)
            .then(|| "a service's slot is acknowledged with its replica's endpoint".into());
    };
    if let Err(e) = market_api::matcher::check_endpoint(new, lease) {
        return Some(format!("endpoint: {e}"));
    }
    match &j.endpoint {
        Some(old) if old != new => Some(format!(
            "the replica's endpoint is {old}; to move it, hand the slot back"
        )),
        _ => None,
    }
}

/// Why the matcher refuses `item`'s TCP address: required on a TCP
/// service slot's acknowledgement (and checked), refused for anything
/// else, never changed later.
fn tcp_refusal(j: &FakeJob, tcp: bool, item: &HeartbeatItem) -> Option<String> {
    match (&item.tcp_address, tcp) {
        (Some(_), false) => Some("tcp_address: this service serves HTTP, not TCP".into()),
        (None, true) => (!j.acknowledged).then(|| {
            "tcp_address: a TCP service's slot is acknowledged with its replica's host:port".into()
        }),
        (None, false) => None,
        (Some(new), true) => {
            if let Err(e) = market_api::matcher::check_tcp_address(new) {
                return Some(format!("tcp_address: {e}"));
            }
            match &j.tcp_address {
                Some(old) if old != new => Some(format!(
                    "the replica's tcp_address is {old}; to move it, hand the slot back"
                )),
                _ => None,
            }
        }
    }
}

/// What the fake's `job_key` answers: the key of the job's identity (its
/// owner's and its sealing's key id, or for a service slot its lease's),
/// for the provider holding the job's current attempt.
fn fake_job_key(
    st: &FakeState,
    req: &market_api::privacy::JobKeyRequest,
) -> Result<market_api::privacy::JobKey, MatcherError> {
    let unauthorized = |reason: &str| MatcherError::Unauthorized {
        reason: reason.into(),
    };
    let j = st
        .jobs
        .get(&req.job_id)
        .ok_or(MatcherError::UnknownJob { job_id: req.job_id })?;
    if j.attempt != req.attempt || j.handed_back || j.missed {
        return Err(unauthorized("not the provider of this attempt"));
    }
    let sealed = match j.kind {
        JobKind::ReservedSlot { reservation, .. } => st
            .reservations
            .get(&reservation)
            .and_then(|r| r.spec.service.as_ref())
            .and_then(|s| s.sealed.clone()),
        _ => j.spec.sealed.clone(),
    }
    .ok_or_else(|| unauthorized("the job is not sealed"))?;
    let identity = market_api::privacy::job_identity(Principal::anonymous(), &sealed.key_id);
    vetkeys::job_key(&identity, &req.transport_public_key).map_err(|_| {
        MatcherError::InvalidArgument {
            field: "transport_public_key".into(),
            reason: "not a transport key".into(),
        }
    })
}

/// The fake's vetKeys: a master key of the devnet's kind, the matcher's
/// derived public key, and job keys encrypted to a transport key.
mod vetkeys {
    use market_api::privacy::JobKey;
    use market_fixture::vetkeys::TestKeys;

    fn keys() -> TestKeys {
        TestKeys::new(b"provider-node daemon tests")
    }

    /// The matcher's public key (`privacy_key`'s), what buyers seal to.
    pub fn public_key() -> Vec<u8> {
        keys().public_key()
    }

    /// The vetKey of `identity` encrypted to `transport`, as `job_key`
    /// returns it.
    pub fn job_key(identity: &[u8], transport: &[u8]) -> Result<JobKey, ()> {
        keys().job_key(identity, transport).ok_or(())
    }
}

/// The matcher's view of a fake job.
fn api_job(id: JobId, j: &FakeJob) -> ApiJob {
    ApiJob {
        market_fee: Default::default(),
        pricing: None,
        id,
        owner: Principal::anonymous(),
        spec: j.spec.clone(),
        status: match &j.result {
            Some(_) => JobStatus::Reported,
            None if j.acknowledged => JobStatus::Running,
            None => JobStatus::Assigned,
        },
        provider: Some(Principal::from_slice(&[7; 29])),
        price: Some(PRICE),
        intervals_paid: 0,
        fuel_reported: j.fuel_reported,
        paid: fuel_cost(j.fuel_reported, PRICE).unwrap(),
        window_closes_at_ns: j.result.as_ref().map(|_| u64::MAX),
        retries_used: 0,
        result: j.result.as_ref().map(|r| r.result.clone()),
        submitted_at_ns: 0,
        kind: j.kind,
        audit: None,
    }
}

impl Transport for FakeMarket {
    fn sender(&self) -> Principal {
        Principal::from_slice(&[7; 29])
    }
    async fn update(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        let failing = self
            .fail_updates
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(TransportError::Network("connection reset".into()));
        }
        self.handle(call.method, &call.arg)
    }
    async fn query(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        self.handle(call.method, &call.arg)
    }
    async fn time_ns(&self) -> Result<u64, TransportError> {
        Ok(self.now.load(Ordering::SeqCst))
    }
}

/// Spins until cancelled or out of fuel.
const SPIN: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))"#;

/// An active lease `id` of one slot of 32 MiB (running `service`, if
/// any) for 100 intervals of 10 s at up to [`PRICE`].
pub(super) fn lease(id: ReservationId, service: Option<ServiceSpec>) -> Reservation {
    Reservation {
        market_fee: Default::default(),
        id,
        owner: Principal::anonymous(),
        spec: ReservationSpec {
            currency: None,
            slots: 1,
            memory_mib: 32,
            fuel_per_interval: 0,
            interval_secs: 10,
            intervals: 100,
            max_price_per_interval: PRICE,
            ledger: Principal::anonymous(),
            min_provider_stake: 0,
            max_rematches: 0,
            delegates: vec![],
            service,
        },
        status: ReservationStatus::Active,
        slots: vec![],
        locked: 0,
        paid: 0,
        queued_jobs: 0,
        created_at_ns: 0,
    }
}

/// A job on the stored module `sha256`, heartbeated every
/// `interval_secs`: 16 MiB, 5,000 billion fuel at up to [`PRICE`], no
/// deadline of its own.
pub(super) fn spec(sha256: [u8; 32], interval_secs: u64) -> JobSpec {
    JobSpec {
        sealed: None,
        currency: None,
        module: ModuleSource::Stored { sha256 },
        input: vec![],
        args: vec![],
        env: vec![],
        limits: ApiLimits {
            memory_mib: 16,
            fuel: 5_000_000_000_000,
        },
        max_price_per_gfuel: PRICE,
        deadline_secs: None,
        interval_secs,
        ledger: Principal::anonymous(),
        min_provider_stake: 0,
        min_record: None,
        max_retries: 0,
        callback: None,
        audit_ppm: None,
    }
}

struct Harness {
    market: Arc<FakeMarket>,
    state_dir: tempfile::TempDir,
    executor: Arc<Executor>,
    metrics: Metrics,
    /// The service host behind the node's ingress, if it runs one.
    services: Option<ServiceHost>,
    /// How the node serves TCP services and its ports, if it does.
    tcp: Option<(replica::TcpServing, std::ops::RangeInclusive<u16>)>,
}

impl Harness {
    /// Stores `wat`'s module and adds job 1 running it, in intervals of
    /// 10 s; returns the module's sha256.
    fn job_1(&self, wat: &str) -> [u8; 32] {
        let sha = self.market.store(&wasm(wat));
        self.market.add_job(1, spec(sha, 10));
        sha
    }

    /// The node's saved results.
    fn results(&self) -> ResultStore {
        ResultStore::open(self.state_dir.path()).unwrap()
    }

    fn new() -> Self {
        Self::with_market(|_| {})
    }

    /// A harness whose fake matcher `tune` changes first.
    fn with_market(tune: impl FnOnce(&mut FakeMarket)) -> Self {
        let mut market = FakeMarket {
            now: AtomicU64::new(1_000 * S),
            page_size: 100,
            chunk_size: 1 << 20,
            ..Default::default()
        };
        tune(&mut market);
        let executor = Executor::new(SandboxConfig {
            concurrent_jobs: 2,
            max_job_memory_bytes: 64 << 20,
            pooling: false,
            ..SandboxConfig::default()
        })
        .unwrap();
        Self {
            market: Arc::new(market),
            state_dir: tempfile::tempdir().unwrap(),
            executor: Arc::new(executor),
            metrics: Metrics::default(),
            services: None,
            tcp: None,
        }
    }

    fn daemon(&self, shutdown_grace: Duration) -> Daemon<Arc<FakeMarket>> {
        let ids = CanisterIds {
            ledger: Principal::anonymous(),
            registry: Principal::anonymous(),
            escrow: Principal::anonymous(),
            matcher: Principal::anonymous(),
        };
        let daemon = Daemon::new(
            MarketClient::new(Arc::clone(&self.market), ids),
            Arc::clone(&self.executor),
            DaemonConfig {
                provider: Principal::from_slice(&[7; 29]),
                poll_interval: Duration::from_millis(5),
                shutdown_grace,
                max_job_time: Duration::from_secs(60),
                state_dir: self.state_dir.path().to_path_buf(),
                cache_dir: None,
            },
            self.metrics.clone(),
        )
        .unwrap()
        // The URL tests' module server on 127.0.0.1 stands for a mirror.
        .with_egress(EgressPolicy::strict().with_mirror(std::net::Ipv4Addr::LOCALHOST.into()));
        let daemon = match &self.services {
            Some(host) => daemon.with_services(host.clone()),
            None => daemon,
        };
        match &self.tcp {
            Some((serving, ports)) => daemon.with_tcp_services(serving.clone(), ports.clone()),
            None => daemon,
        }
    }

    /// Runs the daemon while `drive` advances the fake clock; stops it when
    /// `drive` returns.
    async fn run_while<F: std::future::Future<Output = ()>>(
        &self,
        shutdown_grace: Duration,
        drive: F,
    ) -> Summary {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let daemon = self.daemon(shutdown_grace);
        let task = tokio::spawn(daemon.run(async {
            let _ = rx.await;
        }));
        drive.await;
        let _ = tx.send(());
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the daemon stops")
            .unwrap()
    }

    /// Runs the daemon (5 s shutdown grace) until job 1 has a result.
    async fn run_until_job_1_has_a_result(&self) -> Summary {
        self.run_while(
            Duration::from_secs(5),
            self.until(0, "a result", |st| st.jobs[&1].result.is_some()),
        )
        .await
    }

    /// Waits until the daemon acknowledged job 1.
    async fn until_job_1_is_acknowledged(&self) {
        self.until(0, "an acknowledgement", |st| st.jobs[&1].acknowledged)
            .await
    }

    /// Waits (real time) until `cond` holds, advancing the IC clock by
    /// `step` ns per 2 ms.
    async fn until(&self, step: u64, what: &str, cond: impl Fn(&FakeState) -> bool) {
        for _ in 0..10_000 {
            if cond(&self.market.state.lock().unwrap()) {
                return;
            }
            self.market.advance(step);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("timed out waiting for: {what}");
    }
}

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_job_acknowledges_it_and_submits_its_result_once() {
    let h = Harness::new();
    h.job_1(HELLO);
    let summary = h.run_until_job_1_has_a_result().await;
    let st = h.market.state.lock().unwrap();
    assert_eq!(st.submissions.len(), 1, "one submission");
    let r = &st.submissions[0].result;
    assert_eq!(r.outcome, RunOutcome::Exited { code: 0 });
    assert_eq!(r.output, b"hello\n");
    assert_eq!(
        r.output_sha256,
        <[u8; 32]>::from(sha2::Sha256::digest(b"hello\n"))
    );
    assert_eq!(r.engine, ENGINE_VERSION);
    assert!(r.fuel_used > 0);
    assert!(st.jobs[&1].acknowledged, "acknowledged before the result");
    assert_eq!(summary.results_submitted, 1);
    assert_eq!(h.metrics.jobs_completed.get(), 1);
    assert!(h.results().list().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_land_in_their_window_every_interval_while_a_job_runs() {
    let h = Harness::new();
    let sha = h.job_1(SPIN);
    h.market.add_job(2, spec(sha, 10));
    // 0.1 s of IC time per 2 ms: an interval every ~200 ms of real time.
    h.run_while(
        Duration::from_millis(50),
        h.until(S / 10, "six paid intervals", |st| {
            st.jobs.values().all(|j| j.paid >= 6)
        }),
    )
    .await;
    let st = h.market.state.lock().unwrap();
    assert!(st.jobs.values().all(|j| !j.missed), "no deadline missed");
    let refused = st.heartbeats.iter().filter(|(_, _, ok)| !ok).count();
    assert_eq!(
        refused, 0,
        "no heartbeat too early or refused: {:?}",
        st.heartbeats
    );
    // The two jobs were acknowledged together and then shared batches.
    let times: std::collections::BTreeSet<u64> = st.heartbeats.iter().map(|(t, _, _)| *t).collect();
    assert!(
        times.len() * 2 <= st.heartbeats.len() + 2,
        "batched: {:?}",
        st.heartbeats
    );
    assert!(h.metrics.heartbeats_sent.get() >= 14);
    assert!(
        st.submissions.is_empty(),
        "cancelled at shutdown, not reported"
    );
    // Each job's cumulative fuel was reported as it grew.
    for id in [1, 2] {
        let fuel: Vec<u64> = st
            .fuel_reports
            .iter()
            .filter(|(_, j, _)| *j == id)
            .map(|(_, _, f)| *f)
            .collect();
        assert!(fuel.is_sorted(), "job {id}: {fuel:?}");
        assert!(fuel.last() > Some(&0), "job {id}: {fuel:?}");
    }
    assert_eq!(st.refusals, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_disappears_from_the_assignments_is_stopped() {
    let h = Harness::new();
    h.job_1(SPIN);
    h.run_while(Duration::from_secs(5), async {
        h.until_job_1_is_acknowledged().await;
        // The buyer cancels: the matcher forgets the assignment.
        h.market.state.lock().unwrap().jobs.clear();
        tokio::time::sleep(Duration::from_millis(100)).await;
    })
    .await;
    assert_eq!(h.metrics.jobs_running.get(), 0);
    assert!(h.market.state.lock().unwrap().submissions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_failures_are_retried() {
    let h = Harness::new();
    h.job_1(HELLO);
    h.market.fail_updates.store(3, Ordering::SeqCst);
    h.run_until_job_1_has_a_result().await;
    assert!(h.metrics.call_errors.get() >= 3);
    assert_eq!(h.market.state.lock().unwrap().submissions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_does_not_match_its_digest_is_reported_invalid() {
    let h = Harness::new();
    // The store hands out other bytes under this digest.
    let sha = h.market.store_as(HELLO, SPIN);
    h.market.add_job(1, spec(sha, 10));
    h.run_until_job_1_has_a_result().await;
    let st = h.market.state.lock().unwrap();
    match &st.submissions[0].result.outcome {
        RunOutcome::InvalidModule { message } => assert!(message.contains("digest"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_saved_result_is_submitted_not_rerun() {
    let h = Harness::new();
    // An acknowledged job whose module is gone: re-running it is impossible.
    h.market.add_job(1, spec([9; 32], 10));
    h.market
        .state
        .lock()
        .unwrap()
        .jobs
        .get_mut(&1)
        .unwrap()
        .acknowledged = true;
    let saved = SubmitResultArgs {
        job_id: 1,
        attempt: 1,
        result: job_result(&crate::sandbox::JobReport {
            outcome: Outcome::Exited { code: 0 },
            code_hash: [9; 32],
            stdout: b"from before".to_vec(),
            stderr: vec![],
            fuel_used: 5,
            peak_memory_bytes: 0,
            prepare_time: Duration::ZERO,
            run_time: Duration::ZERO,
            module_source: crate::sandbox::ModuleSource::Compiled,
            engine_version: ENGINE_VERSION,
        })
        .unwrap(),
    };
    h.results().save(&saved).unwrap();
    h.run_until_job_1_has_a_result().await;
    let st = h.market.state.lock().unwrap();
    assert_eq!(st.submissions, vec![saved]);
    assert!(h.results().list().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_job_is_resumed_after_a_restart_and_reported_once() {
    let h = Harness::new();
    h.job_1(HELLO);
    // A previous run of the node acknowledged it, then died.
    {
        let mut st = h.market.state.lock().unwrap();
        let j = st.jobs.get_mut(&1).unwrap();
        j.acknowledged = true;
    }
    h.run_until_job_1_has_a_result().await;
    {
        let st = h.market.state.lock().unwrap();
        assert_eq!(st.submissions.len(), 1);
        assert_eq!(st.submissions[0].result.output, b"hello\n");
    }
    // A second start finds nothing to do and reports nothing.
    h.run_while(
        Duration::from_secs(1),
        tokio::time::sleep(Duration::from_millis(50)),
    )
    .await;
    assert_eq!(h.market.state.lock().unwrap().submissions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_what_outlives_the_grace_period() {
    let h = Harness::new();
    h.job_1(SPIN);
    let summary = h
        .run_while(Duration::from_millis(100), h.until_job_1_is_acknowledged())
        .await;
    assert_eq!(summary.cancelled_at_shutdown, 1);
    assert_eq!(summary.handed_back, 1, "the cancelled job is handed back");
    let st = h.market.state.lock().unwrap();
    assert!(st.submissions.is_empty());
    assert!(st.jobs[&1].handed_back && !st.jobs[&1].missed);
}

#[test]
fn limits_follow_the_job_and_outcomes_map_to_the_matcher() {
    let mut s = spec([0; 32], 10);
    s.limits.fuel = 21;
    let l = sandbox_limits(&s, Duration::from_secs(30));
    assert_eq!(l.fuel, 21, "the budget");
    assert_eq!(l.memory_bytes, 16 << 20);
    assert_eq!(l.timeout, Duration::from_secs(30));
    assert_eq!(l.max_stdout_bytes, MAX_OUTPUT_BYTES);
    s.limits.fuel = u64::MAX;
    assert_eq!(sandbox_limits(&s, Duration::from_secs(5)).fuel, u64::MAX);
    assert_eq!(run_outcome(&Outcome::Cancelled), None);
    assert_eq!(
        run_outcome(&Outcome::OutOfFuel),
        Some(RunOutcome::OutOfFuel)
    );
    assert!(matches!(
        run_outcome(&Outcome::LinkError {
            message: "x".into()
        }),
        Some(RunOutcome::InvalidModule { .. })
    ));
    assert_ne!(job_seed(1), job_seed(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_modules_are_downloaded_retried_on_5xx_and_a_404_is_reported() {
    use super::fetch::tests::ModuleServer;
    use axum::http::StatusCode;
    let h = Harness::new();
    let server = ModuleServer::default();
    let base = server.start().await;
    let hello = wasm(HELLO);
    let sha: [u8; 32] = sha2::Sha256::digest(&hello).into();
    server.route("/hello.wasm", StatusCode::OK, hello.clone());
    server.route("/later.wasm", StatusCode::SERVICE_UNAVAILABLE, vec![]);
    for (id, path) in [(1, "/hello.wasm"), (2, "/gone.wasm"), (3, "/later.wasm")] {
        let mut s = spec(sha, 10);
        s.module = ModuleSource::Url {
            url: format!("{base}{path}"),
            sha256: sha,
        };
        h.market.add_job(id, s);
    }
    h.run_while(Duration::from_secs(5), async {
        h.until(0, "two results", |st| st.submissions.len() == 2)
            .await;
        assert!(
            server
                .hits
                .lock()
                .unwrap()
                .iter()
                .any(|p| p == "/later.wasm"),
            "the 503 was tried"
        );
        server.route("/later.wasm", StatusCode::OK, hello.clone());
        h.until(0, "three results", |st| st.submissions.len() == 3)
            .await;
    })
    .await;
    let st = h.market.state.lock().unwrap();
    let result = |id: JobId| {
        &st.submissions
            .iter()
            .find(|s| s.job_id == id)
            .expect("submitted")
            .result
    };
    assert_eq!(result(1).output, b"hello\n");
    match &result(2).outcome {
        RunOutcome::InvalidModule { message } => {
            // The log names the URL and the status; the public result only
            // the kind of failure.
            assert_eq!(
                message,
                "fetching the module failed: the server answered HTTP 4xx"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(result(3).output, b"hello\n", "retried after the 503");
    assert_eq!(st.submissions.len(), 3, "each job reported once");
    assert!(h.metrics.call_errors.get() >= 1, "the 503 was counted");
}

/// Exits with code 3.
const EXIT3: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"#;

/// A module that counts down from `from`: about a second of work per 1.5
/// billion.
fn count_down(from: u64) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (func (export "_start") (local $i i64)
    (local.set $i (i64.const {from}))
    (loop $l
      (local.set $i (i64.sub (local.get $i) (i64.const 1)))
      (br_if $l (i64.ne (local.get $i) (i64.const 0))))))"#
    )
}

/// A second or so of work.
const COUNT: u64 = 1_500_000_000;

/// A few seconds of work: enough heartbeat intervals at the pace the speed
/// test keeps however loaded the machine (IC time passes only as the
/// test's clock ticks, which a busy machine slows as it slows the job).
const LONG_COUNT: u64 = 4_500_000_000;

/// The fuel a module uses, from a run of its own in the same sandbox.
async fn fuel_of(h: &Harness, wat: &str, fuel: u64) -> u64 {
    let mut spec = spec([0; 32], 10);
    spec.limits.fuel = fuel;
    let job = Job {
        module: WasmModule::new(wasm(wat)),
        input: vec![],
        args: vec![],
        env: vec![],
        seed: job_seed(1),
        limits: sandbox_limits(&spec, Duration::from_secs(60)),
    };
    h.executor.spawn(job).wait().await.fuel_used
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_pays_the_fuel_its_heartbeats_did_not_report() {
    let h = Harness::new();
    h.job_1(&count_down(COUNT));
    // The clock stands still: no time counted, so the acknowledgement may
    // report no fuel, and the result reports it all.
    h.run_until_job_1_has_a_result().await;
    let st = h.market.state.lock().unwrap();
    assert_eq!(st.fuel_reports, vec![(1_000 * S, 1, 0)]);
    let r = &st.submissions[0].result;
    assert_eq!(r.outcome, RunOutcome::Exited { code: 0 });
    assert_eq!(r.fuel_used, st.jobs[&1].fuel_reported);
    assert!(r.fuel_used > 1_000_000_000, "{}", r.fuel_used);
    assert_eq!(h.metrics.fuel_paid.get(), r.fuel_used);
    assert_eq!(
        u128::from(h.metrics.earnings_e8s.get()),
        fuel_cost(r.fuel_used, PRICE).unwrap()
    );
    assert_eq!(h.metrics.intervals_paid.get(), 0, "no reserved slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_report_no_more_fuel_than_the_declared_speed_allows() {
    let h = Harness::new();
    h.job_1(&count_down(LONG_COUNT));
    // Declared: 100 million fuel a second, far below what the node runs.
    const SPEED: u64 = 100_000_000;
    h.market.tune_job(1, |j| j.fuel_per_sec = SPEED);
    let true_fuel = fuel_of(&h, &count_down(LONG_COUNT), 5_000_000_000_000).await;
    // 0.05 s of IC time per 2 ms: an interval every ~400 ms of real time.
    h.run_while(
        Duration::from_secs(5),
        h.until(S / 20, "a result", |st| st.jobs[&1].result.is_some()),
    )
    .await;
    let st = h.market.state.lock().unwrap();
    // The fake refuses a report over the speed, over the budget or below
    // the last one: none was.
    assert_eq!(st.refusals, Vec::<String>::new());
    let from = st.jobs[&1].counting_from_ns;
    let reports: Vec<(u64, u64)> = st.fuel_reports.iter().map(|(t, _, f)| (*t, *f)).collect();
    assert!(
        reports.len() >= 3,
        "an acknowledgement and heartbeats: {reports:?}"
    );
    for (t, fuel) in &reports {
        assert!(
            u128::from(*fuel) <= u128::from(SPEED) * u128::from(t - from) / u128::from(S),
            "{reports:?}"
        );
    }
    let last = reports.last().unwrap().1;
    assert!(last > 0, "fuel reported while running: {reports:?}");
    // The result reports the true count, more than the heartbeats could.
    let r = &st.submissions[0].result;
    assert_eq!(r.outcome, RunOutcome::Exited { code: 0 });
    assert_eq!(r.fuel_used, true_fuel);
    assert!(r.fuel_used > last, "{} after {reports:?}", r.fuel_used);
    // What the node counts as earned is what the matcher's rule pays.
    assert_eq!(h.metrics.fuel_paid.get(), true_fuel);
    assert_eq!(
        u128::from(h.metrics.earnings_e8s.get()),
        fuel_cost(true_fuel, PRICE).unwrap()
    );
    assert_eq!(h.metrics.jobs_failed.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ends_before_its_result_is_due() {
    let h = Harness::new();
    let sha = h.job_1(SPIN);
    // Job 1's listing names its result deadline; job 2's bid names a
    // deadline, which the node counts from the bond before the listing
    // does. Both 4 s away: each run gets 3 s, the rest is kept to submit.
    let now = h.market.now.load(Ordering::SeqCst);
    h.market
        .tune_job(1, |j| j.result_deadline_ns = Some(now + 4 * S));
    let mut bid = spec(sha, 10);
    bid.deadline_secs = Some(4);
    h.market.add_job(2, bid);
    let started = std::time::Instant::now();
    h.run_while(
        Duration::from_secs(5),
        h.until(0, "two results", |st| st.submissions.len() == 2),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "ran until the limit"
    );
    let st = h.market.state.lock().unwrap();
    for id in [1, 2] {
        let j = &st.jobs[&id];
        let r = &j.result.as_ref().expect("a result").result;
        assert_eq!(r.outcome, RunOutcome::Deadline, "job {id}");
        assert!(r.fuel_used > 0 && !j.missed, "job {id}");
    }
    assert_eq!(st.refusals, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_with_its_fuel_budget() {
    let h = Harness::new();
    let sha = h.market.store(&wasm(SPIN));
    let mut s = spec(sha, 10);
    s.limits.fuel = 1_000_000;
    h.market.add_job(1, s);
    h.run_until_job_1_has_a_result().await;
    let st = h.market.state.lock().unwrap();
    let r = &st.submissions[0].result;
    assert_eq!(r.outcome, RunOutcome::OutOfFuel);
    assert_eq!(r.fuel_used, 1_000_000, "all of the budget, billed");
    assert_eq!(st.refusals, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_never_reports_less_fuel_than_its_attempt_did() {
    let h = Harness::new();
    h.job_1(HELLO);
    // A previous run of the node acknowledged the job and reported more
    // fuel than a fresh run will have used by its result.
    h.market.tune_job(1, |j| {
        j.acknowledged = true;
        j.fuel_reported = 1_000_000_000;
    });
    h.run_until_job_1_has_a_result().await;
    let st = h.market.state.lock().unwrap();
    assert_eq!(st.submissions.len(), 1);
    assert_eq!(st.submissions[0].result.fuel_used, 1_000_000_000);
    assert_eq!(st.refusals, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_sent_after_its_due_time_counts_as_late() {
    let h = Harness::new();
    h.job_1(SPIN);
    h.run_while(Duration::from_millis(100), async {
        h.until_job_1_is_acknowledged().await;
        assert_eq!(
            h.metrics.heartbeats_late.get(),
            0,
            "an acknowledgement is never late"
        );
        // The network fails until the interval is due and a second past it,
        // inside the grace period.
        h.market.fail_updates.store(u32::MAX, Ordering::SeqCst);
        let due = h.market.state.lock().unwrap().jobs[&1].due_ns;
        h.market
            .advance(due + S - h.market.now.load(Ordering::SeqCst));
        h.until(0, "failed heartbeats", |_| h.metrics.call_errors.get() >= 2)
            .await;
        assert_eq!(h.metrics.heartbeats_late.get(), 0);
        h.market.fail_updates.store(0, Ordering::SeqCst);
        h.until(0, "the interval paid", |st| st.jobs[&1].paid == 1)
            .await;
    })
    .await;
    assert!(!h.market.state.lock().unwrap().jobs[&1].missed);
    assert_eq!(h.metrics.heartbeats_late.get(), 1);
    assert_eq!(
        h.metrics.heartbeats_sent.get(),
        2,
        "the acknowledgement and the late one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_outcomes_count_as_completed_and_failed() {
    let h = Harness::new();
    let hello = h.market.store(&wasm(HELLO));
    let exit3 = h.market.store(&wasm(EXIT3));
    // Job 3's digest names bytes the store does not hold.
    let wrong = h.market.store_as(SPIN, HELLO);
    h.market.add_job(1, spec(hello, 10));
    h.market.add_job(2, spec(exit3, 10));
    h.market.add_job(3, spec(wrong, 10));
    h.run_while(
        Duration::from_secs(5),
        h.until(0, "three results", |st| st.submissions.len() == 3),
    )
    .await;
    assert_eq!(h.metrics.jobs_completed.get(), 3);
    assert_eq!(
        h.metrics.jobs_failed.get(),
        2,
        "exit 3 and the invalid module"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_the_matcher_never_took_counts_as_failed() {
    let h = Harness::new();
    h.job_1(HELLO);
    // Every update fails: the job runs, but is never acknowledged, so its
    // result cannot be submitted.
    h.market.fail_updates.store(u32::MAX, Ordering::SeqCst);
    let store = h.results();
    h.run_while(Duration::from_millis(100), async {
        h.until(0, "a saved result", |_| !store.list().is_empty())
            .await;
        assert_eq!(h.metrics.jobs_failed.get(), 0);
        // The buyer cancels; the matcher forgets the assignment.
        h.market.state.lock().unwrap().jobs.clear();
        h.until(0, "the result dropped", |_| store.list().is_empty())
            .await;
    })
    .await;
    assert_eq!(h.metrics.jobs_failed.get(), 1);
    assert_eq!(h.metrics.jobs_completed.get(), 0);
    assert!(h.market.state.lock().unwrap().submissions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_finishes_within_the_grace_period_has_its_result_submitted() {
    let h = Harness::new();
    h.job_1(&count_down(COUNT));
    let summary = h
        .run_while(Duration::from_secs(30), async {
            h.until_job_1_is_acknowledged().await;
            assert!(
                h.market.state.lock().unwrap().submissions.is_empty(),
                "still running when the shutdown starts"
            );
        })
        .await;
    let st = h.market.state.lock().unwrap();
    assert_eq!(st.submissions.len(), 1, "{summary:?}");
    assert_eq!(
        st.submissions[0].result.outcome,
        RunOutcome::Exited { code: 0 }
    );
    assert!(st.hand_backs.is_empty(), "nothing handed back");
    assert_eq!(
        summary,
        Summary {
            results_submitted: 1,
            heartbeats_accepted: 1,
            cancelled_at_shutdown: 0,
            handed_back: 0,
            replicas_started: 0,
            replicas_failed: 0,
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_heartbeat_at_shutdown_goes_out_before_the_hand_back() {
    let h = Harness::new();
    h.job_1(SPIN);
    let summary = h
        .run_while(Duration::from_millis(100), async {
            h.until_job_1_is_acknowledged().await;
            // Into the window (it opens 5 s before the due time) but not yet
            // urgent (2.5 s before): a running node would wait.
            let due = h.market.state.lock().unwrap().jobs[&1].due_ns;
            h.market
                .advance(due - 4 * S - h.market.now.load(Ordering::SeqCst));
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(h.market.state.lock().unwrap().jobs[&1].paid, 0);
        })
        .await;
    let st = h.market.state.lock().unwrap();
    assert_eq!(st.jobs[&1].paid, 1, "the open interval was heartbeated");
    let accepted: Vec<usize> = (0..st.heartbeats.len())
        .filter(|i| st.heartbeats[*i].2)
        .collect();
    assert_eq!(accepted.len(), 2, "acknowledgement and last heartbeat");
    assert_eq!(st.hand_backs.len(), 1);
    assert!(
        accepted[1] < st.hand_backs[0].1,
        "the heartbeat went before the hand-back: {:?} {:?}",
        st.heartbeats,
        st.hand_backs
    );
    assert!(st.jobs[&1].handed_back && !st.jobs[&1].missed);
    assert_eq!(
        (
            summary.heartbeats_accepted,
            summary.cancelled_at_shutdown,
            summary.handed_back
        ),
        (2, 1, 1)
    );
    let fuel = st.jobs[&1].fuel_reported;
    assert!(fuel > 0, "the last heartbeat reported the fuel burnt");
    assert_eq!(h.metrics.fuel_paid.get(), fuel);
    assert_eq!(
        u128::from(h.metrics.earnings_e8s.get()),
        fuel_cost(fuel, PRICE).unwrap()
    );
}

/// Copies stdin to stdout, 64 KiB at a time.
const CAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (local $n i32)
    (loop $more
      (i32.store (i32.const 0) (i32.const 1024))
      (i32.store (i32.const 4) (i32.const 65536))
      (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $n (i32.load (i32.const 8)))
      (if (i32.gt_u (local.get $n) (i32.const 0))
        (then
          (i32.store (i32.const 16) (i32.const 1024))
          (i32.store (i32.const 20) (local.get $n))
          (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
          (br $more))))))"#;

/// Input of `len` bytes, different for each job.
fn input(job_id: JobId, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 31 + job_id) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_every_page_of_its_jobs_and_each_input_in_chunks() {
    let h = Harness::with_market(|m| {
        m.page_size = 2;
        m.chunk_size = 64 * 1024;
    });
    let sha = h.market.store(&wasm(CAT));
    for id in 1..=5 {
        let mut spec = spec(sha, 10);
        spec.input = input(id, 200_000);
        h.market.add_job(id, spec);
    }
    h.run_while(
        Duration::from_secs(5),
        h.until(0, "five results", |st| {
            st.jobs.values().all(|j| j.result.is_some())
        }),
    )
    .await;
    let st = h.market.state.lock().unwrap();
    for (id, j) in &st.jobs {
        let r = &j.result.as_ref().expect("a result").result;
        assert_eq!(r.outcome, RunOutcome::Exited { code: 0 });
        assert!(
            r.output == input(*id, 200_000),
            "job {id} ran on its whole input"
        );
        assert!(!j.missed, "job {id} missed a deadline");
    }
    assert!(h.market.pages_read.load(Ordering::SeqCst) >= 3);
    assert_eq!(h.metrics.unreadable_replies.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_input_fails_its_hash_is_handed_back_and_the_others_run() {
    let h = Harness::with_market(|m| m.corrupt_input_of = Some(1));
    let sha = h.market.store(&wasm(HELLO));
    let mut bad = spec(sha, 10);
    bad.input = input(1, 1_000);
    h.market.add_job(1, bad);
    h.market.add_job(2, spec(sha, 10));
    h.run_while(
        Duration::from_secs(5),
        h.until(0, "job 1 handed back, job 2's result", |st| {
            st.jobs[&1].handed_back && st.jobs[&2].result.is_some()
        }),
    )
    .await;
    let st = h.market.state.lock().unwrap();
    assert!(st.jobs[&1].result.is_none(), "nothing was run on bad bytes");
    assert!(!st.jobs[&1].missed && !st.jobs[&2].missed);
    assert!(h.metrics.unreadable_replies.get() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_it_cannot_read_is_counted_and_its_jobs_keep_heartbeating() {
    let h = Harness::with_market(|m| m.garbled_listings = AtomicU32::new(u32::MAX));
    h.job_1(SPIN);
    // The first listing is read; every later one is garbled.
    h.market.garbled_listings.store(0, Ordering::SeqCst);
    let summary = h
        .run_while(Duration::from_millis(10), async {
            h.until_job_1_is_acknowledged().await;
            h.market.garbled_listings.store(u32::MAX, Ordering::SeqCst);
            // Three intervals of 10 s pass with no listing read.
            h.until(S / 2, "three paid intervals", |st| st.jobs[&1].paid >= 3)
                .await;
        })
        .await;
    let st = h.market.state.lock().unwrap();
    assert!(!st.jobs[&1].missed, "a deadline was missed");
    assert!(summary.heartbeats_accepted >= 4);
    assert!(h.metrics.unreadable_replies.get() >= 1);
}

/// Writes 16 bytes of `random_get` to stdout.
const RANDOM: &str = r#"(module
  (import "wasi_snapshot_preview1" "random_get" (func $rand (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $rand (i32.const 16) (i32.const 16)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// What RANDOM prints when run with `seed` in the node's sandbox.
async fn random_bytes_of(h: &Harness, seed: [u8; 32]) -> Vec<u8> {
    let job = Job {
        module: WasmModule::new(wasm(RANDOM)),
        input: vec![],
        args: vec![],
        env: vec![],
        seed,
        limits: sandbox_limits(&spec([0; 32], 10), Duration::from_secs(60)),
    };
    h.executor.spawn(job).wait().await.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_with_the_seed_its_assignment_names() {
    let h = Harness::new();
    h.job_1(RANDOM);
    // An audit run of job 7: its assignment names job 7's seed, so that
    // it re-runs job 7 exactly, not job 1's seed.
    h.market.tune_job(1, |j| j.seed = job_seed(7));
    h.run_until_job_1_has_a_result().await;
    let output = h.market.state.lock().unwrap().submissions[0]
        .result
        .output
        .clone();
    let own = random_bytes_of(&h, job_seed(1)).await;
    let named = random_bytes_of(&h, job_seed(7)).await;
    assert_eq!(named.len(), 16);
    assert_ne!(own, named, "the seeds give different bytes");
    assert_eq!(output, named, "run with the assignment's seed");
}

mod replicas;
mod sealed_jobs;
