//! Counting outcomes and latencies per worker, merging them, and the final report.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{Error, Options, Scenario};

/// How a request ended, when not with the 2xx the scenario needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An HTTP status other than the one expected.
    Status(u16),
    /// A 2xx without what the scenario needs next (a refresh token, a login form, a code).
    Unexpected,
    /// Connecting, sending or reading failed.
    Transport,
    /// No complete answer within `--timeout`.
    Timeout,
}

impl Outcome {
    /// The outcome's name in the report (and in `--record-tokens` lines).
    pub(crate) fn key(self) -> String {
        match self {
            Self::Status(status) => status.to_string(),
            Self::Unexpected => "unexpected_response".into(),
            Self::Transport => "transport_error".into(),
            Self::Timeout => "timeout".into(),
        }
    }
}

/// A failed request: its outcome and a line for humans.
#[derive(Debug)]
pub(crate) struct Failure {
    pub outcome: Outcome,
    pub detail: String,
}

impl Failure {
    pub(crate) fn unexpected(detail: String) -> Self {
        Self {
            outcome: Outcome::Unexpected,
            detail,
        }
    }

    pub(crate) fn transport(detail: String) -> Self {
        Self {
            outcome: Outcome::Transport,
            detail,
        }
    }

    pub(crate) fn timeout() -> Self {
        Self {
            outcome: Outcome::Timeout,
            detail: "timed out".into(),
        }
    }

    /// Whether the answer never arrived (a transport error or a timeout): the server may have
    /// acted on the request.
    pub(crate) fn is_lost(&self) -> bool {
        matches!(self.outcome, Outcome::Transport | Outcome::Timeout)
    }
}

/// What one worker (or all of them, merged) measured.
pub(crate) struct Stats {
    /// Latencies of measured requests, microseconds.
    histogram: Histogram<u64>,
    outcomes: BTreeMap<String, u64>,
    setup_failures: u64,
    first_error: Option<String>,
    last_answer: Option<Instant>,
}

/// The outcome key of a success.
const SUCCESS: &str = "2xx";

impl Stats {
    pub(crate) fn new(histogram: Histogram<u64>) -> Self {
        Self {
            histogram,
            outcomes: BTreeMap::new(),
            setup_failures: 0,
            first_error: None,
            last_answer: None,
        }
    }

    /// A measured request that started (or was scheduled) at `start` and ended at `end`.
    pub(crate) fn record(&mut self, start: Instant, end: Instant, result: Result<(), Failure>) {
        let micros = u64::try_from(end.duration_since(start).as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(micros.max(1));
        let key = match result {
            Ok(()) => SUCCESS.to_owned(),
            Err(failure) => {
                let key = failure.outcome.key();
                self.first_error.get_or_insert(failure.detail);
                key
            }
        };
        *self.outcomes.entry(key).or_default() += 1;
        self.last_answer = self.last_answer.max(Some(end));
    }

    /// A chain whose set-up (the password grant) failed.
    pub(crate) fn setup_failed(&mut self, failure: Failure) {
        self.setup_failures += 1;
        self.first_error
            .get_or_insert_with(|| format!("set-up: {}", failure.detail));
    }

    pub(crate) fn merge(&mut self, other: Self) -> Result<(), Error> {
        self.histogram
            .add(&other.histogram)
            .map_err(|e| Error::Histogram(format!("{e:?}")))?;
        for (key, count) in other.outcomes {
            *self.outcomes.entry(key).or_default() += count;
        }
        self.setup_failures += other.setup_failures;
        self.first_error = self.first_error.take().or(other.first_error);
        self.last_answer = self.last_answer.max(other.last_answer);
        Ok(())
    }
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    /// `closed` or `open`.
    pub mode: &'static str,
    pub concurrency: usize,
    /// Open loop: the scheduled requests per second.
    pub rate: Option<f64>,
    pub warmup_seconds: f64,
    /// From the end of the warm-up to the last measured answer.
    pub measured_seconds: f64,
    /// Measured requests (for `login`, whole flows).
    pub requests: u64,
    pub throughput: f64,
    pub latency_ms: Latency,
    /// Measured requests by outcome: `2xx`, a status code, `unexpected_response`,
    /// `transport_error`, `timeout`.
    pub outcomes: BTreeMap<String, u64>,
    /// Refresh chains whose password grant failed (not measured requests).
    pub setup_failures: u64,
    /// Failed measured requests plus set-up failures.
    pub errors: u64,
    /// The first failure seen, for a first look at what went wrong.
    pub first_error: Option<String>,
}

impl Report {
    pub(crate) fn new(options: &Options, warmup: Duration, measure_from: Instant, stats: Stats) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let histogram = &stats.histogram;
        let measured = stats
            .last_answer
            .map_or(Duration::ZERO, |last| last.saturating_duration_since(measure_from));
        let requests = histogram.len();
        let succeeded = stats.outcomes.get(SUCCESS).copied().unwrap_or(0);
        Self {
            scenario: options.scenario,
            mode: if options.rate.is_some() { "open" } else { "closed" },
            concurrency: options.concurrency,
            rate: options.rate,
            warmup_seconds: warmup.as_secs_f64(),
            measured_seconds: measured.as_secs_f64(),
            requests,
            throughput: if measured.is_zero() {
                0.0
            } else {
                requests as f64 / measured.as_secs_f64()
            },
            latency_ms: Latency {
                p50: ms(histogram.value_at_quantile(0.5)),
                p90: ms(histogram.value_at_quantile(0.9)),
                p99: ms(histogram.value_at_quantile(0.99)),
                p999: ms(histogram.value_at_quantile(0.999)),
                max: ms(histogram.max()),
                mean: histogram.mean() / 1000.0,
            },
            errors: requests - succeeded + stats.setup_failures,
            outcomes: stats.outcomes,
            setup_failures: stats.setup_failures,
            first_error: stats.first_error,
        }
    }

    /// Measured requests answered with the 2xx the scenario needed.
    #[must_use]
    pub fn succeeded(&self) -> u64 {
        self.outcomes.get(SUCCESS).copied().unwrap_or(0)
    }

    /// The loud error line (`!!! ERRORS: …`), if anything failed.
    #[must_use]
    pub fn error_line(&self) -> Option<String> {
        if self.errors == 0 {
            return None;
        }
        let failed: Vec<String> = self
            .outcomes
            .iter()
            .filter(|(key, _)| *key != SUCCESS)
            .map(|(key, count)| format!("{key} ×{count}"))
            .collect();
        Some(format!(
            "!!! ERRORS: {} of {} requests failed ({}), {} set-up failures; first: {}",
            self.requests - self.succeeded(),
            self.requests,
            if failed.is_empty() {
                "none".into()
            } else {
                failed.join(", ")
            },
            self.setup_failures,
            self.first_error.as_deref().unwrap_or("?"),
        ))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scenario = self.scenario.name();
        let rate = self.rate.map(|rate| format!(" at {rate} req/s")).unwrap_or_default();
        writeln!(
            f,
            "{scenario}: {} loop{rate}, {} connections, {:.2} s measured after {:.1} s warm-up",
            self.mode, self.concurrency, self.measured_seconds, self.warmup_seconds
        )?;
        writeln!(f, "  requests    {} ({:.1} req/s)", self.requests, self.throughput)?;
        let l = &self.latency_ms;
        writeln!(
            f,
            "  latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  (mean {:.2})",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        )?;
        let outcomes: Vec<String> = self.outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(f, "  outcomes    {}", outcomes.join(", "))?;
        if let Some(line) = self.error_line() {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}
