//! `application/x-www-form-urlencoded` bodies as OAuth reads them.
//!
//! RFC 6749 §3.1 and §3.2: request and response parameters must not be included more than once,
//! and parameters sent without a value are treated as omitted. The exceptions are parameters whose
//! own specification allows repeats (RFC 8707 `resource`, RFC 8693 `audience`).

use std::collections::HashMap;

/// A parsed form: each name at most once, empty values dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormParams {
    values: HashMap<String, Vec<String>>,
}

/// Parameters that may legitimately be repeated (RFC 8707 §2, RFC 8693 §2.1).
pub const REPEATABLE: [&str; 2] = ["resource", "audience"];

/// Why a form body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// RFC 6749 §3.2: a parameter appeared more than once.
    Duplicate(String),
}

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Duplicate(name) => write!(f, "parameter `{name}` is repeated"),
        }
    }
}

impl FormParams {
    /// Parses a form body. Percent-decoding never fails (invalid sequences are kept literally).
    ///
    /// # Errors
    /// [`FormError::Duplicate`] when a name occurs twice, even if one occurrence is empty.
    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        let mut values = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in form_urlencoded::parse(body) {
            let repeatable = REPEATABLE.contains(&name.as_ref());
            if !seen.insert(name.clone().into_owned()) && !repeatable {
                return Err(FormError::Duplicate(name.into_owned()));
            }
            if !value.is_empty() {
                values
                    .entry(name.into_owned())
                    .or_insert_with(Vec::new)
                    .push(value.into_owned());
            }
        }
        Ok(Self { values })
    }

    /// The value of a parameter, if present and non-empty.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(|v| v.first()).map(String::as_str)
    }

    /// Removes and returns a parameter (the first value of a repeatable one).
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.values.remove(name).and_then(|v| v.into_iter().next())
    }

    /// Removes and returns every value of a repeatable parameter.
    pub fn take_all(&mut self, name: &str) -> Vec<String> {
        self.values.remove(name).unwrap_or_default()
    }

    /// Inserts a parameter (used by tests and by callers merging sources).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.values.entry(name.into()).or_default().push(value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(body: &str, expected: Result<&[(&str, &str)], FormError>) {
        let actual = FormParams::parse(body.as_bytes());
        match (actual, expected) {
            (Ok(params), Ok(pairs)) => {
                assert_eq!(params.values.len(), pairs.len(), "{params:?}");
                for (name, value) in pairs {
                    assert_eq!(params.get(name), Some(*value));
                }
            }
            (actual, expected) => assert_eq!(actual.map(|_| ()), expected.map(|_| ())),
        }
    }

    #[test]
    fn parses_forms() {
        check("a=1&b=two+words", Ok(&[("a", "1"), ("b", "two words")]));
        check("a=%3D%26&b=", Ok(&[("a", "=&")]));
        check("a=1&a=2", Err(FormError::Duplicate("a".into())));
        check("a=&a=2", Err(FormError::Duplicate("a".into())));
        check("", Ok(&[]));
        check("%ZZ=1", Ok(&[("%ZZ", "1")]));
        check("resource=a&resource=b", Ok(&[("resource", "a")]));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::FormParams;

    proptest! {
        #[test]
        fn parsing_never_panics_and_keeps_single_values(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(params) = FormParams::parse(&body) {
                for (name, values) in &params.values {
                    prop_assert!(!values.is_empty());
                    prop_assert!(values.len() == 1 || super::REPEATABLE.contains(&name.as_str()));
                }
            }
        }
    }
}
