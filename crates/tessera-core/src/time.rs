//! Time as the core sees it: whole seconds since the Unix epoch, passed in by the caller.

use serde::{Deserialize, Serialize};

/// Seconds since 1970-01-01T00:00:00Z. JWT `exp`/`iat` and every expiry use this resolution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// This instant plus `seconds` (saturating).
    #[must_use]
    pub fn plus(self, seconds: u64) -> Self {
        Self(self.0.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)))
    }

    /// Whole seconds from `self` until `later`, or 0 if `later` is not after `self`.
    #[must_use]
    pub fn seconds_until(self, later: Self) -> u64 {
        u64::try_from(later.0.saturating_sub(self.0)).unwrap_or(0)
    }
}

/// A source of the current time. `SystemClock` lives in the server; tests use a mock.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}
