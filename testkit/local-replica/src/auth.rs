//! Authentication of request envelopes as the IC does it: the request id,
//! the sender's signature (Ed25519, ECDSA on secp256k1 or P-256, optionally
//! through a chain of delegations), the self-authenticating sender and the
//! ingress expiry.

use std::time::Duration;

use candid::Principal;
use ic_transport_types::{Envelope, EnvelopeContent, RequestId};

/// How far in the future an ingress expiry may be (IC: 5 minutes).
pub const MAX_INGRESS_TTL: Duration = Duration::from_secs(5 * 60);
/// Clock drift tolerated on top of [`MAX_INGRESS_TTL`] (IC: 30 seconds).
pub const PERMITTED_DRIFT: Duration = Duration::from_secs(30);
/// Longest delegation chain accepted (IC: 20).
const MAX_DELEGATIONS: usize = 20;

const REQUEST_DOMAIN: &[u8] = b"\x0Aic-request";

/// Why a request was refused before it reached a canister (HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The body is not a CBOR envelope.
    #[error("could not parse the request envelope: {0}")]
    Malformed(String),
    /// The ingress expiry is in the past or too far in the future.
    #[error(
        "Invalid request expiry: specified ingress_expiry {expiry} not within the expected range [{min}, {max}] (now, now + 5 minutes + 30 s drift)"
    )]
    Expiry {
        /// The request's expiry (ns since the epoch).
        expiry: u64,
        /// The earliest acceptable expiry.
        min: u64,
        /// The latest acceptable expiry.
        max: u64,
    },
    /// A signature is missing, malformed or wrong.
    #[error("Invalid signature: {0}")]
    Signature(String),
    /// The sender is not the principal of the public key.
    #[error("Sender {sender} does not match the public key's principal {expected}")]
    SenderMismatch {
        /// The request's sender.
        sender: Principal,
        /// The self-authenticating principal of `sender_pubkey`.
        expected: Principal,
    },
}

/// A request whose envelope passed authentication.
#[derive(Debug)]
pub struct Authenticated {
    /// The signed content.
    pub content: EnvelopeContent,
    /// The request id (the representation-independent hash of `content`).
    pub request_id: RequestId,
}

/// Decodes and authenticates an envelope at wall-clock time `now_nanos`.
pub fn authenticate(body: &[u8], now_nanos: u64) -> Result<Authenticated, AuthError> {
    authenticate_at(body, now_nanos, now_nanos)
}

/// Decodes and authenticates an envelope at wall-clock time `now_nanos`
/// while the devnet's clock reads `devnet_nanos`: an expiry may lie up to
/// 5 minutes and 30 s past the later of the two. A clock running faster
/// than real time puts certificates ahead of the wall clock; agents that
/// sync their time to a certificate (agent-js does when one seems to come
/// from the future) then compute expiries from the devnet's time.
pub fn authenticate_at(
    body: &[u8],
    now_nanos: u64,
    devnet_nanos: u64,
) -> Result<Authenticated, AuthError> {
    let envelope: Envelope<'_> =
        serde_cbor::from_slice(body).map_err(|e| AuthError::Malformed(e.to_string()))?;
    let content = envelope.content.into_owned();
    check_expiry(
        content.ingress_expiry(),
        now_nanos,
        devnet_nanos.max(now_nanos),
    )?;
    let request_id = content.to_request_id();
    let sender = *content.sender();
    if sender == Principal::anonymous() {
        if envelope.sender_pubkey.is_some() || envelope.sender_sig.is_some() {
            return Err(AuthError::Signature(
                "an anonymous request must not carry a public key or signature".into(),
            ));
        }
        return Ok(Authenticated {
            content,
            request_id,
        });
    }
    let (Some(pubkey), Some(sig)) = (&envelope.sender_pubkey, &envelope.sender_sig) else {
        return Err(AuthError::Signature(format!(
            "the request from {sender} has no sender_pubkey or sender_sig"
        )));
    };
    let expected = Principal::self_authenticating(pubkey);
    if sender != expected {
        return Err(AuthError::SenderMismatch { sender, expected });
    }
    let mut key = pubkey.clone();
    let delegations = envelope.sender_delegation.unwrap_or_default();
    if delegations.len() > MAX_DELEGATIONS {
        return Err(AuthError::Signature(format!(
            "{} delegations, at most {MAX_DELEGATIONS} allowed",
            delegations.len()
        )));
    }
    let target = match &content {
        EnvelopeContent::Call { canister_id, .. } | EnvelopeContent::Query { canister_id, .. } => {
            Some(*canister_id)
        }
        EnvelopeContent::ReadState { .. } => None,
    };
    for (i, signed) in delegations.iter().enumerate() {
        let d = &signed.delegation;
        verify_signature(&key, &d.signable(), &signed.signature)
            .map_err(|e| AuthError::Signature(format!("delegation {i}: {e}")))?;
        if d.expiration < now_nanos {
            return Err(AuthError::Signature(format!("delegation {i} has expired")));
        }
        if let (Some(targets), Some(target)) = (&d.targets, target)
            && !targets.contains(&target)
        {
            return Err(AuthError::Signature(format!(
                "delegation {i} does not allow calls to {target}"
            )));
        }
        key = d.pubkey.clone();
    }
    let mut msg = REQUEST_DOMAIN.to_vec();
    msg.extend_from_slice(request_id.as_slice());
    verify_signature(&key, &msg, sig).map_err(AuthError::Signature)?;
    Ok(Authenticated {
        content,
        request_id,
    })
}

fn check_expiry(expiry: u64, now_nanos: u64, latest_nanos: u64) -> Result<(), AuthError> {
    let min = now_nanos;
    let max = latest_nanos.saturating_add((MAX_INGRESS_TTL + PERMITTED_DRIFT).as_nanos() as u64);
    if expiry < min || expiry > max {
        return Err(AuthError::Expiry { expiry, min, max });
    }
    Ok(())
}

/// Verifies `sig` over `msg` with a DER-encoded public key of one of the
/// schemes user identities use.
pub fn verify_signature(key_der: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), String> {
    use k256::ecdsa::signature::Verifier;
    use k256::pkcs8::DecodePublicKey;

    if let Ok(key) = ic_ed25519::PublicKey::deserialize_rfc8410_der(key_der) {
        return key
            .verify_signature(msg, sig)
            .map_err(|e| format!("Ed25519 signature does not verify: {e:?}"));
    }
    if let Ok(key) = k256::ecdsa::VerifyingKey::from_public_key_der(key_der) {
        let sig = k256::ecdsa::Signature::from_slice(sig)
            .map_err(|_| "malformed secp256k1 signature".to_string())?;
        let sig = sig.normalize_s().unwrap_or(sig);
        return key
            .verify(msg, &sig)
            .map_err(|_| "secp256k1 signature does not verify".to_string());
    }
    if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(key_der) {
        let sig = p256::ecdsa::Signature::from_slice(sig)
            .map_err(|_| "malformed P-256 signature".to_string())?;
        return key
            .verify(msg, &sig)
            .map_err(|_| "P-256 signature does not verify".to_string());
    }
    Err(
        "unsupported public key: the devnet verifies Ed25519, secp256k1 and P-256 keys \
         (not canister signatures)"
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_transport_types::Envelope;
    use std::borrow::Cow;

    const NOW: u64 = 1_800_000_000_000_000_000;

    fn content(sender: Principal, expiry: u64) -> EnvelopeContent {
        EnvelopeContent::Query {
            ingress_expiry: expiry,
            sender,
            canister_id: Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 1, 1]),
            method_name: "get".into(),
            arg: b"DIDL\0\0".to_vec(),
            nonce: None,
            sender_info: None,
        }
    }

    fn signed(key: &ic_ed25519::PrivateKey, expiry: u64) -> Vec<u8> {
        let der = key.public_key().serialize_rfc8410_der();
        let content = content(Principal::self_authenticating(&der), expiry);
        let mut msg = REQUEST_DOMAIN.to_vec();
        msg.extend_from_slice(content.to_request_id().as_slice());
        Envelope {
            content: Cow::Owned(content),
            sender_pubkey: Some(der),
            sender_sig: Some(key.sign_message(&msg).to_vec()),
            sender_delegation: None,
        }
        .encode_bytes()
    }

    #[test]
    fn ed25519_signatures_verify_and_tampering_is_caught() {
        let key = ic_ed25519::PrivateKey::generate_from_seed(&[1; 32]);
        let body = signed(&key, NOW + 60_000_000_000);
        authenticate(&body, NOW).expect("valid request");

        let mut envelope: Envelope<'_> = serde_cbor::from_slice(&body).unwrap();
        if let Some(sig) = envelope.sender_sig.as_mut() {
            sig[0] ^= 1;
        }
        let err = authenticate(&envelope.encode_bytes(), NOW).unwrap_err();
        assert!(matches!(err, AuthError::Signature(_)), "{err}");
    }

    #[test]
    fn expiry_outside_the_window_is_refused() {
        let key = ic_ed25519::PrivateKey::generate_from_seed(&[2; 32]);
        let past = signed(&key, NOW - 1);
        assert!(matches!(
            authenticate(&past, NOW),
            Err(AuthError::Expiry { .. })
        ));
        let far = signed(&key, NOW + 6 * 60 * 1_000_000_000);
        assert!(matches!(
            authenticate(&far, NOW),
            Err(AuthError::Expiry { .. })
        ));
    }

    #[test]
    fn a_fast_clock_extends_the_window_to_its_own_time() {
        let key = ic_ed25519::PrivateKey::generate_from_seed(&[2; 32]);
        let minute = 60 * 1_000_000_000;
        // The devnet's clock is ten minutes ahead; an agent synced to it
        // sends an expiry five minutes past the devnet's time.
        let synced = signed(&key, NOW + 15 * minute);
        authenticate_at(&synced, NOW, NOW + 10 * minute).expect("within the devnet's window");
        assert!(matches!(
            authenticate(&synced, NOW),
            Err(AuthError::Expiry { .. })
        ));
        let beyond = signed(&key, NOW + 16 * minute);
        assert!(matches!(
            authenticate_at(&beyond, NOW, NOW + 10 * minute),
            Err(AuthError::Expiry { .. })
        ));
        // Never before the wall clock.
        let past = signed(&key, NOW - 1);
        assert!(matches!(
            authenticate_at(&past, NOW, NOW + 10 * minute),
            Err(AuthError::Expiry { .. })
        ));
    }

    #[test]
    fn sender_must_match_the_key_and_anonymous_needs_no_signature() {
        let anonymous = Envelope {
            content: Cow::Owned(content(Principal::anonymous(), NOW + 1)),
            sender_pubkey: None,
            sender_sig: None,
            sender_delegation: None,
        };
        authenticate(&anonymous.encode_bytes(), NOW).expect("anonymous is fine");

        let key = ic_ed25519::PrivateKey::generate_from_seed(&[3; 32]);
        let mut envelope: Envelope<'_> = serde_cbor::from_slice(&signed(&key, NOW + 1)).unwrap();
        let other = Principal::self_authenticating(b"someone else");
        if let EnvelopeContent::Query { sender, .. } = envelope.content.to_mut() {
            *sender = other;
        }
        assert!(matches!(
            authenticate(&envelope.encode_bytes(), NOW),
            Err(AuthError::SenderMismatch { .. })
        ));
    }
}
