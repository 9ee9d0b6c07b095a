//! The single integration-test binary: the real server on an ephemeral port, real HTTP, real
//! storage (SQLite files; PostgreSQL when `TESSERA_TEST_DATABASE_URL` is set), real third-party
//! clients (`oauth2`, `jsonwebtoken`, `reqwest`) and the real `tessera` binary for the CLI.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly by design")]

mod account;
mod admin;
mod admin_fuzz;
mod audit;
mod authorization_code;
mod bench_smoke;
mod browser;
mod browser_flow;
mod cli;
mod client_credentials;
mod discovery;
mod errors;
mod external_issuer;
mod keys;
mod login_flow;
mod nodes;
mod operations;
mod presets;
mod refresh_properties;
mod refresh_token;
mod revocation;
mod support;
mod tidy;
mod token_exchange;
mod token_exchange_interop;
