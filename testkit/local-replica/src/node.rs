//! The node: the devnet with its ingress history and chunk stores behind
//! one mutex, the keys, the clock, and the rounds that drive the devnet's
//! time, timers and queued messages.
//!
//! Everything here is synchronous and may run for as long as a canister
//! message does: the HTTP layer calls it on blocking threads, never on the
//! async runtime's workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use candid::Principal;
use devnet::{Devnet, Reject, RejectCode};
use ic_certification::Label;
use ic_transport_types::{
    NodeSignature, QueryResponse, RejectCode as TransportRejectCode, RejectResponse, ReplyResponse,
    RequestId,
};
use tokio::sync::watch;

use crate::ingress::{IngressHistory, IngressRecord, IngressState, error_code, status_tree};
use crate::keys::NodeKeys;
use crate::management::{self, ManagementState};
use crate::persist::{self, NodeExtras, PersistError, StateDir};
use crate::state_tree::{Tree, cbor_self_describing, certify, leb128};

/// The wall clock in nanoseconds since the Unix epoch.
pub fn wall_clock_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The devnet's clock: it starts at the wall clock and runs `speed` times
/// as fast.
struct Clock {
    start: Instant,
    start_nanos: u64,
    speed: f64,
}

impl Clock {
    fn now_nanos(&self) -> u64 {
        let elapsed = self.start.elapsed().as_nanos() as f64 * self.speed;
        self.start_nanos.saturating_add(elapsed as u64)
    }
}

/// Mutable state, all behind one lock so a message and the certificate of
/// its answer see the same state.
struct NodeState {
    devnet: Devnet,
    /// The last data certificate given to each canister's queries.
    query_certificates: HashMap<Principal, QueryCertificate>,
    ingress: IngressHistory,
    management: ManagementState,
    /// Canister names given with `--install`.
    names: BTreeMap<String, Principal>,
}

/// A certificate of one canister's certified data, reused by its queries
/// while the data is unchanged and the certificate fresh (signing costs
/// about a millisecond).
struct QueryCertificate {
    certified_data: Vec<u8>,
    made: Instant,
    certificate: Vec<u8>,
}

/// How long a query certificate is reused at most. The IC's certificates
/// are a round or so old; agents accept them for minutes.
const QUERY_CERTIFICATE_REUSE: Duration = Duration::from_secs(1);

/// Who a `read_state` request is addressed to.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    /// `/api/v*/canister/<id>/read_state`.
    Canister(Principal),
    /// `/api/v*/subnet/<id>/read_state`.
    Subnet(Principal),
}

/// A request the node refuses, with the HTTP status to answer.
#[derive(Debug)]
pub struct Refusal {
    /// HTTP status code (400, 403 or 404).
    pub status: u16,
    /// Plain-text explanation.
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

/// What became of an update call right after submission.
#[derive(Debug)]
pub enum Submitted {
    /// Refused before execution (inspect_message, missing canister or
    /// method): the v3/v4 `non_replicated_rejection`.
    Refused(Reject),
    /// In the ingress history; its status can be certified.
    Accepted,
}

/// An authenticated call or query, as the HTTP layer hands it over.
#[derive(Clone, Debug)]
pub struct Request {
    /// Its request id.
    pub request_id: RequestId,
    /// The authenticated sender.
    pub sender: Principal,
    /// The callee.
    pub canister: Principal,
    /// The method.
    pub method: String,
    /// The argument bytes.
    pub arg: Vec<u8>,
    /// The ingress expiry (ns since the epoch).
    pub expiry: u64,
}

/// A devnet served over HTTP: see the crate documentation.
pub struct Node {
    state: Mutex<NodeState>,
    keys: NodeKeys,
    clock: Clock,
    rounds: watch::Sender<u64>,
    stopped: AtomicBool,
    persistence: Option<Persistence>,
}

/// Where and how often the node saves its state.
struct Persistence {
    /// Also serialises checkpoints, so an older state never overwrites a newer one.
    dir: Mutex<StateDir>,
    every: Duration,
    last: Mutex<Instant>,
}

impl Node {
    /// A node over `devnet`, whose clock is moved to the wall clock (never
    /// backwards) and then runs `time_speed` times as fast.
    pub fn new(devnet: Devnet, keys: NodeKeys, time_speed: f64) -> Self {
        Self::with_state(devnet, keys, time_speed, NodeExtras::default(), None)
    }

    /// A node like [`new`](Self::new) that starts from `extras` (metadata
    /// and names of a loaded state) and, given a state directory, saves its
    /// state there every `every` and at [`checkpoint`](Self::checkpoint).
    pub fn with_state(
        mut devnet: Devnet,
        keys: NodeKeys,
        time_speed: f64,
        extras: NodeExtras,
        state_dir: Option<(StateDir, Duration)>,
    ) -> Self {
        devnet.set_time(SystemTime::now());
        // The subnet ic-agent and icp-cli see: the CMC names it, read_state
        // serves it.
        devnet.set_subnet_id(keys.subnet_id());
        let clock = Clock {
            start: Instant::now(),
            start_nanos: devnet.time_nanos(),
            speed: time_speed,
        };
        Node {
            state: Mutex::new(NodeState {
                devnet,
                ingress: IngressHistory::default(),
                query_certificates: HashMap::new(),
                management: ManagementState::with_metadata(extras.metadata),
                names: extras.names,
            }),
            keys,
            clock,
            rounds: watch::channel(0).0,
            stopped: AtomicBool::new(false),
            persistence: state_dir.map(|(dir, every)| Persistence {
                dir: Mutex::new(dir),
                every,
                last: Mutex::new(Instant::now()),
            }),
        }
    }

    /// The state directory, if the node has one.
    pub fn state_dir(&self) -> Option<std::path::PathBuf> {
        self.persistence.as_ref().map(|p| {
            p.dir
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .path()
                .to_path_buf()
        })
    }

    /// Saves the state to the state directory now (between messages).
    /// Returns false if the node has no state directory.
    pub fn checkpoint(&self) -> Result<bool, PersistError> {
        let Some(p) = &self.persistence else {
            return Ok(false);
        };
        let dir = p.dir.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = {
            let mut guard = self.lock();
            let state = &mut *guard;
            persist::encode(
                &mut state.devnet,
                self.keys.seed(),
                &state.management.metadata,
                &state.names,
            )
            .map_err(|e| PersistError::Corrupt(dir.path().to_path_buf(), e))?
        };
        dir.write(&bytes)?;
        *p.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        tracing::debug!(bytes = bytes.len(), "state saved");
        Ok(true)
    }

    /// Saves the state if the last save is older than the checkpoint interval.
    fn checkpoint_if_due(&self) {
        let Some(p) = &self.persistence else { return };
        if p.last.lock().unwrap_or_else(|e| e.into_inner()).elapsed() < p.every {
            return;
        }
        if let Err(e) = self.checkpoint() {
            tracing::warn!("saving the devnet state failed: {e}");
        }
    }

    fn lock(&self) -> MutexGuard<'_, NodeState> {
        // A panic while holding the lock is a devnet bug; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node's keys.
    pub fn keys(&self) -> &NodeKeys {
        &self.keys
    }

    /// Runs `f` on the devnet (installing canisters from Rust, inspecting state).
    pub fn with_devnet<R>(&self, f: impl FnOnce(&mut Devnet) -> R) -> R {
        let mut state = self.lock();
        let out = f(&mut state.devnet);
        let NodeState {
            devnet, ingress, ..
        } = &mut *state;
        ingress.collect(devnet);
        out
    }

    /// Installs `wasm` as [`install_canister`](Self::install_canister) does
    /// under `name`, unless a canister of that name exists already (a loaded
    /// state): then it is left as it is. Returns the id and whether it is new.
    pub fn install_named(
        &self,
        name: &str,
        controllers: Vec<Principal>,
        wasm: &[u8],
        arg: Vec<u8>,
    ) -> Result<(Principal, bool), devnet::InstallError> {
        {
            let state = self.lock();
            if let Some(id) = state.names.get(name)
                && state.devnet.canister_exists(*id)
            {
                return Ok((*id, false));
            }
        }
        let id = self.install_canister(controllers, wasm, arg)?;
        self.lock().names.insert(name.to_string(), id);
        Ok((id, true))
    }

    /// Creates a canister controlled by `controllers` and installs `wasm`
    /// with `arg`, as the first controller (the `--install` option; tests).
    pub fn install_canister(
        &self,
        controllers: Vec<Principal>,
        wasm: &[u8],
        arg: Vec<u8>,
    ) -> Result<Principal, devnet::InstallError> {
        let mut state = self.lock();
        state.management.metadata.record(wasm);
        let installer = controllers
            .first()
            .copied()
            .unwrap_or(Principal::anonymous());
        let id = state.devnet.create_canister(controllers);
        state.devnet.install_canister(id, wasm, arg, installer)?;
        Ok(id)
    }

    /// A receiver that changes whenever a round answered ingress messages.
    pub fn subscribe_rounds(&self) -> watch::Receiver<u64> {
        self.rounds.subscribe()
    }

    /// Asks the round loop to stop.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// One round: the devnet's time is set from the clock, then due timers,
    /// expired deadlines and queued messages run until nothing is left.
    pub fn run_round(&self) {
        let answered = {
            let mut state = self.lock();
            round(&mut state, self.clock.now_nanos())
        };
        if answered > 0 {
            self.rounds.send_modify(|r| *r += 1);
        }
        self.checkpoint_if_due();
    }

    /// Submits an authenticated update call and runs a round, so that most
    /// calls are answered when this returns.
    pub fn submit_call(&self, request: Request) -> Submitted {
        let Request {
            request_id,
            sender,
            canister,
            method,
            arg,
            expiry,
        } = request;
        let method = method.as_str();
        let rid: [u8; 32] = *request_id;
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.ingress.get(&rid).is_some() {
            return Submitted::Accepted; // a retry of a known request
        }
        let mut record = IngressRecord {
            sender,
            canister,
            method: method.to_string(),
            expiry,
            state: IngressState::Processing(devnet::MessageId(0)),
            received: Instant::now(),
        };
        state
            .devnet
            .set_time(UNIX_EPOCH + Duration::from_nanos(self.clock.now_nanos()));
        if canister == Principal::management_canister() {
            let answer = management::call(
                &mut state.devnet,
                &mut state.management,
                sender,
                method,
                &arg,
            );
            record.state = match answer {
                management::Answer::Now(Ok(reply)) => IngressState::Replied(reply),
                management::Answer::Now(Err(reject)) => IngressState::Rejected(reject),
                management::Answer::Later(id) => IngressState::Processing(id),
            };
            crate::ingress::log_answer(&rid, &record);
            state.ingress.insert(rid, record);
            round(state, self.clock.now_nanos());
        } else {
            match state.devnet.submit_call(canister, sender, method, arg) {
                Ok(id) => {
                    record.state = IngressState::Processing(id);
                    state.ingress.insert(rid, record);
                    round(state, self.clock.now_nanos());
                }
                Err(reject) => return Submitted::Refused(reject),
            }
        }
        drop(guard);
        self.rounds.send_modify(|r| *r += 1);
        Submitted::Accepted
    }

    /// Whether the ingress message has been answered (or is unknown).
    pub fn is_answered(&self, request_id: &RequestId) -> bool {
        self.lock()
            .ingress
            .get(request_id)
            .is_none_or(|r| !matches!(r.state, IngressState::Processing(_)))
    }

    /// A certificate of `/time` and the request's status.
    pub fn request_status_certificate(&self, request_id: &RequestId) -> Vec<u8> {
        let tree = {
            let state = self.lock();
            let mut tree = self.base_tree(&state);
            if let Some(record) = state.ingress.get(request_id) {
                tree.insert_tree(
                    &[b"request_status", request_id.as_slice()],
                    status_tree(&record.state),
                );
            }
            tree
        };
        certify(&tree, &self.keys)
    }

    /// The devnet's clock now (ns since the epoch): ahead of the wall clock
    /// when it runs fast.
    pub fn clock_nanos(&self) -> u64 {
        self.clock.now_nanos()
    }

    /// Runs a query from the anonymous principal with the canister's data
    /// certificate, as a boundary node does for `http_request`: the reply's
    /// bytes, or the reject's message.
    pub fn anonymous_query(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let mut state = self.lock();
        let certificate = self.query_certificate(&mut state, canister);
        state
            .devnet
            .query_call_with_certificate(canister, Principal::anonymous(), method, arg, certificate)
            .map_err(|r| r.message)
    }

    /// Runs a query and returns the CBOR `QueryResponse`, signed by the node.
    pub fn query(&self, request: Request) -> Vec<u8> {
        let (request_id, sender, canister) = (request.request_id, request.sender, request.canister);
        let method = request.method.as_str();
        let (result, time) = {
            let mut state = self.lock();
            let result = if canister == Principal::management_canister() {
                management::query(
                    &state.devnet,
                    &state.management,
                    sender,
                    method,
                    &request.arg,
                )
            } else {
                let certificate = self.query_certificate(&mut state, canister);
                state.devnet.query_call_with_certificate(
                    canister,
                    sender,
                    method,
                    request.arg,
                    certificate,
                )
            };
            (result, state.devnet.time_nanos())
        };
        let mut response = match result {
            Ok(reply) => QueryResponse::Replied {
                reply: ReplyResponse { arg: reply },
                signatures: Vec::new(),
            },
            Err(reject) => QueryResponse::Rejected {
                reject: RejectResponse {
                    reject_code: transport_code(reject.code),
                    error_code: error_code(&reject),
                    reject_message: reject.message,
                },
                signatures: Vec::new(),
            },
        };
        let signature = NodeSignature {
            timestamp: time,
            signature: self.keys.sign_as_node(&response.signable(request_id, time)),
            identity: self.keys.node_id(),
        };
        match &mut response {
            QueryResponse::Replied { signatures, .. }
            | QueryResponse::Rejected { signatures, .. } => signatures.push(signature),
        }
        cbor_self_describing(&response)
    }

    /// The certificate of `/time` and the canister's certified data that a
    /// query reads with `ic0.data_certificate_copy`, if the canister exists.
    fn query_certificate(&self, state: &mut NodeState, canister: Principal) -> Option<Vec<u8>> {
        let data = state.devnet.certified_data(canister)?;
        if let Some(cached) = state.query_certificates.get(&canister)
            && cached.certified_data == data
            && cached.made.elapsed() < QUERY_CERTIFICATE_REUSE
        {
            return Some(cached.certificate.clone());
        }
        let mut tree = self.base_tree(state);
        tree.insert(
            &[b"canister", canister.as_slice(), b"certified_data"],
            data.clone(),
        );
        let certificate = certify(&tree, &self.keys);
        state.query_certificates.insert(
            canister,
            QueryCertificate {
                certified_data: data,
                made: Instant::now(),
                certificate: certificate.clone(),
            },
        );
        Some(certificate)
    }

    /// Answers a `read_state` request with a certificate of the requested
    /// paths, after the IC's authorisation checks.
    pub fn read_state(
        &self,
        sender: Principal,
        paths: &[Vec<Label>],
        scope: Scope,
    ) -> Result<Vec<u8>, Refusal> {
        let tree = {
            let state = self.lock();
            let mut tree = self.base_tree(&state);
            for path in paths {
                self.add_path(&state, &mut tree, sender, path, scope)?;
            }
            tree
        };
        Ok(certify(&tree, &self.keys))
    }

    /// `/time` and the subnet's public information, which every certificate
    /// may carry.
    fn base_tree(&self, state: &NodeState) -> Tree {
        let mut tree = Tree::default();
        tree.insert(&[b"time"], leb128(state.devnet.time_nanos()));
        tree
    }

    fn subnet_tree(&self) -> Tree {
        let keys = &self.keys;
        let mut subnet = Tree::default();
        subnet.insert(&[b"public_key"], keys.root_key_der().to_vec());
        subnet.insert(&[b"canister_ranges"], canister_ranges());
        subnet.insert(
            &[b"node", keys.node_id().as_slice(), b"public_key"],
            keys.node_key_der().to_vec(),
        );
        subnet.insert(&[b"type"], b"application".to_vec());
        subnet
    }

    fn add_path(
        &self,
        state: &NodeState,
        tree: &mut Tree,
        sender: Principal,
        path: &[Label],
        scope: Scope,
    ) -> Result<(), Refusal> {
        let subnet_id = self.keys.subnet_id();
        let labels: Vec<&[u8]> = path.iter().map(|l| l.as_bytes()).collect();
        match labels.as_slice() {
            [] | [b"time", ..] => {}
            [b"subnet", ..] => {
                tree.insert_tree(&[b"subnet", subnet_id.as_slice()], self.subnet_tree());
            }
            [b"canister_ranges", ..] => {
                tree.insert(
                    &[b"canister_ranges", subnet_id.as_slice(), &[]],
                    canister_ranges(),
                );
            }
            [b"api_boundary_nodes", ..] => {}
            [b"request_status", rid, ..] => {
                let Ok(rid) = <[u8; 32]>::try_from(*rid) else {
                    return Ok(()); // not a request id: absent
                };
                if let Some(record) = state.ingress.get(&rid) {
                    if record.sender != sender {
                        return Err(Refusal::new(
                            403,
                            "the request status may only be read by the request's sender",
                        ));
                    }
                    tree.insert_tree(&[b"request_status", &rid], status_tree(&record.state));
                }
            }
            [b"canister", id, rest @ ..] => {
                let canister = Principal::try_from_slice(id)
                    .map_err(|e| Refusal::new(400, format!("invalid canister id in path: {e}")))?;
                if let Scope::Canister(effective) = scope
                    && effective != canister
                {
                    return Err(Refusal::new(
                        400,
                        format!(
                            "path /canister/{canister} is not readable with effective canister id {effective}"
                        ),
                    ));
                }
                let devnet = &state.devnet;
                let Some(controllers) = devnet.controllers(canister) else {
                    return Ok(());
                };
                let base: [&[u8]; 2] = [b"canister", canister.as_slice()];
                let wants = |leaf: &[u8]| rest.is_empty() || rest[0] == leaf;
                if wants(b"controllers") {
                    tree.insert(
                        &[base[0], base[1], b"controllers"],
                        cbor_self_describing(&controllers),
                    );
                }
                if wants(b"module_hash")
                    && let Some(hash) = devnet.module_hash(canister)
                {
                    tree.insert(&[base[0], base[1], b"module_hash"], hash.to_vec());
                }
                if let [b"metadata", name] = rest
                    && let Ok(name) = std::str::from_utf8(name)
                {
                    match management::metadata_section(
                        devnet,
                        &state.management,
                        sender,
                        canister,
                        name,
                    ) {
                        Ok(Some(content)) => {
                            tree.insert(&[base[0], base[1], b"metadata", name.as_bytes()], content)
                        }
                        Ok(None) => {}
                        Err(_) => {
                            return Err(Refusal::new(
                                403,
                                format!(
                                    "metadata '{name}' of {canister} is private to its controllers"
                                ),
                            ));
                        }
                    }
                }
                if wants(b"certified_data") {
                    let data = devnet.certified_data(canister).unwrap_or_default();
                    tree.insert(&[base[0], base[1], b"certified_data"], data);
                }
            }
            [other, ..] => {
                return Err(Refusal::new(
                    404,
                    format!(
                        "path /{} is not served by the devnet",
                        String::from_utf8_lossy(other)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Number of update calls not answered yet.
    pub fn processing(&self) -> usize {
        self.lock().ingress.processing()
    }
}

/// One range holding every principal: the devnet's only subnet hosts all
/// canisters, including the management canister as an effective id.
fn canister_ranges() -> Vec<u8> {
    let low = Principal::from_slice(&[]);
    let high = Principal::from_slice(&[0xff; 29]);
    cbor_self_describing(&vec![(low, high)])
}

fn transport_code(code: RejectCode) -> TransportRejectCode {
    match code {
        RejectCode::SysFatal => TransportRejectCode::SysFatal,
        // ic-transport-types 0.49 has no SYS_UNKNOWN; ingress never sees it.
        RejectCode::SysTransient | RejectCode::SysUnknown => TransportRejectCode::SysTransient,
        RejectCode::DestinationInvalid => TransportRejectCode::DestinationInvalid,
        RejectCode::CanisterReject => TransportRejectCode::CanisterReject,
        RejectCode::CanisterError => TransportRejectCode::CanisterError,
    }
}

/// Sets the time, ticks, and moves answers into the ingress history.
fn round(state: &mut NodeState, now_nanos: u64) -> usize {
    let NodeState {
        devnet, ingress, ..
    } = state;
    devnet.set_time(UNIX_EPOCH + Duration::from_nanos(now_nanos));
    let stats = devnet.tick();
    if stats.messages > 0 || stats.timers > 0 {
        tracing::debug!(
            messages = stats.messages,
            timers = stats.timers,
            expired = stats.expired,
            "round"
        );
    }
    let answered = ingress.collect(devnet);
    ingress.prune(wall_clock_nanos());
    answered
}
