//! Scopes (RFC 6749 §3.3): space-delimited, case-sensitive, order-insensitive sets of tokens.

use std::collections::BTreeSet;

/// A set of scope tokens. Kept sorted so that the wire form is canonical.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope(BTreeSet<String>);

/// A scope string that breaks RFC 6749 §3.3's grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope token {0:?} contains a character outside %x21 / %x23-5B / %x5D-7E")]
pub struct InvalidScope(pub String);

impl Scope {
    /// Parses a space-delimited scope string. Repeated spaces are tolerated; empty is the empty set.
    ///
    /// # Errors
    /// [`InvalidScope`] when a token has a character outside RFC 6749 §3.3's `scope-token`.
    pub fn parse(value: &str) -> Result<Self, InvalidScope> {
        let mut set = BTreeSet::new();
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            let valid = token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
            if !valid {
                return Err(InvalidScope(token.to_owned()));
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    /// Builds a scope from tokens that are already known to be valid (configuration, storage).
    pub fn from_tokens<I: IntoIterator<Item = S>, S: Into<String>>(tokens: I) -> Self {
        Self(tokens.into_iter().map(Into::into).collect())
    }

    /// Whether no scope tokens are present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `token` is in the set.
    #[must_use]
    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    /// The tokens of `self` that are not in `other`.
    #[must_use]
    pub fn missing_from(&self, other: &Self) -> Vec<String> {
        self.0.difference(&other.0).cloned().collect()
    }

    /// The tokens, in canonical (sorted) order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for token in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Result<&str, &str>) {
        let actual = Scope::parse(input).map(|s| s.to_string()).map_err(|e| e.0);
        assert_eq!(actual, expected.map(str::to_owned).map_err(str::to_owned));
    }

    #[test]
    fn parses_scopes() {
        check("read write", Ok("read write"));
        check("write  read read", Ok("read write"));
        check("", Ok(""));
        check("a\"b", Err("a\"b"));
        check("caf\u{e9}", Err("caf\u{e9}"));
        check("a\\b c", Err("a\\b"));
    }

    #[test]
    fn missing_tokens() {
        let asked = Scope::parse("a b c").unwrap_or_default();
        let allowed = Scope::parse("a c").unwrap_or_default();
        assert_eq!(asked.missing_from(&allowed), vec!["b".to_owned()]);
        assert!(allowed.missing_from(&asked).is_empty());
    }
}
