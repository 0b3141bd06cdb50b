//! The daemon's Prometheus metrics and the HTTP endpoint serving them.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Everything the daemon counts. Cheap to clone (shared counters).
#[derive(Clone, Default)]
pub struct Metrics {
    /// Jobs fetched or running in the sandbox now.
    pub jobs_running: Gauge,
    /// Reserved slots held for buyers' reservations (heartbeated, busy or
    /// idle), service slots included.
    pub slots_held: Gauge,
    /// Jobs whose result the matcher accepted (any outcome).
    pub jobs_completed: Counter,
    /// Jobs that ended without an accepted result, or with a failing outcome
    /// (trap, out of fuel, invalid module, non-zero exit...).
    pub jobs_failed: Counter,
    /// Heartbeat items the matcher accepted.
    pub heartbeats_sent: Counter,
    /// Heartbeat items sent after their interval was due (within grace).
    pub heartbeats_late: Counter,
    /// Heartbeat items the matcher refused.
    pub heartbeats_refused: Counter,
    /// Heartbeat batches or other canister calls that failed (retried).
    pub call_errors: Counter,
    /// Replies from the matcher the node could not read (undecodable,
    /// refused, too large) and jobs it could not read for good (handed
    /// back); each is also logged.
    pub unreadable_replies: Counter,
    /// Intervals of reserved slots the matcher paid for (by accepted
    /// heartbeats).
    pub intervals_paid: Counter,
    /// Fuel of one-off jobs (and jobs run in reserved slots) the matcher
    /// accepted, by heartbeats and results: what a fuel-billed job is paid
    /// for.
    pub fuel_paid: Counter,
    /// What those intervals and that fuel paid this provider, in e8s. Fuel
    /// pay is pending until the job's challenge window closes, and goes
    /// back to the buyer if the attempt delivers no result.
    pub earnings_e8s: Counter,
    /// The provider's claimable balance in the escrow, in e8s (refreshed
    /// with the assignments).
    pub claimable_e8s: Gauge,
    /// Service replicas started on leased slots (again after a restart).
    pub replicas_started: Counter,
    /// Service slots handed back because their replica could not run: no
    /// ingress, an unusable component, refused by the service host, or an
    /// endpoint the matcher refused.
    pub replicas_failed: Counter,
    /// The service host's metrics (ingress, per-service requests).
    pub services: crate::service::ServiceMetrics,
}

impl Metrics {
    /// A registry with every metric under the `provider_node` prefix.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("provider_node");
        r.register(
            "jobs_running",
            "Jobs being fetched or run",
            self.jobs_running.clone(),
        );
        r.register(
            "slots_held",
            "Reserved slots held for reservations",
            self.slots_held.clone(),
        );
        r.register(
            "jobs_completed",
            "Jobs whose result the matcher accepted",
            self.jobs_completed.clone(),
        );
        r.register(
            "jobs_failed",
            "Jobs that failed or were given up",
            self.jobs_failed.clone(),
        );
        r.register(
            "heartbeats_sent",
            "Heartbeat items accepted by the matcher",
            self.heartbeats_sent.clone(),
        );
        r.register(
            "heartbeats_late",
            "Heartbeat items sent after their due time",
            self.heartbeats_late.clone(),
        );
        r.register(
            "heartbeats_refused",
            "Heartbeat items refused by the matcher",
            self.heartbeats_refused.clone(),
        );
        r.register(
            "call_errors",
            "Canister calls that failed and were retried",
            self.call_errors.clone(),
        );
        r.register(
            "unreadable_replies",
            "Matcher replies or jobs the node could not read",
            self.unreadable_replies.clone(),
        );
        r.register(
            "intervals_paid",
            "Reserved slots' intervals paid by accepted heartbeats",
            self.intervals_paid.clone(),
        );
        r.register(
            "fuel_paid",
            "Fuel accepted by heartbeats and results",
            self.fuel_paid.clone(),
        );
        r.register(
            "earnings_e8s",
            "Earnings paid by accepted heartbeats and results (fuel pay pending its challenge window), e8s",
            self.earnings_e8s.clone(),
        );
        r.register(
            "claimable_e8s",
            "Claimable balance in the escrow, e8s",
            self.claimable_e8s.clone(),
        );
        r.register(
            "replicas_started",
            "Service replicas started on leased slots",
            self.replicas_started.clone(),
        );
        r.register(
            "replicas_failed",
            "Service slots handed back because their replica could not run",
            self.replicas_failed.clone(),
        );
        self.services.register(&mut r);
        r
    }

    /// Counts one reserved slot's interval paid at `price`.
    pub fn count_interval(&self, price: market_api::Tokens) {
        self.intervals_paid.inc();
        self.earnings_e8s
            .inc_by(u64::try_from(price).unwrap_or(u64::MAX));
    }

    /// Counts `fuel` newly accepted from a job, which `earned` pays.
    pub fn count_fuel(&self, fuel: u64, earned: market_api::Tokens) {
        self.fuel_paid.inc_by(fuel);
        self.earnings_e8s
            .inc_by(u64::try_from(earned).unwrap_or(u64::MAX));
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry()).expect("writing to a String cannot fail");
        out
    }
}

/// Serves `GET /metrics` on `addr` until `shutdown` resolves. Returns the
/// bound address (port 0 picks a free one).
pub async fn serve(
    metrics: Metrics,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let metrics = Arc::new(metrics);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = Arc::clone(&metrics);
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_endpoint_serves_the_counters() {
        let m = Metrics::default();
        m.jobs_completed.inc();
        m.heartbeats_sent.inc_by(3);
        m.jobs_running.set(2);
        let (addr, task) = serve(m, "127.0.0.1:0".parse().unwrap(), std::future::pending())
            .await
            .unwrap();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(
            body.contains("provider_node_jobs_completed_total 1"),
            "{body}"
        );
        assert!(
            body.contains("provider_node_heartbeats_sent_total 3"),
            "{body}"
        );
        assert!(body.contains("provider_node_jobs_running 2"), "{body}");
        task.abort();
    }
}
