//! The canisters' `/metrics` pages: Prometheus text written by
//! `ic-metrics-encoder`.
//!
//! Each sample carries the time the page was read as its timestamp, and its
//! value as a float (Prometheus values are float64; token amounts are exact
//! below 2^53).

use ic_metrics_encoder::MetricsEncoder;
use market_api::HttpResponse;

/// The content type of a Prometheus text page.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// A metrics page being written.
pub struct MetricsPage(MetricsEncoder<Vec<u8>>);

/// Writing to memory cannot fail.
const IN_MEMORY: &str = "writing metrics to memory";

impl MetricsPage {
    /// An empty page read at `now_ns` (IC time in nanoseconds).
    pub fn new(now_ns: u64) -> Self {
        let now_millis = i64::try_from(now_ns / 1_000_000).unwrap_or(i64::MAX);
        MetricsPage(MetricsEncoder::new(Vec::new(), now_millis))
    }

    /// A gauge with one unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: u128) {
        self.0
            .encode_gauge(name, value as f64, help)
            .expect(IN_MEMORY);
    }

    /// A counter with one unlabelled sample.
    pub fn counter(&mut self, name: &str, help: &str, value: u128) {
        self.0
            .encode_counter(name, value as f64, help)
            .expect(IN_MEMORY);
    }

    /// A gauge with one sample per set of labels (its header even when
    /// there are no samples).
    pub fn gauge_vec<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, u128)>,
    ) {
        let mut builder = self.0.gauge_vec(name, help).expect(IN_MEMORY);
        for (labels, value) in samples {
            builder = builder.value(&labels, value as f64).expect(IN_MEMORY);
        }
    }

    /// The page's text.
    pub fn finish(self) -> String {
        String::from_utf8(self.0.into_inner()).expect("metrics text is UTF-8")
    }

    /// The page as a `200` answer to `GET /metrics`.
    pub fn into_response(self) -> HttpResponse {
        HttpResponse::text(200, CONTENT_TYPE, self.finish())
    }
}
