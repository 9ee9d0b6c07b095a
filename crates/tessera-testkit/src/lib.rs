//! Test support for Tessera.
//!
//! - [`MockClock`]: a [`Clock`] tests move by hand; clones share one time.
//! - [`seeded_rng`]: deterministic randomness for the core's `&mut dyn RngCore` parameters.
//! - [`temp_sqlite`]: a migrated SQLite storage in a temporary directory.
//! - [`contract`]: the storage contract suite every backend must pass ([`contract::run_all`]).
//! - [`postgres`]: a throwaway PostgreSQL database per test ([`postgres::TestDatabase`],
//!   [`postgres::with_test_database`]), driven by `TESSERA_TEST_DATABASE_URL`; without it the
//!   PostgreSQL tests are skipped with a loud banner, and with it an unreachable server fails them.
#![deny(missing_docs)]

pub mod contract;
pub mod postgres;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rand::SeedableRng;
use tessera_core::{Clock, Timestamp};
use tessera_storage::Storage as _;
use tessera_storage_sqlite::{SqliteOptions, SqliteStorage};

/// A clock that only moves when told. Cheap to clone; clones share the same time, so a test can
/// keep one and hand another to the code under test.
#[derive(Debug, Clone)]
pub struct MockClock(Arc<AtomicI64>);

impl MockClock {
    /// A clock stopped at `now`.
    #[must_use]
    pub fn new(now: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(now.0)))
    }

    /// Moves the clock forward by `seconds` (saturating).
    pub fn advance(&self, seconds: u64) {
        let step = i64::try_from(seconds).unwrap_or(i64::MAX);
        // The closure always returns `Some`, so this cannot fail.
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| Some(now.saturating_add(step)));
    }

    /// Sets the clock to `now` (backwards too, to simulate skew).
    pub fn set(&self, now: Timestamp) {
        self.0.store(now.0, Ordering::SeqCst);
    }
}

impl Clock for MockClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// A fast, deterministic RNG: the same `seed` always gives the same sequence.
#[must_use]
pub fn seeded_rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

/// A migrated [`SqliteStorage`] in a fresh temporary directory, deleted when the returned
/// [`tempfile::TempDir`] is dropped (keep it alive as long as the storage).
///
/// # Panics
/// When the directory or database cannot be created or migrated.
pub async fn temp_sqlite() -> (tempfile::TempDir, SqliteStorage) {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("creating a temporary directory failed: {error}"),
    };
    let storage = match SqliteStorage::open(&dir.path().join("tessera.db"), SqliteOptions::default()) {
        Ok(storage) => storage,
        Err(error) => panic!("opening a temporary SQLite database failed: {error}"),
    };
    if let Err(error) = storage.migrate().await {
        panic!("migrating a temporary SQLite database failed: {error}");
    }
    (dir, storage)
}
