//! Wire types of Tessera: what goes over HTTP and nothing else.
//!
//! Requests are parsed once, at the edge, into these types; responses are serialised from them.
//! This crate has no policy and no I/O.
#![deny(missing_docs)]

pub mod authorize;
pub mod discovery;
pub mod error;
pub mod form;
pub mod jose;
pub mod token;

pub use error::ErrorCode;
pub use jose::JwsAlgorithm;
