//! The wall clock: the one place that reads the system time.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tessera_core::{Clock, Timestamp};

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "SystemClock is the one allowed reader of the wall clock"
    )]
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX))
    }
}

/// The order of a token generated now ([`tessera_core::TokenKind::generate`]): microseconds since
/// the Unix epoch, read from the wall clock once per process and advanced by the monotonic clock
/// after that, so it never goes back while the process runs (a wall-clock step does not reorder
/// tokens). Nodes' orders interleave as their clocks do; only index locality depends on it, never
/// correctness.
#[must_use]
pub fn token_order() -> u64 {
    static START: OnceLock<(u64, Instant)> = OnceLock::new();
    let (start_micros, start) = START.get_or_init(|| {
        #[expect(
            clippy::disallowed_methods,
            reason = "the wall clock anchors token orders once per process"
        )]
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        (u64::try_from(since_epoch.as_micros()).unwrap_or(0), Instant::now())
    });
    let elapsed = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    start_micros.saturating_add(elapsed)
}
