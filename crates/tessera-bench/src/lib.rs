//! `tessera-bench`: a load generator for Tessera, lean enough to share a small machine with the
//! server under test.
//!
//! # Scenarios
//!
//! Every scenario authenticates the bench client with `client_secret_basic`.
//!
//! - **`refresh`**: one refresh-token *chain* per worker. A chain starts with the password grant
//!   (`scope=offline_access`, not measured) and then POSTs `grant_type=refresh_token` with the RT
//!   from its own previous response, so every measured request is a real rotation and no token is
//!   ever presented twice. A failed refresh is counted, and the chain starts again with a fresh RT:
//!   the worker's next step is the password grant. A failed password grant is counted as a set-up
//!   failure and the worker waits 100 ms before trying again, so the workers of a server that is
//!   gone fail fast (connection refused) without hammering it, and the run still ends on time.
//! - **`client-credentials`**: `grant_type=client_credentials`.
//! - **`introspect`**: `POST /introspect` of an access token the bench client obtained by client
//!   credentials (not measured; one per worker, fetched again after a minute so it never expires
//!   mid-run); the answer must say `"active":true`. The token's format is the client's: create the
//!   client with `--token-format opaque` to measure opaque tokens (a lookup), or JWT (a signature
//!   check and a revocation lookup).
//! - **`login`**: the code flow as a browser without JavaScript does it, with a fresh cookie jar each
//!   time: `GET /authorize` (PKCE S256) → the login page → `POST /login` with its hidden fields and
//!   the CSRF cookie → the redirect to `--redirect-uri` with a `code` → `POST /token`. One measured
//!   request is the whole flow (three HTTP requests, one argon2 verification).
//!
//! # Loops
//!
//! Each worker owns one HTTP/1.1 keep-alive connection (reconnecting after a transport error), so
//! `--concurrency` bounds the requests in flight. With several `--url`s, worker *i* connects to the
//! URL *i* mod *n*, for its whole run (as a load balancer that pins connections would).
//!
//! In the **closed loop** (the default) a worker sends its next request as soon as the previous one
//! is answered: this finds the throughput ceiling, but a slow server also slows the load down. In
//! the **open loop** (`--rate R`) request *i* is scheduled at `start + i/R` whatever happens, any
//! free worker takes the next slot, and a request whose slot passed while every worker was busy is
//! measured from its *scheduled* time, so queueing behind a stall is counted (no coordinated
//! omission). A worker that was idle until its slot is woken by tokio's millisecond timer, up to
//! ~2 ms late; that lateness is the generator's, so such a request is measured from when it was
//! sent (counting only lateness beyond 2 ms).
//!
//! # What is measured
//!
//! Requests that start (or are scheduled) during `--warmup` are sent but not counted. After it,
//! each request's latency goes into an HDR histogram in microseconds, and its outcome is counted:
//! `2xx`, each other status code, `unexpected_response` (a 2xx without what the scenario needs next,
//! such as a refresh token or a code), `transport_error` and `timeout`. Chain set-up failures (the
//! password grant) are counted apart. The run ends after `--duration` measured seconds or
//! `--requests` measured requests, whichever comes first; throughput is the measured requests over
//! the time from the end of the warm-up to the last measured answer.
//!
//! # Recording tokens
//!
//! For tests only: with `--record-tokens PATH` (the `refresh` scenario), the file is created (or
//! emptied) and every worker appends one line per refresh-token event of its chains, in order,
//! whether or not the request was measured:
//!
//! ```text
//! <worker> granted <token>            the password grant's 200: a new chain starts with <token>
//! <worker> received <token>           a refresh's 200 carried the new <token>
//! <worker> lost <token> <outcome>     presenting <token> got no answer (transport_error, timeout):
//!                                     the server may have rotated it
//! <worker> refused <token> <outcome>  presenting <token> was answered without a new token: a
//!                                     status code, or unexpected_response (a 2xx without an RT)
//! ```
//!
//! `<worker>` is the worker's index (0-based; its URL is the `<worker>` mod *n*-th). After a `lost`
//! or `refused` line the chain is over, and the worker's next token is a `granted` one. Lines are
//! buffered per worker and written out in whole lines at least every 100 ms while the worker is
//! busy, before it pauses after a failed set-up, and at its end, so a run that is stopped leaves
//! all but its last moments. The file holds live refresh tokens: it is a secret.
//!
//! The binary runs everything on one thread (a current-thread tokio runtime) so that it takes at
//! most one core from the server.

mod http;
mod record;
mod report;
mod scenario;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

pub use report::{Latency, Report};

use crate::http::{Conn, Target};
use crate::record::{TokenFile, TokenLog};
use crate::report::Stats;
use crate::scenario::{Chain, Flow};

/// What to exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Refresh-token rotation chains (password grant to start each chain).
    Refresh,
    /// The client-credentials grant.
    ClientCredentials,
    /// The browser code flow: authorize, login page, login, code exchange.
    Login,
    /// Introspection (RFC 7662) of an access token the client got by client credentials.
    Introspect,
}

impl Scenario {
    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Refresh => "refresh",
            Self::ClientCredentials => "client-credentials",
            Self::Login => "login",
            Self::Introspect => "introspect",
        }
    }
}

/// Command-line options (also the library's input).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "tessera-bench", version, about = "Load generator for the Tessera server")]
pub struct Options {
    /// The scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// The server's base URL (http only). Repeat `--url` to spread the workers over several
    /// servers: worker i connects to the (i mod n)-th URL, one keep-alive connection each.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub url: Vec<String>,
    /// Workers, each with one keep-alive connection: the most requests in flight.
    #[arg(long, short = 'c', default_value_t = 32)]
    pub concurrency: usize,
    /// Open loop: schedule this many requests per second at fixed intervals.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring starts (not counted).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Stop after this many measured requests (or at the end of --duration, if sooner).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Seconds before a request counts as a timeout.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// The bench client's id.
    #[arg(long, default_value = "bench")]
    pub client_id: String,
    /// The bench client's secret.
    #[arg(long, env = "TESSERA_BENCH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: String,
    /// The user for the password grant (`refresh`) and the login form (`login`).
    #[arg(long, default_value = "bench")]
    pub username: String,
    /// That user's password (needed by `refresh` and `login`).
    #[arg(long, env = "TESSERA_BENCH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// A redirect URI registered for the client (needed by `login`).
    #[arg(long)]
    pub redirect_uri: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit 0 even when requests failed.
    #[arg(long)]
    pub allow_errors: bool,
    /// For tests only (`refresh`): write every refresh token the chains receive, and the token a
    /// failed refresh presented, to this file (created or emptied first), one line each:
    /// `<worker> granted|received <token>`, `<worker> lost|refused <token> <outcome>`. The file
    /// holds live refresh tokens: never use this against a server with real users.
    #[arg(long, value_name = "PATH")]
    pub record_tokens: Option<PathBuf>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option is missing or out of range.
    #[error("{0}")]
    Option(String),
    /// The URL's host did not resolve.
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, std::io::Error),
    /// The histogram could not be created or merged.
    #[error("histogram: {0}")]
    Histogram(String),
    /// The `--record-tokens` file could not be created or written.
    #[error("--record-tokens {0}: {1}")]
    Record(String, std::io::Error),
    /// A worker task panicked or was cancelled.
    #[error("a worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

/// Runs the scenario `options` describe and reports what was measured.
///
/// # Errors
///
/// Invalid options, an unresolvable URL, a `--record-tokens` file that could not be written, or a
/// worker that panicked. Failed *requests* are not errors: they are counted in the [`Report`].
pub async fn run(options: &Options) -> Result<Report, Error> {
    let seconds = |name: &str, value: f64| {
        if value.is_finite() && value >= 0.0 {
            Ok(Duration::from_secs_f64(value))
        } else {
            Err(Error::Option(format!("--{name} must be a number of seconds ≥ 0")))
        }
    };
    let (warmup, duration, timeout) = (
        seconds("warmup", options.warmup)?,
        seconds("duration", options.duration)?,
        seconds("timeout", options.timeout)?,
    );
    if options.concurrency == 0 {
        return Err(Error::Option("--concurrency must be at least 1".into()));
    }
    if options.rate.is_some_and(|rate| !(rate.is_finite() && rate > 0.0)) {
        return Err(Error::Option("--rate must be > 0".into()));
    }
    if options.url.is_empty() {
        return Err(Error::Option("--url: at least one is needed".into()));
    }
    if options.record_tokens.is_some() && options.scenario != Scenario::Refresh {
        return Err(Error::Option(
            "--record-tokens records refresh chains: the refresh scenario only".into(),
        ));
    }
    let mut targets = Vec::with_capacity(options.url.len());
    for url in &options.url {
        targets.push(Arc::new(Target::resolve(url, timeout).await?));
    }
    let flow = Arc::new(Flow::new(options)?);
    let tokens = options.record_tokens.as_deref().map(TokenFile::create).transpose()?;
    let histogram =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| Error::Histogram(e.to_string()))?;

    let start = Instant::now();
    let schedule = Arc::new(Schedule {
        start,
        measure_from: start + warmup,
        end: start + warmup + duration,
        rate: options.rate,
        requests: options.requests,
        next_slot: AtomicU64::new(0),
        claimed: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..options.concurrency)
        .map(|index| {
            let stats = Stats::new(histogram.clone());
            let log = tokens.as_ref().map(|file| TokenLog::new(index, Arc::clone(file)));
            tokio::spawn(worker(
                Arc::clone(&schedule),
                Arc::clone(&flow),
                Conn::new(Arc::clone(&targets[index % targets.len()])),
                Chain::new(log),
                stats,
            ))
        })
        .collect();
    let mut total = Stats::new(histogram);
    for worker in workers {
        total.merge(worker.await?)?;
    }
    if let Some(tokens) = &tokens {
        tokens.check()?;
    }
    Ok(Report::new(options, warmup, schedule.measure_from, total))
}

/// How late the timer may wake a worker for its slot without that counting as latency.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// When requests start, shared by the workers.
struct Schedule {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    rate: Option<f64>,
    requests: Option<u64>,
    /// Open loop: the next slot to take.
    next_slot: AtomicU64,
    /// Measured requests started so far.
    claimed: AtomicU64,
}

impl Schedule {
    /// The next request's slot and the instant its latency is measured from (waiting for the slot
    /// in the open loop); `None` once the run is over.
    async fn next_start(&self) -> Option<(Instant, Instant)> {
        let Some(rate) = self.rate else {
            let now = Instant::now();
            return (now < self.end).then_some((now, now));
        };
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let at = self.start + Duration::from_secs_f64(slot as f64 / rate);
        if at >= self.end {
            return None;
        }
        if at <= Instant::now() {
            // Every worker was busy at `at`: the wait since then is the server's, and counts.
            return Some((at, at));
        }
        // Idle until the slot: tokio's millisecond timer wakes us up to ~2 ms late, which is the
        // generator's lateness, not the server's; only lateness beyond TIMER_SLACK counts.
        tokio::time::sleep_until(at.into()).await;
        Some((at, Instant::now().min(at + TIMER_SLACK)))
    }

    /// Takes one measured request from the `--requests` budget; false once it is spent.
    fn claim(&self) -> bool {
        self.requests
            .is_none_or(|limit| self.claimed.fetch_add(1, Ordering::Relaxed) < limit)
    }
}

/// One worker: one connection, one chain at a time, requests until the schedule ends.
async fn worker(schedule: Arc<Schedule>, flow: Arc<Flow>, mut conn: Conn, mut chain: Chain, mut stats: Stats) -> Stats {
    loop {
        if let Err(failure) = flow.prepare(&mut conn, &mut chain).await {
            stats.setup_failed(failure);
            if Instant::now() >= schedule.end {
                break;
            }
            chain.flush_log();
            // Do not hammer a server that refuses the set-up.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let Some((slot, start)) = schedule.next_start().await else {
            break;
        };
        let is_measured = slot >= schedule.measure_from;
        if is_measured && !schedule.claim() {
            break;
        }
        let result = flow.run_once(&mut conn, &mut chain).await;
        if is_measured {
            stats.record(start, Instant::now(), result);
        }
    }
    chain.flush_log();
    stats
}
