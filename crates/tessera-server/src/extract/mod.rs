//! Request extractors: the OAuth form body and client authentication.

pub mod client_auth;
pub mod form;
