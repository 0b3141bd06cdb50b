//! Per-service metrics, exported on the daemon's metrics endpoint under
//! `provider_node_service_*`, each labelled `service="<id>"`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a per-service metric.
pub type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// What the service host counts. Cheap to clone (shared counters).
#[derive(Clone)]
pub struct ServiceMetrics {
    /// Requests answered, by service and status class (`2xx`...`5xx`).
    pub requests: Family<Labels, Counter>,
    /// Requests the host answered with an error, by service and kind
    /// (`busy`, `too_large`, `timeout`, `out_of_fuel`, `out_of_memory`,
    /// `trap`, `guest_error`, `body_cut`).
    pub errors: Family<Labels, Counter>,
    /// Time to the response head, seconds, by service.
    pub latency: Family<Labels, Histogram, fn() -> Histogram>,
    /// Request body bytes read by the guest, by service.
    pub bytes_in: Family<Labels, Counter>,
    /// Response body bytes sent, by service.
    pub bytes_out: Family<Labels, Counter>,
    /// Fuel burnt by requests, by service.
    pub fuel: Family<Labels, Counter>,
    /// Services the host runs.
    pub services_running: Gauge,
    /// Ingress connections open.
    pub connections: Gauge,
    /// Ingress connections refused at the connection cap.
    pub connections_refused: Counter,
    /// Requests for no running service (404).
    pub unknown_service: Counter,
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            fuel: Family::default(),
            services_running: Gauge::default(),
            connections: Gauge::default(),
            connections_refused: Counter::default(),
            unknown_service: Counter::default(),
        }
    }
}

impl ServiceMetrics {
    /// Registers every metric in `registry` (the daemon's, prefix
    /// `provider_node`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "service_requests",
            "Service requests answered, by status class",
            self.requests.clone(),
        );
        registry.register(
            "service_errors",
            "Service requests the host answered with an error, by kind",
            self.errors.clone(),
        );
        registry.register(
            "service_request_seconds",
            "Time to a service response's head",
            self.latency.clone(),
        );
        registry.register(
            "service_bytes_in",
            "Request body bytes read by services",
            self.bytes_in.clone(),
        );
        registry.register(
            "service_bytes_out",
            "Response body bytes sent by services",
            self.bytes_out.clone(),
        );
        registry.register(
            "service_fuel",
            "Fuel burnt by service requests",
            self.fuel.clone(),
        );
        registry.register(
            "services_running",
            "Services the host runs",
            self.services_running.clone(),
        );
        registry.register(
            "ingress_connections",
            "Ingress connections open",
            self.connections.clone(),
        );
        registry.register(
            "ingress_connections_refused",
            "Ingress connections refused at the connection cap",
            self.connections_refused.clone(),
        );
        registry.register(
            "ingress_unknown_service",
            "Ingress requests for no running service",
            self.unknown_service.clone(),
        );
    }

    /// The metrics alone, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("provider_node");
        self.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The labels of service `id`.
pub(super) fn service(id: u64) -> Labels {
    vec![("service", id.to_string())]
}

/// The labels of service `id` and a second label.
pub(super) fn with(id: u64, key: &'static str, value: &str) -> Labels {
    vec![("service", id.to_string()), (key, value.to_string())]
}
