//! HTTPS outcalls: the management canister's `http_request`.
//!
//! A canister's call is answered as on the IC, but by one machine: the devnet
//! itself makes the request (plain `http://` only: there is no TLS client, and
//! the devnet only ever reaches servers of the test on local addresses),
//! checks the response against `max_response_bytes`, runs the calling
//! canister's transform query on it, and replies with what the transform
//! returned. The cycles the IC charges (its formula for a 13-node subnet) must
//! be attached; they are kept, the rest refunded. Failures are rejected with
//! the IC's codes: `SYS_TRANSIENT` for a server that can't be reached or
//! answered too late, `SYS_FATAL` for a response over the limit,
//! `CANISTER_REJECT` for a bad request or too few cycles, `CANISTER_ERROR`
//! for a transform that traps.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use candid::{Decode, Encode, Nat, Principal};
use ic_management_canister_types::{
    HttpHeader, HttpMethod, HttpRequestArgs, HttpRequestResult, TransformArgs,
};

use crate::Devnet;
use crate::error::{Reject, RejectCode};
use crate::system_api::EntryKind;

/// Nodes of the subnet whose prices the devnet charges (an application subnet).
pub const SUBNET_NODES: u128 = 13;
/// The largest response an outcall may ask for, and the limit when it asks
/// for none (the IC's 2 MB).
pub const MAX_RESPONSE_BYTES: u64 = 2_000_000;
/// Longest URL (the IC's limit).
pub const MAX_URL_LEN: usize = 8_192;
/// Most request headers (the IC's limit).
pub const MAX_HEADERS: usize = 64;
/// How long the devnet waits to connect and then for the whole response.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The cycles an outcall costs on the IC:
/// `(3M + 60K n + 400 request_size + 800 max_response_bytes) n` for a subnet
/// of `n` nodes (the formula of the IC's cycles-costs reference, "HTTPS
/// outcalls"; `ic0.cost_http_request` answers it on the devnet).
pub fn http_request_cost(request_size: u64, max_response_bytes: u64) -> u128 {
    let n = SUBNET_NODES;
    (3_000_000 + 60_000 * n + 400 * u128::from(request_size) + 800 * u128::from(max_response_bytes))
        * n
}

/// The size the IC prices a request by: its URL, headers, body, and the
/// transform's method name and context.
pub fn request_size(args: &HttpRequestArgs) -> u64 {
    let headers: usize = args
        .headers
        .iter()
        .map(|h| h.name.len() + h.value.len())
        .sum();
    let transform = args
        .transform
        .as_ref()
        .map_or(0, |t| t.function.0.method.len() + t.context.len());
    (args.url.len() + headers + args.body.as_ref().map_or(0, Vec::len) + transform) as u64
}

fn reject(code: RejectCode, message: impl Into<String>) -> Reject {
    Reject::new(code, message)
}

impl Devnet {
    /// Answers canister `caller`'s `http_request` with `cycles` attached:
    /// the reply or reject, and the cycles refunded.
    pub(crate) fn http_outcall(
        &mut self,
        caller: Principal,
        arg: &[u8],
        cycles: u128,
    ) -> (Result<Vec<u8>, Reject>, u128) {
        let args = match Decode!(arg, HttpRequestArgs) {
            Ok(a) => a,
            Err(e) => {
                let msg = format!("http_request: invalid argument: {e}");
                return (Err(reject(RejectCode::CanisterReject, msg)), cycles);
            }
        };
        let max = args.max_response_bytes.unwrap_or(MAX_RESPONSE_BYTES);
        if max > MAX_RESPONSE_BYTES {
            let msg = format!(
                "max_response_bytes expected to be in the range [0..{MAX_RESPONSE_BYTES}], got {max}"
            );
            return (Err(reject(RejectCode::CanisterReject, msg)), cycles);
        }
        if args.url.len() > MAX_URL_LEN || args.headers.len() > MAX_HEADERS {
            let msg = format!(
                "http_request: the URL is at most {MAX_URL_LEN} bytes and there are at most \
                 {MAX_HEADERS} headers"
            );
            return (Err(reject(RejectCode::CanisterReject, msg)), cycles);
        }
        let cost = http_request_cost(request_size(&args), max);
        if cycles < cost {
            let msg = format!(
                "http_request request sent with {cycles} cycles, but {cost} cycles are required."
            );
            return (Err(reject(RejectCode::CanisterReject, msg)), cycles);
        }
        let refund = cycles - cost;
        if let Some(t) = &args.transform
            && t.function.0.principal != caller
        {
            let msg =
                "http_request: the transform function must be a method of the calling canister";
            return (Err(reject(RejectCode::CanisterReject, msg)), refund);
        }
        let response = match fetch(&args, max) {
            Ok(r) => r,
            Err(e) => return (Err(e), refund),
        };
        let result = match &args.transform {
            None => Ok(response),
            Some(t) => self.transform(caller, &t.function.0.method, response, t.context.clone()),
        };
        let result = result.and_then(|r| {
            if response_size(&r) > max {
                Err(reject(
                    RejectCode::SysFatal,
                    format!("Transformed http response exceeds limit: {max}"),
                ))
            } else {
                Ok(Encode!(&r).expect("encode"))
            }
        });
        (result, refund)
    }

    fn transform(
        &mut self,
        canister: Principal,
        method: &str,
        response: HttpRequestResult,
        context: Vec<u8>,
    ) -> Result<HttpRequestResult, Reject> {
        let arg = Encode!(&TransformArgs { response, context }).expect("encode");
        self.check_method(canister, method, "query")?;
        let ctx = self.message_context(
            canister,
            EntryKind::Query,
            Principal::management_canister(),
            method,
            arg,
        );
        let reply = self
            .run_query(canister, ctx, "The transform function did not reply")
            .map_err(|r| {
                reject(
                    RejectCode::CanisterError,
                    format!("Transform function failed: {}", r.message),
                )
            })?;
        Decode!(&reply, HttpRequestResult).map_err(|e| {
            reject(
                RejectCode::CanisterError,
                format!("Transform function replied with something else than a response: {e}"),
            )
        })
    }
}

/// What a response counts against `max_response_bytes`: its headers and body.
fn response_size(r: &HttpRequestResult) -> u64 {
    let headers: usize = r.headers.iter().map(|h| h.name.len() + h.value.len()).sum();
    (headers + r.body.len()) as u64
}

/// The parts of an `http://` URL.
struct Target {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, Reject> {
    let bad = |why: &str| {
        reject(
            RejectCode::CanisterReject,
            format!("Invalid URL {url}: {why}"),
        )
    };
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(if url.starts_with("https://") {
            reject(
                RejectCode::SysFatal,
                "the devnet makes outcalls over plain http:// only (it has no TLS client)",
            )
        } else {
            bad("the scheme must be http:// or https://")
        });
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
            None if after.is_empty() => 80,
            None => return Err(bad("junk after the address")),
        };
        (format!("[{addr}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>().map_err(|_| bad("invalid port"))?,
            ),
            None => (authority.to_string(), 80),
        }
    };
    if host.is_empty() || authority.contains('@') {
        return Err(bad("no host, or user information"));
    }
    Ok(Target { host, port, path })
}

fn transient(message: String) -> Reject {
    reject(RejectCode::SysTransient, message)
}

/// Makes the request and reads the response, at most `max` bytes of headers
/// and body.
fn fetch(args: &HttpRequestArgs, max: u64) -> Result<HttpRequestResult, Reject> {
    let target = parse_url(&args.url)?;
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = (host, target.port)
        .to_socket_addrs()
        .map_err(|e| transient(format!("Failed to resolve {}: {e}", target.host)))?
        .collect();
    let started = Instant::now();
    let mut stream = None;
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let mut stream = stream.ok_or_else(|| {
        transient(format!(
            "Connecting to {}:{} failed: {last}",
            target.host, target.port
        ))
    })?;
    let io = |e: std::io::Error| transient(format!("Request to {} failed: {e}", args.url));
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let method = match args.method {
        HttpMethod::GET => "GET",
        HttpMethod::HEAD => "HEAD",
        HttpMethod::POST => "POST",
        HttpMethod::PUT => "PUT",
        HttpMethod::DELETE => "DELETE",
        HttpMethod::PATCH => "PATCH",
    };
    let body = args.body.clone().unwrap_or_default();
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n",
        target.path, target.host, target.port
    );
    for h in &args.headers {
        if h.name.eq_ignore_ascii_case("host")
            || h.name.eq_ignore_ascii_case("connection")
            || h.name.eq_ignore_ascii_case("content-length")
        {
            continue;
        }
        head.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(&body).map_err(io)?;

    // Headers and body may take `max` bytes; allow as much again for the
    // framing (status line, separators, chunk sizes) before giving up.
    let cap = max.saturating_mul(2).saturating_add(64 * 1024);
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if started.elapsed() > TIMEOUT {
            return Err(transient(format!("Request to {} timed out", args.url)));
        }
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() as u64 > cap {
            return Err(too_large(max));
        }
    }
    let response = parse_response(&raw, method == "HEAD")
        .map_err(|why| transient(format!("Invalid response from {}: {why}", args.url)))?;
    if response_size(&response) > max {
        return Err(too_large(max));
    }
    Ok(response)
}

fn too_large(max: u64) -> Reject {
    reject(
        RejectCode::SysFatal,
        format!("Http body exceeds size limit of {max} bytes."),
    )
}

fn parse_response(raw: &[u8], head_only: bool) -> Result<HttpRequestResult, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or("bad header line")?;
        headers.push(HttpHeader {
            name: name.trim().to_string(),
            value: value.trim().to_string(),
        });
    }
    let header = |n: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(n))
            .map(|h| h.value.clone())
    };
    let rest = &raw[end + 4..];
    let body = if head_only {
        Vec::new()
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| "bad content-length")?;
        rest.get(..len)
            .ok_or("body shorter than its content-length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpRequestResult {
        status: Nat::from(status),
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size = std::str::from_utf8(&rest[..eol]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).ok_or("chunk cut short")?);
        rest = rest.get(size + 2..).ok_or("chunk cut short")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cost_is_the_ics_for_a_13_node_subnet() {
        // 49.14 M cycles base, 5 200 per request byte, 10 400 per response byte.
        assert_eq!(http_request_cost(0, 0), 49_140_000);
        assert_eq!(http_request_cost(1, 0) - http_request_cost(0, 0), 5_200);
        assert_eq!(http_request_cost(0, 1) - http_request_cost(0, 0), 10_400);
        assert_eq!(
            http_request_cost(100, 1_024),
            49_140_000 + 520_000 + 10_649_600
        );
    }

    #[test]
    fn urls_are_split_into_host_port_and_path() {
        let t = parse_url("http://127.0.0.1:8080/5/healthz?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/5/healthz?x=1")
        );
        let t = parse_url("http://localhost").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("localhost", 80, "/")
        );
        let t = parse_url("http://[::1]:9/a").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("[::1]", 9));
        let t = parse_url("http://h?q").unwrap();
        assert_eq!(t.path, "/?q");
        assert_eq!(
            parse_url("https://example.com/").err().map(|r| r.code),
            Some(RejectCode::SysFatal)
        );
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("http://user@h/").is_err());
        assert!(parse_url("http://h:99999/").is_err());
    }

    #[test]
    fn responses_are_parsed_with_either_framing() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nokEXTRA",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body), (Nat::from(200u16), b"ok".to_vec()));
        assert_eq!(r.headers.len(), 2);
        let r = parse_response(
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body), (Nat::from(503u16), b"abcde".to_vec()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n", false).is_err());
    }
}
