//! HTTPS outcalls: the management canister's `http_request` made by the
//! devnet against a server of the test, the transform applied, the IC's
//! price taken from the attached cycles, and the IC's rejects.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use candid::{Decode, Encode, Nat, Principal};
use common::*;
use devnet::{Devnet, RejectCode, http_request_cost};
use ic_management_canister_types::{HttpHeader, HttpRequestResult};

/// A local HTTP server answering by path; it records each request line.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

fn serve() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let line = head.lines().next().unwrap_or("").to_string();
            log.lock().unwrap().push(head.clone());
            let path = line.split(' ').nth(1).unwrap_or("");
            let reply: Vec<u8> = match path {
                "/ok" => {
                    b"HTTP/1.1 200 OK\r\nX-Noise: 12345\r\nContent-Length: 5\r\n\r\nhello".to_vec()
                }
                "/chunked" => {
                    b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n0\r\n\r\n"
                        .to_vec()
                }
                "/big" => {
                    let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_vec();
                    r.extend(std::iter::repeat_n(b'x', 5000));
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            };
            let _ = s.write_all(&reply);
        }
    });
    Server { port, seen }
}

/// The probe's `outcall`: GET `url`, optionally through its transform with
/// `context`, attaching `cycles` (default: the IC's price).
fn outcall(
    dn: &mut Devnet,
    probe: Principal,
    url: &str,
    max: Option<u64>,
    context: Option<&[u8]>,
    cycles: Option<u128>,
) -> CallOutcome {
    let (out,): (CallOutcome,) = dn
        .update_args(
            probe,
            user(),
            "outcall",
            (url.to_string(), max, context.map(<[u8]>::to_vec), cycles),
        )
        .expect("outcall");
    out
}

fn reply(out: CallOutcome) -> HttpRequestResult {
    match out {
        CallOutcome::Reply(bytes) => Decode!(&bytes, HttpRequestResult).unwrap(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn rejected(out: CallOutcome) -> (u32, String) {
    match out {
        CallOutcome::Reject(code, message) => (code, message),
        other => panic!("expected a reject, got {other:?}"),
    }
}

#[test]
fn an_outcall_reaches_the_server_and_its_answer_passes_the_transform() {
    let server = serve();
    let (mut dn, [probe]) = with_probes(["p"]);
    let url = format!("http://127.0.0.1:{}/ok", server.port);

    let r = reply(outcall(
        &mut dn,
        probe,
        &url,
        Some(1_000),
        Some(b"ctx"),
        None,
    ));
    assert_eq!(r.status, Nat::from(200u16));
    assert_eq!(r.body, b"hello");
    // The transform replaced the headers: only what it chose reaches the caller.
    assert_eq!(
        r.headers,
        vec![HttpHeader {
            name: "context".into(),
            value: "ctx".into()
        }]
    );
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].starts_with("GET /ok HTTP/1.1\r\n"), "{}", seen[0]);
    assert!(
        seen[0].contains(&format!("Host: 127.0.0.1:{}", server.port)),
        "{}",
        seen[0]
    );

    // Without a transform the caller sees the server's headers.
    let r = reply(outcall(&mut dn, probe, &url, Some(1_000), None, None));
    assert!(
        r.headers
            .iter()
            .any(|h| h.name == "X-Noise" && h.value == "12345")
    );

    // A chunked answer is put together; a non-2xx status is a reply too.
    let url = format!("http://127.0.0.1:{}/chunked", server.port);
    let r = reply(outcall(&mut dn, probe, &url, Some(1_000), None, None));
    assert_eq!((r.status, r.body), (Nat::from(503u16), b"busy".to_vec()));
}

#[test]
fn an_outcall_costs_the_ics_price_and_too_few_cycles_are_refused() {
    let server = serve();
    let (mut dn, [probe]) = with_probes(["p"]);
    let url = format!("http://127.0.0.1:{}/ok", server.port);
    let context = b"c".as_slice();
    let size = (url.len() + "outcall_transform".len() + context.len()) as u64;
    let price = http_request_cost(size, 1_000);
    assert_eq!(
        price,
        (3_000_000 + 60_000 * 13 + 400 * u128::from(size) + 800 * 1_000) * 13
    );

    dn.reset_cycles_burned();
    let before = dn.cycle_balance(probe).unwrap();
    // One cycle short: refused, every cycle back, the server never asked.
    let (code, message) = rejected(outcall(
        &mut dn,
        probe,
        &url,
        Some(1_000),
        Some(context),
        Some(price - 1),
    ));
    assert_eq!(code, RejectCode::CanisterReject as u32);
    assert!(message.contains("cycles are required"), "{message}");
    assert_eq!(
        dn.cycle_balance(probe).unwrap(),
        before - running_costs(&dn, probe)
    );
    assert_eq!(dn.cycles_burned(probe).unwrap().outcalls, 0);
    assert!(server.seen.lock().unwrap().is_empty());

    // Twice the price attached: the price is kept, the rest refunded.
    reply(outcall(
        &mut dn,
        probe,
        &url,
        Some(1_000),
        Some(context),
        Some(2 * price),
    ));
    assert_eq!(
        dn.cycle_balance(probe).unwrap(),
        before - price - running_costs(&dn, probe)
    );
    assert_eq!(dn.cycles_burned(probe).unwrap().outcalls, price);
}

#[test]
fn outcalls_fail_as_on_the_ic() {
    let server = serve();
    let (mut dn, [probe]) = with_probes(["p"]);

    // A response over max_response_bytes: SYS_FATAL.
    let big = format!("http://127.0.0.1:{}/big", server.port);
    let (code, message) = rejected(outcall(&mut dn, probe, &big, Some(1_000), None, None));
    assert_eq!(code, RejectCode::SysFatal as u32, "{message}");
    // Under the limit it is a reply.
    let r = reply(outcall(&mut dn, probe, &big, Some(10_000), None, None));
    assert_eq!(r.body.len(), 5_000);

    // No server listening: SYS_TRANSIENT.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/ok");
    let (code, message) = rejected(outcall(&mut dn, probe, &url, Some(1_000), None, None));
    assert_eq!(code, RejectCode::SysTransient as u32, "{message}");

    // A limit above the IC's 2 MB: refused.
    let ok = format!("http://127.0.0.1:{}/ok", server.port);
    let (code, _) = rejected(outcall(&mut dn, probe, &ok, Some(2_000_001), None, None));
    assert_eq!(code, RejectCode::CanisterReject as u32);

    // Only canisters may make outcalls.
    let err = dn
        .update_call(
            Principal::management_canister(),
            user(),
            "http_request",
            Encode!().unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.code, RejectCode::CanisterReject);
}
