//! One module per endpoint (DESIGN §4).

pub mod discovery;
pub mod health;
pub mod jwks;
pub mod metrics;
pub mod token;
