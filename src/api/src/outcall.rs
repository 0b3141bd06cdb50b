//! The management canister's `http_request` (an HTTPS outcall), as the
//! matcher uses it to probe a service's replicas: its Candid argument and
//! result types (the IC interface specification's `http_request_args` and
//! `http_request_result`, written here so this crate needs no ic-cdk), and
//! what one costs in cycles.

use candid::{CandidType, Deserialize, Nat};
use serde::Serialize;

/// Most response bytes a probe asks for (its `max_response_bytes`): a
/// health answer's status line and headers fit, and the cycles reserved
/// for the response stay small.
pub const PROBE_MAX_RESPONSE_BYTES: u64 = 2_048;

/// Nodes in the subnet the cycles formula of [`http_request_cycles`] is
/// written for: an application subnet.
pub const SUBNET_NODES: u128 = 13;

/// Argument of the management canister's `http_request`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpRequestArgs {
    /// The URL to request.
    pub url: String,
    /// Most bytes of the response (headers and body); the IC's default, if
    /// none, is 2 MB, and the cycles charged grow with it.
    pub max_response_bytes: Option<u64>,
    /// The HTTP method.
    pub method: HttpMethod,
    /// Request headers.
    pub headers: Vec<HttpHeader>,
    /// Request body.
    pub body: Option<serde_bytes::ByteBuf>,
    /// The query method of the calling canister that reduces each node's
    /// response to what all nodes must agree on.
    pub transform: Option<TransformContext>,
    /// `Some(false)`: made by one node instead of all of them.
    pub is_replicated: Option<bool>,
}

/// An HTTP method of an outcall.
#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpMethod {
    /// GET.
    #[serde(rename = "get")]
    Get,
    /// HEAD.
    #[serde(rename = "head")]
    Head,
    /// POST.
    #[serde(rename = "post")]
    Post,
}

/// One HTTP header.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpHeader {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// The result of the management canister's `http_request` (after the
/// transform).
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpRequestResult {
    /// The HTTP status (200, 404, ...).
    pub status: Nat,
    /// Response headers.
    pub headers: Vec<HttpHeader>,
    /// Response body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl HttpRequestResult {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        u16::try_from(&self.status.0).is_ok_and(|s| (200..300).contains(&s))
    }
}

/// The transform an outcall names: a query method of the calling canister
/// and a context blob passed to it.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TransformContext {
    /// `func (TransformArgs) -> (HttpRequestResult) query`.
    pub function: TransformFunc,
    /// Passed to the function as `TransformArgs::context`.
    #[serde(with = "serde_bytes")]
    pub context: Vec<u8>,
}

mod transform_func {
    #![allow(missing_docs)]
    use super::{HttpRequestResult, TransformArgs};
    candid::define_function!(pub TransformFunc : (TransformArgs) -> (HttpRequestResult) query);
}

/// A transform function: a canister's query method.
pub use transform_func::TransformFunc;

/// The argument of a transform function.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct TransformArgs {
    /// One node's raw response.
    pub response: HttpRequestResult,
    /// The context the outcall named.
    #[serde(with = "serde_bytes")]
    pub context: Vec<u8>,
}

/// The bytes of a request the IC charges for: the URL, the headers' names
/// and values, the body, the transform method's name and its context.
pub fn request_bytes(args: &HttpRequestArgs) -> u64 {
    let headers: usize = args
        .headers
        .iter()
        .map(|h| h.name.len() + h.value.len())
        .sum();
    let transform = args
        .transform
        .as_ref()
        .map_or(0, |t| t.function.0.method.len() + t.context.len());
    let body = args.body.as_ref().map_or(0, |b| b.len());
    (args.url.len() + headers + body + transform) as u64
}

/// The cycles an HTTPS outcall costs on a 13-node application subnet (the
/// pricing the IC calls version 1, the default): the caller attaches them,
/// and what is not used is refunded.
///
/// ```text
/// base_fee = (3_000_000 + 60_000 * n) * n
/// size_fee = (400 * request_bytes + 800 * max_response_bytes) * n
/// ```
///
/// with `n` = 13: 49 140 000 cycles a call, 5 200 per request byte and
/// 10 400 per response byte reserved. Source: the IC's cycles cost
/// reference, "HTTPS outcalls" (dfinity/developer-docs
/// `docs/reference/cycles-costs.md`, from the portal's
/// `references/cycles-cost-formulas`). A larger subnet charges more (34
/// nodes: about 2.6 times); the IC refuses an outcall with too few cycles.
pub fn http_request_cycles(request_bytes: u64, max_response_bytes: u64) -> u128 {
    let n = SUBNET_NODES;
    let base = (3_000_000 + 60_000 * n) * n;
    let size = (400 * u128::from(request_bytes) + 800 * u128::from(max_response_bytes)) * n;
    base + size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cycles_formula_matches_the_published_13_node_prices() {
        // The reference's table: 49_140_000 a call, 5_200 a request byte,
        // 10_400 a reserved response byte.
        assert_eq!(http_request_cycles(0, 0), 49_140_000);
        assert_eq!(http_request_cycles(1, 0) - http_request_cycles(0, 0), 5_200);
        assert_eq!(
            http_request_cycles(0, 1) - http_request_cycles(0, 0),
            10_400
        );
        // A probe of a 100-byte URL with a 2 KiB response.
        assert_eq!(
            http_request_cycles(100, PROBE_MAX_RESPONSE_BYTES),
            49_140_000 + 520_000 + 21_299_200
        );
        // The IC's default response size (2 MB) costs about 21.8 B cycles.
        assert_eq!(
            http_request_cycles(0, 2_000_000),
            49_140_000 + 20_800_000_000
        );
    }

    #[test]
    fn only_2xx_is_success() {
        let with = |code: u32| HttpRequestResult {
            status: code.into(),
            headers: vec![],
            body: vec![],
        };
        assert!(with(200).is_success());
        assert!(with(204).is_success());
        for code in [0, 199, 300, 404, 503, 70_000] {
            assert!(!with(code).is_success(), "{code}");
        }
    }

    #[test]
    fn request_bytes_count_url_headers_body_and_transform() {
        let principal = candid::Principal::from_slice(&[1]);
        let args = HttpRequestArgs {
            url: "http://a/1/".into(),
            max_response_bytes: Some(10),
            method: HttpMethod::Get,
            headers: vec![HttpHeader {
                name: "ab".into(),
                value: "cde".into(),
            }],
            body: Some(serde_bytes::ByteBuf::from(vec![0; 4])),
            transform: Some(TransformContext {
                function: TransformFunc(candid::Func {
                    principal,
                    method: "transform_probe".into(),
                }),
                context: vec![1, 2],
            }),
            is_replicated: None,
        };
        assert_eq!(request_bytes(&args), 11 + 5 + 4 + 15 + 2);
    }
}
