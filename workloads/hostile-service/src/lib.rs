//! A hostile `wasi:http/proxy` service: each route misbehaves in one way the
//! provider node's service host must contain (fuel, memory, response size,
//! wall-clock time), while `/healthz` and `/` answer normally so a test can
//! show the host still serves it afterwards.
//!
//! Routes (any method; anything else answers 404):
//! - `/healthz`: 200 `ok`; `/`: 200 `hostile`
//! - `/loop`: spins forever without touching the host
//! - `/alloc`: grows memory without bound, 1 MiB at a time, touching each page
//! - `/flood`: 200 with a body that never ends, in chunks of 64 KiB
//! - `/sleep`: waits an hour on a `wasi:clocks` pollable

use futures_lite::stream;
use wstd::http::body::{Body, Bytes};
use wstd::http::{Error, Request, Response, StatusCode};
use wstd::time::Duration;

/// The size of each chunk of `/flood`'s endless body.
const FLOOD_CHUNK: usize = 64 * 1024;

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok"),
        "/" => text(StatusCode::OK, "hostile"),
        "/loop" => {
            let mut x: u64 = 1;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        "/alloc" => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            loop {
                held.push(vec![0xa5; 1 << 20]);
                std::hint::black_box(&held);
            }
        }
        "/flood" => {
            let chunk = Bytes::from(vec![b'x'; FLOOD_CHUNK]);
            Ok(Response::builder()
                .header("content-type", "application/octet-stream")
                .body(Body::from_stream(stream::repeat(chunk)))?)
        }
        "/sleep" => {
            wstd::task::sleep(Duration::from_secs(3600)).await;
            text(StatusCode::OK, "woke")
        }
        _ => text(StatusCode::NOT_FOUND, ""),
    }
}

fn text(status: StatusCode, body: &str) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(body.to_owned()))?)
}
