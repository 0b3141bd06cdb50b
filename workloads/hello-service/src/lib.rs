//! A well-behaved `wasi:http/proxy` service for the provider node's service
//! host, its tests, the demo and the benchmarks.
//!
//! Routes (anything else answers 404 with an empty body):
//! - `GET /`: 200 `hello from a service\n`
//! - `GET /healthz`: 200 `ok` (the matcher's probes use it)
//! - `GET /json?..`: 200 `application/json`
//!   `{"service":"hello","method":..,"path":..,"query":..}`
//! - `POST /echo`: 200 with the request body
//! - `GET /env/<NAME>`: 200 with the value of environment variable NAME, read
//!   through `wasi:cli/environment`, or 404 when it is not set
//! - `GET /fetch?url=<percent-encoded url>`: an outgoing GET to that URL;
//!   200 `upstream <status code>: <n> bytes`, or 502 `refused: <ErrorCode>`
//!   with the `wasi:http` error code the host gave, Debug-formatted (e.g.
//!   `HttpRequestDenied`); 400 when the URL is missing or invalid. When
//!   environment variable `API_KEY` is set (a lease's secret env, say), the
//!   request carries `authorization: Bearer <API_KEY>`.

use wstd::http::body::Body;
use wstd::http::{Client, Error, ErrorCode, Method, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match (method, path.as_str()) {
        (Method::GET, "/") => text(StatusCode::OK, "hello from a service\n"),
        (Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
        (Method::GET, "/json") => json(&request),
        (Method::POST, "/echo") => {
            let mut body = request.into_body();
            let bytes = body.bytes_contents().await?;
            Ok(Response::new(Body::from(bytes)))
        }
        (Method::GET, "/fetch") => fetch(request.uri().query().unwrap_or("")).await,
        (Method::GET, p) if p.starts_with("/env/") => env(&p["/env/".len()..]),
        _ => text(StatusCode::NOT_FOUND, ""),
    }
}

fn text(status: StatusCode, body: &str) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(body.to_owned()))?)
}

fn json(request: &Request<Body>) -> Result<Response<Body>, Error> {
    let value = serde_json::json!({
        "service": "hello",
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": request.uri().query(),
    });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_json(&value)?)?)
}

fn env(name: &str) -> Result<Response<Body>, Error> {
    let name = percent_decode(name, false).unwrap_or_default();
    match env_var(&name) {
        Some(value) => text(StatusCode::OK, &value),
        None => text(StatusCode::NOT_FOUND, ""),
    }
}

/// Environment variable `name`, read through `wasi:cli/environment`.
fn env_var(name: &str) -> Option<String> {
    wasip2::cli::environment::get_environment()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, value)| value)
}

async fn fetch(query: &str) -> Result<Response<Body>, Error> {
    let Some(url) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("url="))
        .and_then(|url| percent_decode(url, true))
    else {
        return text(StatusCode::BAD_REQUEST, "missing url");
    };
    let mut request = Request::get(url.as_str());
    if let Some(key) = env_var("API_KEY") {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let Ok(request) = request.body(Body::empty()) else {
        return text(StatusCode::BAD_REQUEST, "invalid url");
    };
    let outcome = async {
        let mut response = Client::new().send(request).await?;
        let n = response.body_mut().contents().await?.len();
        Ok::<_, Error>((response.status(), n))
    }
    .await;
    match outcome {
        Ok((status, n)) => text(
            StatusCode::OK,
            &format!("upstream {}: {n} bytes", status.as_u16()),
        ),
        Err(e) => match e.downcast_ref::<ErrorCode>() {
            Some(code) => text(StatusCode::BAD_GATEWAY, &format!("refused: {code:?}")),
            None => text(StatusCode::BAD_GATEWAY, &format!("failed: {e:#}")),
        },
    }
}

/// Decodes `%XX` escapes (and, in a query, `+` as a space, as forms send
/// it); `None` when an escape is malformed or the result is not UTF-8.
fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let digit = |b: u8| (b as char).to_digit(16);
                out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
