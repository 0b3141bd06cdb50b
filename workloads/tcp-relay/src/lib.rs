//! A line relay over raw TCP: a `wasi:cli` command (it exports
//! `wasi:cli/run`) that uses `wasi:sockets`, the shape of a chat server or a
//! game server's lobby.
//!
//! It listens on the port in env `PORT`, on the address in env `LISTEN`
//! (default `0.0.0.0`), and sends each line a client writes to every
//! connected client, the writer included: with one client connected it is a
//! line echo. Lines end with `\n`; a connection closing with a partial line
//! pending relays it with a `\n` added.
//!
//! Everything it holds is bounded: at most [`MAX_CLIENTS`] connections
//! (later ones are told `full` and closed), lines of at most [`MAX_LINE`]
//! bytes (a longer one closes its writer's connection), and at most
//! [`MAX_QUEUED`] lines waiting for a slow reader (past that the reader is
//! dropped, so one stalled client can't hold the others' memory).
//!
//! It writes one line to stderr when it listens (`tcp-relay listening on
//! ADDR`) and one when it fails; it exits with an error when `PORT` is
//! missing or the listen fails.

use futures_lite::future;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use wstd::io::{AsyncRead, AsyncWrite};
use wstd::iter::AsyncIterator;
use wstd::net::{TcpListener, TcpStream};

/// Most connections served at once.
pub const MAX_CLIENTS: usize = 64;
/// Longest line relayed, in bytes, its `\n` included.
pub const MAX_LINE: usize = 64 * 1024;
/// Most lines queued for one client before it is dropped as too slow.
pub const MAX_QUEUED: usize = 256;

struct Relay;

impl wasip2::exports::cli::run::Guest for Relay {
    fn run() -> Result<(), ()> {
        wstd::runtime::block_on(serve()).map_err(|e| log(&format!("tcp-relay: {e}")))
    }
}

wasip2::cli::command::export!(Relay);

/// Writes a line to the host's stderr (`println!` goes nowhere on this
/// target).
fn log(line: &str) {
    let stderr = wasip2::cli::stderr::get_stderr();
    for chunk in format!("{line}\n").as_bytes().chunks(4096) {
        if stderr.blocking_write_and_flush(chunk).is_err() {
            return;
        }
    }
}

async fn serve() -> Result<(), String> {
    let env = wasip2::cli::environment::get_environment();
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let port: u16 = var("PORT")
        .ok_or("env PORT is not set")?
        .parse()
        .map_err(|_| "env PORT is not a port number")?;
    let host = var("LISTEN").unwrap_or_else(|| "0.0.0.0".to_owned());
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    log(&format!("tcp-relay listening on {local}"));

    let clients: Clients = Rc::default();
    let mut incoming = listener.incoming();
    while let Some(stream) = incoming.next().await {
        let Ok(stream) = stream else { continue };
        if clients.borrow().len() >= MAX_CLIENTS {
            let _ = (&stream).write_all(b"full\n").await;
            continue;
        }
        let client = Rc::new(Client {
            stream,
            outbox: RefCell::default(),
            waker: Cell::new(None),
            reader: Cell::new(None),
            closed: Cell::new(false),
        });
        clients.borrow_mut().push(client.clone());
        wstd::runtime::spawn(write_loop(client.clone())).detach();
        wstd::runtime::spawn(read_loop(client, clients.clone())).detach();
    }
    Ok(())
}

type Clients = Rc<RefCell<Vec<Rc<Client>>>>;

/// One connection: its reader task relays what it reads, its writer task
/// drains `outbox`, so lines from several writers never interleave.
struct Client {
    stream: TcpStream,
    outbox: RefCell<VecDeque<Rc<[u8]>>>,
    /// The writer task, waiting for a line or the close.
    waker: Cell<Option<Waker>>,
    /// The reader task, waiting for input or the close.
    reader: Cell<Option<Waker>>,
    closed: Cell<bool>,
}

impl Client {
    fn wake_writer(&self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Ends both tasks; the last of them to finish drops the stream, which
    /// shuts the connection down.
    fn close(&self) {
        self.closed.set(true);
        self.outbox.borrow_mut().clear();
        self.wake_writer();
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
    }

    /// Resolves once the connection is closed.
    async fn closing(&self) {
        poll_fn(|cx| {
            if self.closed.get() {
                Poll::Ready(())
            } else {
                self.reader.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

async fn read_loop(client: Rc<Client>, clients: Clients) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let read = async { Some((&client.stream).read(&mut buf).await) };
        let closed = async {
            client.closing().await;
            None
        };
        let n = match future::or(read, closed).await {
            None | Some(Ok(0)) | Some(Err(_)) => break,
            Some(Ok(n)) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Rc<[u8]> = pending.drain(..=end).collect::<Vec<u8>>().into();
            broadcast(&clients, line);
        }
        if pending.len() >= MAX_LINE {
            pending.clear();
            break;
        }
    }
    if !pending.is_empty() && !client.closed.get() {
        pending.push(b'\n');
        broadcast(&clients, pending.into());
    }
    client.close();
    clients.borrow_mut().retain(|c| !Rc::ptr_eq(c, &client));
}

/// Queues `line` for every open client, dropping those whose queue is full.
fn broadcast(clients: &Clients, line: Rc<[u8]>) {
    for client in clients.borrow().iter() {
        if client.closed.get() {
            continue;
        }
        let full = client.outbox.borrow().len() >= MAX_QUEUED;
        if full {
            client.close();
        } else {
            client.outbox.borrow_mut().push_back(line.clone());
            client.wake_writer();
        }
    }
}

async fn write_loop(client: Rc<Client>) {
    loop {
        let next = poll_fn(|cx| {
            if client.closed.get() {
                return Poll::Ready(None);
            }
            match client.outbox.borrow_mut().pop_front() {
                Some(line) => Poll::Ready(Some(line)),
                None => {
                    client.waker.set(Some(cx.waker().clone()));
                    Poll::Pending
                }
            }
        })
        .await;
        let Some(line) = next else { break };
        if (&client.stream).write_all(&line).await.is_err() {
            client.close();
            break;
        }
    }
}
