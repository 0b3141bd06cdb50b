//! An HTTP gateway in front of canisters' `http_request`, as the IC's
//! boundary nodes and local tooling serve them: a page is asked for at
//! `http://<canister id>.localhost:PORT/path` (Chromium and curl resolve
//! `*.localhost` to loopback), or at `http://127.0.0.1:PORT/path?canisterId=<id>`
//! (then files the page loads are found by their `Referer`).
//!
//! The gateway runs the canister's `http_request` query as the anonymous
//! principal and verifies the answer's certification (version 1: the
//! `IC-Certificate` header's certificate is signed by the root key, the
//! canister's certified data in it is the root of the header's witness,
//! and the witness holds the body's sha256 at the request's path under
//! `http_assets`), as a boundary node does; a response that does not
//! verify is answered with 503. At `<id>.raw.localhost` nothing is
//! verified (the IC's `raw` domains). Not served: `upgrade` to
//! `http_request_update`, streaming, and version 2 certification; the
//! certificate's time is not checked (the devnet's clock may run fast).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use candid::{CandidType, Deserialize, Principal};
use ic_certification::{Certificate, HashTree, LookupResult};
use sha2::{Digest, Sha256};

use crate::node::Node;

/// Which canister a request is for, and whether its answer is verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The canister.
    pub canister: Principal,
    /// Whether its response must carry a valid certification.
    pub certified: bool,
}

/// The canister a request names: by its `Host` (`<id>.localhost`,
/// `<id>.raw.localhost`), else its `canisterId` query parameter, else its
/// `Referer`'s.
pub fn target(host: Option<&str>, uri: &Uri, referer: Option<&str>) -> Option<Target> {
    if let Some(host) = host {
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        if let Some(sub) = name.strip_suffix(".localhost") {
            let (id, raw) = match sub.strip_suffix(".raw") {
                Some(id) => (id, true),
                None => (sub, false),
            };
            if let Ok(canister) = Principal::from_text(id) {
                return Some(Target {
                    canister,
                    certified: !raw,
                });
            }
        }
    }
    let from_query = |query: &str| {
        query.split('&').find_map(|pair| {
            let id = pair.strip_prefix("canisterId=")?;
            Principal::from_text(id).ok()
        })
    };
    uri.query()
        .and_then(from_query)
        .or_else(|| {
            let referer = referer?;
            let query = referer.split_once('?')?.1;
            from_query(query.split('#').next().unwrap_or(""))
        })
        .map(|canister| Target {
            canister,
            certified: true,
        })
}

/// A canister's `http_request` argument, as the HTTP gateway protocol has
/// it.
#[derive(CandidType)]
pub struct HttpRequest {
    /// `GET`, ...
    pub method: String,
    /// Path and query.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: serde_bytes::ByteBuf,
}

/// A canister's `http_request` answer, as the HTTP gateway protocol has it.
#[derive(CandidType, Deserialize)]
pub struct HttpResponse {
    /// The HTTP status.
    pub status_code: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The response body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Whether the canister asks for the call again as an update.
    pub upgrade: Option<bool>,
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    tracing::info!(status = status.as_u16(), %message, "gateway");
    (status, [(header::CONTENT_TYPE, "text/plain")], message).into_response()
}

/// Answers a request that is not for the IC's HTTP interface.
pub async fn serve(
    node: Arc<Node>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path().starts_with("/api/") {
        // An IC HTTP interface path that no route serves.
        return plain(
            StatusCode::NOT_FOUND,
            format!("no such endpoint {}", uri.path()),
        );
    }
    let text = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(target) = target(text(header::HOST), &uri, text(header::REFERER)) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "name a canister: http://<canister id>.localhost:PORT/ or /?canisterId=<canister id>",
        );
    };
    let request = HttpRequest {
        method: method.to_string(),
        url: uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string()),
        headers: headers
            .iter()
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: serde_bytes::ByteBuf::from(body.to_vec()),
    };
    let arg = match candid::encode_one(&request) {
        Ok(arg) => arg,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let canister = target.canister;
    let reply = {
        let node = node.clone();
        tokio::task::spawn_blocking(move || node.anonymous_query(canister, "http_request", arg))
            .await
    };
    let reply = match reply {
        Ok(Ok(reply)) => reply,
        Ok(Err(message)) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("{canister}'s http_request: {message}"),
            );
        }
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let response: HttpResponse = match candid::decode_one(&reply) {
        Ok(r) => r,
        Err(e) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("{canister}'s http_request answered no HttpResponse: {e}"),
            );
        }
    };
    if response.upgrade == Some(true) {
        return plain(
            StatusCode::NOT_IMPLEMENTED,
            "the devnet's gateway does not upgrade to http_request_update",
        );
    }
    if target.certified {
        let certificate = response
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("ic-certificate"))
            .map(|(_, v)| v.as_str());
        let verified = certificate
            .ok_or_else(|| "no IC-Certificate header (ask <id>.raw.localhost)".to_string())
            .and_then(|c| verify_v1(&node, canister, uri.path(), &response.body, c));
        if let Err(why) = verified {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{canister}'s response failed verification: {why}"),
            );
        }
    }
    let status = StatusCode::from_u16(response.status_code).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = (status, response.body).into_response();
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) && name != header::CONTENT_LENGTH
        {
            out.headers_mut().append(name, value);
        }
    }
    out
}

/// Checks a response's certification, version 1 (see the module's doc).
pub fn verify_v1(
    node: &Node,
    canister: Principal,
    path: &str,
    body: &[u8],
    header: &str,
) -> Result<(), String> {
    let field = |name: &str| {
        header.split(',').find_map(|part| {
            let value = part.trim().strip_prefix(name)?.strip_prefix("=:")?;
            BASE64.decode(value.strip_suffix(':')?).ok()
        })
    };
    let certificate = field("certificate").ok_or("no certificate in IC-Certificate")?;
    let tree = field("tree").ok_or("no tree in IC-Certificate")?;
    let certificate: Certificate =
        serde_cbor::from_slice(&certificate).map_err(|e| format!("certificate: {e}"))?;
    let witness: HashTree = serde_cbor::from_slice(&tree).map_err(|e| format!("tree: {e}"))?;
    if certificate.delegation.is_some()
        || !node
            .keys()
            .verifies_state_root(&certificate.tree.digest(), &certificate.signature)
    {
        return Err("the certificate is not signed by the root key".into());
    }
    let certified = match certificate.tree.lookup_path([
        b"canister".as_slice(),
        canister.as_slice(),
        b"certified_data".as_slice(),
    ]) {
        LookupResult::Found(data) => data.to_vec(),
        _ => return Err("the certificate holds no certified data of the canister".into()),
    };
    if witness.digest().as_slice() != certified {
        return Err("the tree is not the canister's certified data".into());
    }
    let hash: [u8; 32] = Sha256::digest(body).into();
    let lookup = |p: &str| match witness.lookup_path([b"http_assets".as_slice(), p.as_bytes()]) {
        LookupResult::Found(h) => Some(h == hash.as_slice()),
        _ => None,
    };
    match lookup(path).or_else(|| lookup("/index.html")) {
        Some(true) => Ok(()),
        Some(false) => Err(format!(
            "the body's sha256 is not the one certified for {path}"
        )),
        None => Err(format!("the tree certifies nothing at {path}")),
    }
}
