//! One module per endpoint (DESIGN §4).

pub mod account;
pub mod authorize;
pub mod consent;
pub mod discovery;
pub mod health;
pub mod introspect;
pub mod jwks;
pub mod login;
pub mod logout;
pub mod metrics;
pub mod revoke;
pub mod token;
pub mod userinfo;
