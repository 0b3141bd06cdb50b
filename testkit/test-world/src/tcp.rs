//! The tests' side of a node's TCP services: a free port for a node's
//! range, and a client of a line-based service (the `tcp-relay` test
//! component).

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, ToSocketAddrs};

/// How long a [`LineClient`] waits for a line or for the end of its
/// connection.
const WAIT: Duration = Duration::from_secs(10);

/// A port on 127.0.0.1 free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client connection of a TCP service, reading lines.
pub struct LineClient {
    /// The connection's reading half (public, like the writing half, for
    /// a test that writes from another task).
    pub reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    /// The connection's writing half.
    pub writer: tokio::net::tcp::OwnedWriteHalf,
}

impl LineClient {
    /// Connects to `addr`.
    pub async fn connect(addr: impl ToSocketAddrs) -> Self {
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        Self {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// Connects and waits until the relay echoes `<name> joined`: the
    /// client is then one of the relay's.
    pub async fn joined(addr: impl ToSocketAddrs, name: &str) -> Self {
        let mut c = Self::connect(addr).await;
        c.send(&format!("{name} joined")).await;
        assert_eq!(c.line().await, format!("{name} joined"));
        c
    }

    /// Sends `line` and a newline.
    pub async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next line, or `None` at the end of the connection; panics if
    /// neither comes within 10 s.
    pub async fn next_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .expect("a line in time")
            .ok()?;
        (n > 0).then(|| line.trim_end().to_string())
    }

    /// The next line, which must come within 10 s.
    pub async fn line(&mut self) -> String {
        self.next_line().await.expect("a line, not the end")
    }

    /// Waits for the end of the connection; how long it took.
    pub async fn closed(&mut self) -> Duration {
        let started = Instant::now();
        let mut buf = [0u8; 256];
        loop {
            match tokio::time::timeout(WAIT, self.reader.read(&mut buf)).await {
                Err(_) => panic!("the connection stayed open"),
                Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
                Ok(Ok(_)) => {}
            }
        }
    }
}
