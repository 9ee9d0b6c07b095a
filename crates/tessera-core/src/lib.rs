//! Tessera's pure core: domain types, token formats and policy decisions.
//!
//! **Architecture Invariant:** this crate does no I/O and never reads the clock or the operating
//! system's randomness: time comes in as [`Timestamp`] and randomness as `&mut dyn RngCore`.
//! That is what lets every decision be tested with a table and a seeded RNG.

pub mod authorize;
pub mod client;
pub mod grant;
pub mod grant_record;
pub mod keys;
pub mod pkce;
#[cfg(test)]
mod properties;
pub mod refresh;
pub mod scope;
pub mod secret;
pub mod session;
pub mod time;
pub mod token;
pub mod user;

pub use client::{AccessTokenFormat, AuthMethod, Client, ClientSettings, ClientType};
pub use grant_record::{AuthorizationCode, Grant, GrantKind};
pub use scope::Scope;
pub use session::SsoSession;
pub use time::{Clock, Timestamp};
pub use token::{TokenHash, TokenKind};
pub use user::{User, UserClaims};
