//! Integration tests of the storage backends against the contract suite, plus backend-specific
//! behaviour (SQLite group commit and durability, PostgreSQL migration races).

mod clock;
mod postgres;
mod sqlite;

/// Test result: failures are errors (`?`) or panics from the contract suite.
type TestResult = Result<(), Box<dyn std::error::Error>>;
