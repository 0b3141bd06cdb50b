//! A hostile TCP service: a `wasi:cli` command that tries one thing the
//! provider's TCP host must refuse, then tells every client what happened.
//!
//! Env `MODE` picks the attempt, `TARGET` its address:
//! - `bind`: listen on `TARGET` (another port, or the wildcard address);
//! - `connect`: open a connection to `TARGET` and read one line from it;
//! - `spin`: loop forever without calling the host (no listener);
//! - anything else: no attempt (`none`).
//!
//! Then it listens on env `LISTEN`:`PORT` like any service and writes the
//! outcome to each client as one line, `MODE TARGET: ok[: LINE]` or
//! `MODE TARGET: refused: ERROR`, and closes the connection.

use std::net::SocketAddr;
use wstd::io::{AsyncRead, AsyncWrite};
use wstd::iter::AsyncIterator;
use wstd::net::{TcpListener, TcpStream};

/// Longest line read from a `connect` target.
const MAX_LINE: usize = 1024;

struct Hostile;

impl wasip2::exports::cli::run::Guest for Hostile {
    fn run() -> Result<(), ()> {
        wstd::runtime::block_on(serve()).map_err(|e| log(&format!("tcp-hostile: {e}")))
    }
}

wasip2::cli::command::export!(Hostile);

fn log(line: &str) {
    let stderr = wasip2::cli::stderr::get_stderr();
    let _ = stderr.blocking_write_and_flush(format!("{line}\n").as_bytes());
}

async fn serve() -> Result<(), String> {
    let env = wasip2::cli::environment::get_environment();
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mode = var("MODE").unwrap_or_else(|| "none".to_owned());
    let target = var("TARGET").unwrap_or_default();
    let outcome = match mode.as_str() {
        "bind" => match TcpListener::bind(&target).await {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("refused: {e}"),
        },
        "connect" => connect(&target).await,
        "spin" => {
            let mut x: u64 = 1;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        _ => "ok".to_owned(),
    };
    let report = format!("{mode} {target}: {outcome}\n");

    let port = var("PORT").ok_or("env PORT is not set")?;
    let host = var("LISTEN").unwrap_or_else(|| "0.0.0.0".to_owned());
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let mut incoming = listener.incoming();
    while let Some(stream) = incoming.next().await {
        if let Ok(stream) = stream {
            let _ = (&stream).write_all(report.as_bytes()).await;
        }
    }
    Ok(())
}

/// Connects to `target` and reads one line from it.
async fn connect(target: &str) -> String {
    let Ok(addr) = target.parse::<SocketAddr>() else {
        return "refused: not an address".to_owned();
    };
    let stream = match TcpStream::connect_addr(addr).await {
        Ok(s) => s,
        Err(e) => return format!("refused: {e}"),
    };
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    while line.len() < MAX_LINE && !line.contains(&b'\n') {
        match (&stream).read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => line.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&line);
    format!("ok: {}", text.lines().next().unwrap_or(""))
}
