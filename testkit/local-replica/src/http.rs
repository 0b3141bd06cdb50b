//! The IC's HTTP interface over a [`Node`]: status, call (v2 asynchronous,
//! v3/v4 synchronous), query and read_state, with CBOR bodies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use candid::Principal;
use ic_transport_types::{EnvelopeContent, RejectResponse, TransportCallResponse};
use serde_cbor::Value;

use crate::auth::{Authenticated, authenticate_at};
use crate::ingress::error_code;
use crate::management;
use crate::node::{Node, Refusal, Request, Scope, Submitted, wall_clock_nanos};
use crate::state_tree::cbor_self_describing;

/// Largest request body accepted (the IC's limit is about 5 MB; payloads
/// themselves are limited to 2 MiB by the devnet).
const MAX_BODY: usize = 5 * 1024 * 1024;

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// How long a v3/v4 call waits for its answer before returning 202.
    pub sync_call_wait: Duration,
}

#[derive(Clone)]
struct App {
    node: Arc<Node>,
    config: HttpConfig,
}

/// The router serving the IC HTTP interface for `node`.
pub fn router(node: Arc<Node>, config: HttpConfig) -> Router {
    Router::new()
        .route("/api/v2/status", get(status))
        .route("/api/{version}/canister/{id}/call", post(call::<false>))
        .route("/api/{version}/canister/{id}/query", post(query))
        .route(
            "/api/{version}/canister/{id}/read_state",
            post(read_state::<false>),
        )
        .route("/api/{version}/subnet/{id}/call", post(call::<true>))
        .route("/api/{version}/subnet/{id}/query", post(query))
        .route(
            "/api/{version}/subnet/{id}/read_state",
            post(read_state::<true>),
        )
        .fallback(gateway)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(App { node, config })
}

/// Everything but the IC's HTTP interface: canisters' pages
/// (see [`crate::gateway`]).
async fn gateway(
    State(app): State<App>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    crate::gateway::serve(app.node, method, uri, headers, body).await
}

fn cbor(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/cbor")], body).into_response()
}

/// A refusal answered in plain text, as the replica does.
struct HttpError {
    status: StatusCode,
    message: String,
}

fn plain(status: StatusCode, message: impl Into<String>) -> HttpError {
    HttpError {
        status,
        message: message.into(),
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        tracing::info!(status = self.status.as_u16(), message = %self.message, "request refused");
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain")],
            self.message,
        )
            .into_response()
    }
}

impl From<Refusal> for HttpError {
    fn from(r: Refusal) -> HttpError {
        plain(
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST),
            r.message,
        )
    }
}

fn parse_principal(text: &str) -> Result<Principal, HttpError> {
    Principal::from_text(text).map_err(|e| {
        plain(
            StatusCode::BAD_REQUEST,
            format!("invalid principal '{text}': {e}"),
        )
    })
}

/// The effective canister or subnet id of a request path, once its API
/// version is known to be one of `allowed`.
fn effective_id(version: &str, allowed: &[&str], id: &str) -> Result<Principal, HttpError> {
    if !allowed.contains(&version) {
        return Err(plain(
            StatusCode::NOT_FOUND,
            format!("unknown API version '{version}'"),
        ));
    }
    parse_principal(id)
}

/// Runs blocking node work off the async workers.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f)
        .await
        .expect("node work panicked")
}

fn authenticated(node: &Node, body: &[u8]) -> Result<Authenticated, HttpError> {
    authenticate_at(body, wall_clock_nanos(), node.clock_nanos())
        .map_err(|e| plain(StatusCode::BAD_REQUEST, e.to_string()))
}

/// The call (or, with `query`, the query) an authenticated envelope
/// carries; any other content is refused.
fn ingress_request(auth: Authenticated, query: bool) -> Result<Request, HttpError> {
    match (auth.content, query) {
        (
            EnvelopeContent::Call {
                sender,
                canister_id,
                method_name,
                arg,
                ingress_expiry,
                ..
            },
            false,
        )
        | (
            EnvelopeContent::Query {
                sender,
                canister_id,
                method_name,
                arg,
                ingress_expiry,
                ..
            },
            true,
        ) => Ok(Request {
            request_id: auth.request_id,
            sender,
            canister: canister_id,
            method: method_name,
            arg,
            expiry: ingress_expiry,
        }),
        (_, false) => Err(plain(StatusCode::BAD_REQUEST, "expected a call request")),
        (_, true) => Err(plain(StatusCode::BAD_REQUEST, "expected a query request")),
    }
}

async fn status(State(app): State<App>) -> Response {
    let mut map = std::collections::BTreeMap::new();
    let text = |s: &str| Value::Text(s.to_string());
    map.insert(text("ic_api_version"), text("0.18.0"));
    map.insert(
        text("impl_version"),
        text(concat!("devnet-", env!("CARGO_PKG_VERSION"))),
    );
    map.insert(text("replica_health_status"), text("healthy"));
    map.insert(
        text("root_key"),
        Value::Bytes(app.node.keys().root_key_der().to_vec()),
    );
    cbor(StatusCode::OK, cbor_self_describing(&Value::Map(map)))
}

/// The effective canister id a call must name in its URL: the callee, or
/// for the management canister the canister its argument acts on.
fn check_effective(effective: Principal, canister: Principal, arg: &[u8]) -> Result<(), HttpError> {
    let expected = if canister == Principal::management_canister() {
        match management::effective_canister(arg) {
            Some(target) => target,
            // Creation: any effective canister id on the subnet will do.
            None => return Ok(()),
        }
    } else {
        canister
    };
    if expected == effective {
        Ok(())
    } else {
        Err(plain(
            StatusCode::BAD_REQUEST,
            format!(
                "effective canister id {effective} in the URL does not match the call's {expected}"
            ),
        ))
    }
}

/// `call` on a canister, or with `SUBNET` the subnet's call endpoint, which
/// takes management canister calls only.
async fn call<const SUBNET: bool>(
    State(app): State<App>,
    Path((version, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let versions: &[&str] = if SUBNET { &["v4"] } else { &["v2", "v3", "v4"] };
    let effective = effective_id(&version, versions, &id)?;
    let request = ingress_request(authenticated(&app.node, &body)?, false)?;
    if SUBNET {
        if request.canister != Principal::management_canister() {
            return Err(plain(
                StatusCode::BAD_REQUEST,
                "the subnet call endpoint takes management canister calls only",
            ));
        }
    } else {
        check_effective(effective, request.canister, &request.arg)?;
    }
    let request_id = request.request_id;
    tracing::info!(
        request_id = %request_id, sender = %request.sender, canister = %request.canister,
        method = %request.method, arg_bytes = request.arg.len(), %version, "call"
    );
    let started = Instant::now();
    let node = app.node.clone();
    let submitted = blocking(move || node.submit_call(request)).await;
    if let Submitted::Refused(reject) = submitted {
        tracing::info!(request_id = %request_id, code = reject.code as u32, message = %reject.message, "call refused before execution");
        let response = TransportCallResponse::NonReplicatedRejection(RejectResponse {
            reject_code: ic_transport_types::RejectCode::try_from(reject.code as u64)
                .unwrap_or(ic_transport_types::RejectCode::SysTransient),
            error_code: error_code(&reject),
            reject_message: reject.message,
        });
        return Ok(cbor(StatusCode::OK, cbor_self_describing(&response)));
    }
    if version == "v2" {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    // Wait for the answer, a round at a time, up to the configured limit.
    let mut rounds = app.node.subscribe_rounds();
    let deadline = tokio::time::Instant::now() + app.config.sync_call_wait;
    loop {
        let node = app.node.clone();
        if blocking(move || node.is_answered(&request_id)).await {
            break;
        }
        if tokio::time::timeout_at(deadline, rounds.changed())
            .await
            .is_err()
        {
            tracing::info!(request_id = %request_id, "call still running: 202, client polls read_state");
            return Ok(StatusCode::ACCEPTED.into_response());
        }
    }
    let node = app.node.clone();
    let certificate = blocking(move || node.request_status_certificate(&request_id)).await;
    tracing::debug!(request_id = %request_id, elapsed_ms = started.elapsed().as_secs_f64() * 1000.0, "call answered synchronously");
    Ok(cbor(
        StatusCode::OK,
        cbor_self_describing(&TransportCallResponse::Replied { certificate }),
    ))
}

/// `query` on a canister or on the subnet: both run the query the same way.
async fn query(
    State(app): State<App>,
    Path((version, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let effective = effective_id(&version, &["v2", "v3"], &id)?;
    let request = ingress_request(authenticated(&app.node, &body)?, true)?;
    if request.canister != Principal::management_canister() {
        check_effective(effective, request.canister, &request.arg)?;
    }
    let (sender, canister_id, method_name) =
        (request.sender, request.canister, request.method.clone());
    let started = Instant::now();
    let node = app.node.clone();
    let response = blocking(move || node.query(request)).await;
    tracing::info!(
        %sender, canister = %canister_id, method = %method_name,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0, "query"
    );
    Ok(cbor(StatusCode::OK, response))
}

/// `read_state` of a canister, or with `SUBNET` of the devnet's subnet.
async fn read_state<const SUBNET: bool>(
    State(app): State<App>,
    Path((version, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let effective = effective_id(&version, &["v2", "v3"], &id)?;
    let auth = authenticated(&app.node, &body)?;
    let EnvelopeContent::ReadState { sender, paths, .. } = auth.content else {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            "expected a read_state request",
        ));
    };
    let scope = if SUBNET {
        if effective != app.node.keys().subnet_id() {
            return Err(plain(
                StatusCode::NOT_FOUND,
                format!("subnet {effective} is not the devnet's subnet"),
            ));
        }
        Scope::Subnet(effective)
    } else {
        Scope::Canister(effective)
    };
    tracing::debug!(%sender, ?scope, paths = paths.len(), "read_state");
    let node = app.node.clone();
    let certificate = blocking(move || node.read_state(sender, &paths, scope))
        .await
        .map_err(HttpError::from)?;
    Ok(cbor(
        StatusCode::OK,
        cbor_self_describing(&ic_transport_types::ReadStateResponse { certificate }),
    ))
}
