//! `GET /metrics`: Prometheus text exposition of request counts (by endpoint, grant type and
//! status) and a latency histogram (by endpoint), recorded by the `record` middleware.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Set by the token endpoint so the metrics can be split by grant type.
#[derive(Debug, Clone, Copy)]
pub struct GrantTypeLabel(pub &'static str);

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The counters. One short lock per request; contention is negligible next to the request's work.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    fn observe(&self, endpoint: &str, grant_type: &'static str, status: u16, seconds: f64) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry((endpoint.to_owned(), grant_type, status)).or_default() += 1;
        }
        if let Ok(mut latency) = self.latency.lock() {
            let histogram = latency.entry(endpoint.to_owned()).or_default();
            for (count, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
                if seconds <= bound {
                    *count += 1;
                }
            }
            histogram.sum += seconds;
            histogram.count += 1;
        }
    }

    /// The Prometheus text format (version 0.0.4).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP tessera_http_requests_total HTTP requests by endpoint, grant type and status.\n");
        out.push_str("# TYPE tessera_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((endpoint, grant_type, status), count) in requests.iter() {
                let _ = writeln!(out, "tessera_http_requests_total{{endpoint=\"{endpoint}\",grant_type=\"{grant_type}\",status=\"{status}\"}} {count}");
            }
        }
        out.push_str("# HELP tessera_http_request_duration_seconds HTTP request latency by endpoint.\n");
        out.push_str("# TYPE tessera_http_request_duration_seconds histogram\n");
        if let Ok(latency) = self.latency.lock() {
            for (endpoint, histogram) in latency.iter() {
                for (count, bound) in histogram.counts.iter().zip(BUCKETS) {
                    let _ = writeln!(out, "tessera_http_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"{bound}\"}} {count}");
                }
                let _ = writeln!(
                    out,
                    "tessera_http_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {}",
                    histogram.count
                );
                let _ = writeln!(
                    out,
                    "tessera_http_request_duration_seconds_sum{{endpoint=\"{endpoint}\"}} {}",
                    histogram.sum
                );
                let _ = writeln!(
                    out,
                    "tessera_http_request_duration_seconds_count{{endpoint=\"{endpoint}\"}} {}",
                    histogram.count
                );
            }
        }
        out
    }
}

/// Middleware: times each request and counts it under its matched route.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let grant_type = response
        .extensions()
        .get::<GrantTypeLabel>()
        .map_or("", |label| label.0);
    state.metrics.observe(
        &endpoint,
        grant_type,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`.
pub async fn get(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
