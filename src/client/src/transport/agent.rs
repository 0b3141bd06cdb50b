//! [`Transport`] over ic-agent: the IC, a local replica, or `local-replica`.

use std::sync::Arc;
use std::time::Duration;

use candid::Principal;
use ic_agent::agent::{RejectCode as AgentRejectCode, RejectResponse};
use ic_agent::hash_tree::{Label, LookupResult};
use ic_agent::{Agent, AgentError, Identity};

use super::{Call, RejectCode, Transport, TransportError};

/// Settings of an [`AgentTransport`].
#[derive(Clone, Debug)]
pub struct AgentTransportConfig {
    /// The replica or boundary node, e.g. `https://icp-api.io` or
    /// `http://127.0.0.1:4943`.
    pub url: String,
    /// Fetch the root key from the replica instead of trusting the IC's
    /// built-in one. Only for local networks: on mainnet it would let a
    /// man in the middle forge answers.
    pub fetch_root_key: bool,
    /// Verify the node signatures on query answers (needs a replica that
    /// signs them; local emulators may not).
    pub verify_query_signatures: bool,
    /// How long a signed request stays valid.
    pub ingress_expiry: Duration,
    /// The canister whose subnet answers `read_state` for the time (any of
    /// the marketplace's canisters).
    pub time_canister: Principal,
}

/// Calls canisters through ic-agent under one identity.
#[derive(Clone)]
pub struct AgentTransport {
    agent: Agent,
    sender: Principal,
    time_canister: Principal,
}

impl AgentTransport {
    /// Connects (and fetches the root key if asked to).
    pub async fn connect(
        config: &AgentTransportConfig,
        identity: Arc<dyn Identity>,
    ) -> Result<Self, TransportError> {
        let sender = identity
            .sender()
            .map_err(|e| TransportError::Config(format!("the identity has no principal: {e}")))?;
        let agent = Agent::builder()
            .with_url(config.url.as_str())
            .with_arc_identity(identity)
            .with_verify_query_signatures(config.verify_query_signatures)
            .with_ingress_expiry(config.ingress_expiry)
            .build()
            .map_err(|e| TransportError::Config(format!("network URL {}: {e}", config.url)))?;
        if config.fetch_root_key {
            agent.fetch_root_key().await.map_err(|e| {
                TransportError::Network(format!(
                    "fetching the root key from {} failed (is the replica running?): {e}",
                    config.url
                ))
            })?;
        }
        Ok(Self {
            agent,
            sender,
            time_canister: config.time_canister,
        })
    }

    /// The underlying agent.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }
}

fn map_reject(reject: RejectResponse) -> TransportError {
    let code = match reject.reject_code {
        AgentRejectCode::SysFatal => RejectCode::SysFatal,
        AgentRejectCode::SysTransient => RejectCode::SysTransient,
        AgentRejectCode::DestinationInvalid => RejectCode::DestinationInvalid,
        AgentRejectCode::CanisterReject => RejectCode::CanisterReject,
        AgentRejectCode::CanisterError => RejectCode::CanisterError,
    };
    TransportError::Reject {
        code,
        message: reject.reject_message,
        error_code: reject.error_code,
    }
}

/// Maps ic-agent's error into the transport's: rejects keep their code,
/// everything on the way (HTTP, TLS, certificates) is a network failure.
pub(crate) fn map_agent_error(e: AgentError) -> TransportError {
    match e {
        AgentError::CertifiedReject { reject, .. }
        | AgentError::UncertifiedReject { reject, .. } => map_reject(reject),
        AgentError::TimeoutWaitingForResponse() => TransportError::Timeout,
        AgentError::SigningError(m) => TransportError::Config(format!("signing failed: {m}")),
        AgentError::InvalidReplicaUrl(u) => {
            TransportError::Config(format!("invalid network URL {u:?}"))
        }
        AgentError::CertificateVerificationFailed() => TransportError::Network(
            "certificate verification failed: the root key does not match (on a local network, \
             set fetch_root_key = true)"
                .into(),
        ),
        other => TransportError::Network(other.to_string()),
    }
}

/// Decodes the unsigned LEB128 value of the state tree's `/time`.
pub(crate) fn decode_leb128(mut bytes: &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    loop {
        let (&byte, rest) = bytes.split_first()?;
        bytes = rest;
        if shift >= 64 {
            return None;
        }
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
    }
}

impl Transport for AgentTransport {
    fn sender(&self) -> Principal {
        self.sender
    }

    async fn update(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        self.agent
            .update(&call.canister, call.method)
            .with_arg(call.arg)
            .call_and_wait()
            .await
            .map_err(map_agent_error)
    }

    async fn query(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        self.agent
            .query(&call.canister, call.method)
            .with_arg(call.arg)
            .call()
            .await
            .map_err(map_agent_error)
    }

    async fn time_ns(&self) -> Result<u64, TransportError> {
        let path: Vec<Label<Vec<u8>>> = vec!["time".into()];
        let cert = self
            .agent
            .read_state_raw(vec![path], self.time_canister)
            .await
            .map_err(map_agent_error)?;
        match cert.tree.lookup_path(["time".as_bytes()]) {
            LookupResult::Found(bytes) => decode_leb128(bytes).ok_or_else(|| {
                TransportError::Network("the certified /time is not a LEB128 number".into())
            }),
            _ => Err(TransportError::Network(
                "the replica's certificate has no /time".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_time_decodes() {
        assert_eq!(decode_leb128(&[0]), Some(0));
        assert_eq!(decode_leb128(&[0xe5, 0x8e, 0x26]), Some(624_485));
        let t: u64 = 1_735_689_600_000_000_000;
        let mut enc = vec![];
        let mut v = t;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                enc.push(b);
                break;
            }
            enc.push(b | 0x80);
        }
        assert_eq!(decode_leb128(&enc), Some(t));
        assert_eq!(decode_leb128(&[0x80]), None, "truncated");
    }

    #[test]
    fn agent_rejects_keep_their_code() {
        let e = map_agent_error(AgentError::CertifiedReject {
            reject: RejectResponse {
                reject_code: AgentRejectCode::DestinationInvalid,
                reject_message: "Canister xyz not found".into(),
                error_code: Some("IC0301".into()),
            },
            operation: None,
        });
        assert_eq!(
            e,
            TransportError::Reject {
                code: RejectCode::DestinationInvalid,
                message: "Canister xyz not found".into(),
                error_code: Some("IC0301".into()),
            }
        );
        assert_eq!(
            e.to_string(),
            "rejected with DESTINATION_INVALID (3): Canister xyz not found"
        );
        assert!(!e.is_transient());
        let e = map_agent_error(AgentError::TimeoutWaitingForResponse());
        assert_eq!(e, TransportError::Timeout);
        assert!(e.is_transient());
    }
}
