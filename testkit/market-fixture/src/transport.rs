//! market-client's [`Transport`] over an in-process devnet shared behind a
//! mutex: how provider daemons and clients in tests and the demo reach the
//! canisters of a [`MarketFixture`](crate::MarketFixture).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use candid::Principal;
use devnet::{Devnet, IngressStatus};
use market_client::transport::{Call, Transport, TransportError};

/// Calls canisters on an in-process [`Devnet`] as `sender`.
///
/// Executions are synchronous CPU work, so each call runs on tokio's
/// blocking pool. An update is submitted as ingress, then the devnet is
/// ticked until the answer is there; if the answer waits for something in
/// the future (a timer, a deadline), the transport releases the lock and
/// polls again, leaving time to whoever drives the devnet's clock.
#[derive(Clone)]
pub struct DevnetTransport {
    devnet: Arc<Mutex<Devnet>>,
    sender: Principal,
    max_wait: Duration,
}

impl DevnetTransport {
    /// A transport calling as `sender`.
    pub fn new(devnet: Arc<Mutex<Devnet>>, sender: Principal) -> Self {
        Self {
            devnet,
            sender,
            max_wait: Duration::from_secs(60),
        }
    }

    /// How long (wall clock) an update may stay pending before the call
    /// fails with [`TransportError::Timeout`]; 60 s by default.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The shared devnet.
    pub fn devnet(&self) -> &Arc<Mutex<Devnet>> {
        &self.devnet
    }

    /// Runs `f` on the blocking pool with the locked devnet and `call` as
    /// the devnet takes it: canister, sender (this transport's), method and
    /// argument.
    async fn on_devnet<R: Send + 'static>(
        &self,
        call: Call<'_>,
        f: impl FnOnce(&mut Devnet, Principal, Principal, &str, Vec<u8>) -> R + Send + 'static,
    ) -> Result<R, TransportError> {
        let devnet = Arc::clone(&self.devnet);
        let sender = self.sender;
        let Call {
            canister,
            method,
            arg,
        } = call;
        let method = method.to_string();
        blocking(move || f(&mut lock(&devnet), canister, sender, &method, arg)).await
    }
}

/// Locks a shared devnet. A panic while holding the lock (a failed
/// assertion in another thread) leaves the devnet itself consistent: every
/// message is atomic, so later calls may go on.
pub(crate) fn lock(devnet: &Mutex<Devnet>) -> MutexGuard<'_, Devnet> {
    devnet
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The devnet's reject as ic-agent reports the IC's: with its error code
/// (`IC0207`...), which the client's hints follow.
fn reject(r: devnet::Reject) -> TransportError {
    TransportError::Reject {
        code: r.code,
        message: r.message,
        error_code: r.error_code.map(|e| e.to_string()),
    }
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, TransportError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TransportError::Network(format!("devnet call panicked: {e}")))
}

impl Transport for DevnetTransport {
    fn sender(&self) -> Principal {
        self.sender
    }

    async fn update(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        let id = self
            .on_devnet(call, |dn, canister, sender, method, arg| {
                dn.submit_call(canister, sender, method, arg)
            })
            .await?
            .map_err(reject)?;
        let started = std::time::Instant::now();
        loop {
            let devnet = Arc::clone(&self.devnet);
            let done = blocking(move || {
                let mut dn = lock(&devnet);
                if matches!(dn.ingress_status(id), IngressStatus::Pending) {
                    dn.tick();
                }
                match dn.ingress_status(id) {
                    IngressStatus::Pending => None,
                    // Done: `await_call` returns it at once and forgets it.
                    _ => Some(dn.await_call(id)),
                }
            })
            .await?;
            if let Some(result) = done {
                return result.map_err(reject);
            }
            if started.elapsed() > self.max_wait {
                return Err(TransportError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn query(&self, call: Call<'_>) -> Result<Vec<u8>, TransportError> {
        self.on_devnet(call, |dn, canister, sender, method, arg| {
            dn.query_call(canister, sender, method, arg)
        })
        .await?
        .map_err(reject)
    }

    async fn time_ns(&self) -> Result<u64, TransportError> {
        let devnet = Arc::clone(&self.devnet);
        blocking(move || lock(&devnet).time_nanos()).await
    }
}
