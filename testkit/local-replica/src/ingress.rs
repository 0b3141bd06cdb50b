//! The ingress history: what happened to each update call received over
//! HTTP, keyed by request id, until it is read or expires.

use std::collections::HashMap;
use std::time::Instant;

use candid::Principal;
use devnet::{Devnet, IngressStatus, MessageId, Reject};

use crate::state_tree::{Tree, leb128};

/// Where an ingress message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngressState {
    /// Submitted to the devnet, not answered yet.
    Processing(MessageId),
    /// Answered with a reply.
    Replied(Vec<u8>),
    /// Answered with a reject.
    Rejected(Reject),
}

/// One update call received over HTTP.
#[derive(Clone, Debug)]
pub struct IngressRecord {
    /// Who sent it; only this sender may read its status.
    pub sender: Principal,
    /// The callee.
    pub canister: Principal,
    /// The method called.
    pub method: String,
    /// The request's ingress expiry (ns since the epoch, wall clock).
    pub expiry: u64,
    /// Its state.
    pub state: IngressState,
    /// When it was received, for the log's latency figure.
    pub received: Instant,
}

/// Ingress messages by request id.
#[derive(Default)]
pub struct IngressHistory {
    records: HashMap<[u8; 32], IngressRecord>,
    /// Request ids still processing, so a round looks only at those.
    pending: Vec<[u8; 32]>,
}

/// How long an answered message stays readable after its expiry (the IC
/// keeps it until expiry; a margin helps clients with slow clocks).
const RETENTION_AFTER_EXPIRY_NANOS: u64 = 60_000_000_000;

impl IngressHistory {
    /// The record of a request, if known.
    pub fn get(&self, request_id: &[u8; 32]) -> Option<&IngressRecord> {
        self.records.get(request_id)
    }

    /// Adds a record (a duplicate request id keeps the first one).
    pub fn insert(&mut self, request_id: [u8; 32], record: IngressRecord) {
        if self.records.contains_key(&request_id) {
            return;
        }
        if matches!(record.state, IngressState::Processing(_)) {
            self.pending.push(request_id);
        }
        self.records.insert(request_id, record);
    }

    /// Moves answered messages out of the devnet into the history; returns
    /// how many were answered.
    pub fn collect(&mut self, devnet: &mut Devnet) -> usize {
        let before = self.pending.len();
        let records = &mut self.records;
        self.pending.retain(|rid| {
            let Some(record) = records.get_mut(rid) else {
                return false;
            };
            let IngressState::Processing(id) = record.state else {
                return false;
            };
            if !matches!(devnet.ingress_status(id), IngressStatus::Done(_)) {
                return true;
            }
            // `await_call` hands over an answered message without running anything.
            record.state = match devnet.await_call(id) {
                Ok(reply) => IngressState::Replied(reply),
                Err(reject) => IngressState::Rejected(reject),
            };
            log_answer(rid, record);
            false
        });
        before - self.pending.len()
    }

    /// Forgets answered messages well past their expiry.
    pub fn prune(&mut self, now_nanos: u64) {
        self.records.retain(|_, r| {
            matches!(r.state, IngressState::Processing(_))
                || r.expiry.saturating_add(RETENTION_AFTER_EXPIRY_NANOS) >= now_nanos
        });
    }

    /// Number of messages not answered yet.
    pub fn processing(&self) -> usize {
        self.pending.len()
    }
}

/// Logs the outcome of an answered ingress message.
pub fn log_answer(request_id: &[u8; 32], record: &IngressRecord) {
    let latency_ms = record.received.elapsed().as_secs_f64() * 1000.0;
    let rid = hex::encode(request_id);
    match &record.state {
        IngressState::Replied(reply) => tracing::info!(
            request_id = %rid, canister = %record.canister, method = %record.method,
            reply_bytes = reply.len(), latency_ms, "update replied"
        ),
        IngressState::Rejected(reject) => tracing::info!(
            request_id = %rid, canister = %record.canister, method = %record.method,
            code = reject.code as u32, message = %reject.message, latency_ms, "update rejected"
        ),
        IngressState::Processing(_) => {}
    }
}

/// The `/request_status/<id>` subtree of a record.
pub fn status_tree(state: &IngressState) -> Tree {
    let mut tree = Tree::default();
    match state {
        IngressState::Processing(_) => tree.insert(&[b"status"], b"processing".to_vec()),
        IngressState::Replied(reply) => {
            tree.insert(&[b"status"], b"replied".to_vec());
            tree.insert(&[b"reply"], reply.clone());
        }
        IngressState::Rejected(reject) => {
            tree.insert(&[b"status"], b"rejected".to_vec());
            tree.insert(&[b"reject_code"], leb128(reject.code as u64));
            tree.insert(&[b"reject_message"], reject.message.clone().into_bytes());
            if let Some(code) = error_code(reject) {
                tree.insert(&[b"error_code"], code.into_bytes());
            }
        }
    }
    tree
}

/// The IC's error code (`IC0xxx`) of a devnet reject, if the IC gives one.
pub fn error_code(reject: &Reject) -> Option<String> {
    reject.error_code.map(|e| e.to_string())
}
