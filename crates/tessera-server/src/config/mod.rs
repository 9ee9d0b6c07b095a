//! Configuration: a TOML file, then `TESSERA_…` environment overrides, then validation.
//!
//! Every field documents its meaning, unit and default; `deny_unknown_fields` makes a typo a
//! startup error naming the key path. Environment variables map to keys by lower-casing and
//! splitting on `__`: `TESSERA_SERVER__LISTEN=0.0.0.0:8080` sets `server.listen`. Values are read
//! as TOML values when they parse as one (`true`, `300`, `["a"]`), else as strings.
//! `TESSERA_CONFIG` names the file; variables starting `TESSERA_TEST_` belong to the test suite
//! and are ignored here.

mod sections;

use std::path::Path;

pub use sections::*;

/// A configuration problem, with the key path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("configuration file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A key is unknown or a value has the wrong type.
    #[error("configuration key `{key}`: {message}")]
    Key {
        /// The dotted key path.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Loads the file at `path` (if any), applies `TESSERA_…` overrides from `env`, and validates.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file or key that is wrong.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        match path {
            Some(path) => {
                let display = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: display.clone(),
                    source,
                })?;
                Self::parse(&text, &display, env)
            }
            None => Self::parse("", "(none)", env),
        }
    }

    /// Parses configuration text (`source` names it in errors), applies `TESSERA_…` overrides from
    /// `env`, and validates.
    ///
    /// # Errors
    /// [`ConfigError`] naming the source or key that is wrong.
    pub fn parse(
        text: &str,
        source: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut tree = text.parse::<toml::Table>().map_err(|e| ConfigError::Syntax {
            path: source.to_owned(),
            message: e.message().to_owned(),
        })?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("TESSERA_") else {
                continue;
            };
            if rest == "CONFIG" || rest.starts_with("TEST_") {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            insert(&mut tree, &path, parse_env_value(&value)).map_err(|message| ConfigError::Key {
                key: format!("{} (from {name})", path.join(".")),
                message,
            })?;
        }
        // A preset supplies defaults: the file and the environment override it key by key.
        if let Some(preset) = tree.get("preset").cloned() {
            let preset: Preset = serde_path_to_error::deserialize(preset).map_err(|e| ConfigError::Key {
                key: "preset".into(),
                message: e.inner().message().to_owned(),
            })?;
            let mut base: toml::Table = preset
                .settings()
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Key {
                    key: "preset".into(),
                    message: e.message().to_owned(),
                })?;
            merge(&mut base, tree);
            tree = base;
        }
        let config: Self =
            serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|e| ConfigError::Key {
                key: e.path().to_string(),
                message: e.inner().message().to_owned(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks relations between settings that types cannot express.
    ///
    /// # Errors
    /// [`ConfigError::Key`] naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, message: String| {
            Err(ConfigError::Key {
                key: key.to_owned(),
                message,
            })
        };
        let tokens = &self.tokens;
        if tokens.access_token_lifetime == 0 || tokens.access_token_lifetime > tokens.access_token_max_lifetime {
            return fail(
                "tokens.access_token_lifetime",
                format!(
                    "must be between 1 and tokens.access_token_max_lifetime ({})",
                    tokens.access_token_max_lifetime
                ),
            );
        }
        if self.refresh_tokens.reuse_grace_window > 60 {
            return fail("refresh_tokens.reuse_grace_window", "must be at most 60 seconds".into());
        }
        if self.server.max_body_bytes < 1024 {
            return fail("server.max_body_bytes", "must be at least 1024".into());
        }
        let issuer = self.issuer();
        let is_https = issuer.starts_with("https://");
        let is_http = issuer.starts_with("http://");
        if !(is_https || is_http) || issuer.contains(['?', '#']) || issuer.ends_with('/') {
            return fail(
                "server.issuer",
                format!("{issuer:?} must be an http(s) URL without query, fragment or trailing slash (RFC 8414 §2)"),
            );
        }
        self.validate_trusted_issuers(&issuer)?;
        if self.mode == Mode::Production {
            if self.server.issuer.is_none() || !is_https {
                return fail(
                    "server.issuer",
                    "production mode requires an explicit https issuer".into(),
                );
            }
            if self.keys.encryption_key.is_none() && self.keys.encryption_key_file.is_none() {
                return fail(
                    "keys.encryption_key",
                    "production mode requires a key-encryption key (keys.encryption_key or keys.encryption_key_file)"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// `[[token_exchange.trusted_issuers]]`: each names an issuer other than us, one source of keys
    /// and at least one algorithm; no issuer is listed twice.
    fn validate_trusted_issuers(&self, own_issuer: &str) -> Result<(), ConfigError> {
        let trusted_issuers = &self.token_exchange.trusted_issuers;
        for (index, trusted) in trusted_issuers.iter().enumerate() {
            let fail = |field: &str, message: String| {
                Err(ConfigError::Key {
                    key: format!("token_exchange.trusted_issuers[{index}].{field}"),
                    message,
                })
            };
            if trusted.issuer.is_empty() {
                return fail("issuer", "must not be empty".into());
            }
            // Our own tokens are validated by what we know of them (storage, revocation), never as
            // an external JWT: trusting our own issuer here would bypass that.
            if trusted.issuer == own_issuer {
                return fail("issuer", format!("{own_issuer:?} is this server's own issuer"));
            }
            if trusted_issuers[..index]
                .iter()
                .any(|earlier| earlier.issuer == trusted.issuer)
            {
                return fail("issuer", format!("{:?} is listed twice", trusted.issuer));
            }
            match (&trusted.jwks_uri, &trusted.jwks) {
                (Some(_), Some(_)) => return fail("jwks", "give jwks or jwks_uri, not both".into()),
                (None, None) => return fail("jwks_uri", "give jwks_uri or jwks".into()),
                (Some(uri), None) => {
                    if let Err(message) = check_jwks_uri(uri) {
                        return fail("jwks_uri", message);
                    }
                }
                (None, Some(jwks)) => {
                    let Some(keys) = jwks.get("keys").and_then(serde_json::Value::as_array) else {
                        return fail("jwks", "must be a JWK Set: an object with a \"keys\" array".into());
                    };
                    if !keys.iter().any(|jwk| tessera_jose::VerifyingKey::from_jwk(jwk).is_ok()) {
                        return fail("jwks", "holds no usable public signature key".into());
                    }
                }
            }
            if trusted.algorithms.is_empty() {
                return fail("algorithms", "must name at least one algorithm".into());
            }
            if trusted.audience.as_deref().is_some_and(str::is_empty) {
                return fail("audience", "must not be empty".into());
            }
            if trusted.subject_claim.is_empty() {
                return fail("subject_claim", "must not be empty".into());
            }
        }
        Ok(())
    }

    /// The issuer identifier: `server.issuer`, or `http://<server.listen>`.
    #[must_use]
    pub fn issuer(&self) -> String {
        self.server
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.server.listen))
    }
}

/// A trusted issuer's `jwks_uri`: https, or http to a loopback host (a local test or sidecar), since
/// keys fetched in the clear could be replaced by anyone on the path.
fn check_jwks_uri(uri: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(uri).map_err(|e| format!("{uri:?} is not a URL: {e}"))?;
    let is_loopback = match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(()),
        "http" if is_loopback => Ok(()),
        _ => Err(format!("{uri:?} must be an https URL (http only on a loopback host)")),
    }
}

/// Merges `over` into `base`, table by table; `over` wins.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(over_table)) => merge(base_table, over_table),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn parse_env_value(value: &str) -> toml::Value {
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

fn insert(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(inner) => insert(inner, rest, value),
                _ => Err(format!("`{first}` is not a section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        // One directory per call: tests run in parallel.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tessera-config-test-{}-{call}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join("tessera.toml");
        std::fs::write(&path, file).map_err(|e| e.to_string())?;
        Config::load(Some(&path), env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_design() -> Result<(), String> {
        let config = Config::load(None, Vec::new()).map_err(|e| e.to_string())?;
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.issuer(), "http://127.0.0.1:8080");
        assert_eq!(config.database.url, "sqlite://tessera.db");
        assert_eq!(config.tokens.access_token_lifetime, 300);
        assert_eq!(config.tokens.access_token_max_lifetime, 28_800);
        assert_eq!(config.tokens.id_token_lifetime, 300);
        assert_eq!(config.tokens.authorization_code_lifetime, 60);
        let rt = &config.refresh_tokens;
        assert_eq!(
            (rt.idle_timeout, rt.offline_idle_timeout, rt.offline_max_lifetime),
            (1800, 2_592_000, 0)
        );
        assert!(rt.rotation && rt.reuse_detection);
        assert_eq!((rt.max_reuse, rt.reuse_grace_window, rt.max_active_grants), (0, 0, 50));
        assert_eq!(config.sessions.max_lifetime, 36_000);
        Ok(())
    }

    #[track_caller]
    fn check_error(file: &str, env: &[(&str, &str)], expected: &str) {
        match load(file, env) {
            Ok(_) => panic!("expected an error containing {expected:?}"),
            Err(actual) => assert!(actual.contains(expected), "{actual:?} does not contain {expected:?}"),
        }
    }

    #[test]
    fn errors_name_the_key() {
        check_error(
            "[server]\nlistn = \"x\"\n",
            &[],
            "configuration key `server.listn`: unknown field `listn`",
        );
        check_error(
            "[tokens]\naccess_token_lifetime = \"long\"\n",
            &[],
            "`tokens.access_token_lifetime`",
        );
        check_error("", &[("TESSERA_REFRESH_TOKENS__BOGUS", "1")], "`refresh_tokens.bogus`");
        check_error(
            "[refresh_tokens]\nreuse_grace_window = 61\n",
            &[],
            "`refresh_tokens.reuse_grace_window`",
        );
        check_error("mode = \"production\"\n", &[], "`server.issuer`");
        check_error("[server]\nissuer = \"https://a.example/\"\n", &[], "`server.issuer`");
    }

    #[test]
    fn presets_give_defaults_that_settings_override() -> Result<(), String> {
        let config = load("preset = \"helseid\"\n[refresh_tokens]\nrotation = false\n", &[])?;
        assert_eq!(
            config.refresh_tokens.public_clients,
            tessera_core::refresh::PublicClientRefresh::Deny
        );
        assert!(!config.refresh_tokens.rotation, "explicit settings win over the preset");
        let config = load("", &[("TESSERA_PRESET", "ehealth")])?;
        assert_eq!(
            config.refresh_tokens.issuance,
            tessera_core::client::RefreshTokenIssuance::Always
        );
        check_error("preset = \"keycloak\"\n", &[], "`preset`");
        Ok(())
    }

    #[test]
    fn environment_overrides_file() -> Result<(), String> {
        let config = load(
            "[server]\nlisten = \"127.0.0.1:9000\"\n",
            &[
                ("TESSERA_SERVER__LISTEN", "127.0.0.1:9001"),
                ("TESSERA_REFRESH_TOKENS__ROTATION", "false"),
                ("TESSERA_TEST_DATABASE_URL", "ignored"),
            ],
        )?;
        assert_eq!(config.server.listen.port(), 9001);
        assert!(!config.refresh_tokens.rotation);
        Ok(())
    }

    const TRUSTED_JWK: &str = r#"{kty = "EC", crv = "P-256", kid = "k1", x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn trusted_issuers_parse_with_defaults() -> Result<(), String> {
        let config = load(
            &format!(
                "[[token_exchange.trusted_issuers]]\nissuer = \"https://idp.example\"\njwks_uri = \"https://idp.example/jwks\"\n\n\
                 [[token_exchange.trusted_issuers]]\nissuer = \"https://other.example\"\njwks = {{ keys = [{TRUSTED_JWK}] }}\n\
                 algorithms = [\"ES256\"]\naudience = \"https://us.example\"\nsubject_claim = \"email\"\n\
                 subject = \"pass_through\"\nmax_age = 0\nscopes = [\"read\"]\n"
            ),
            &[],
        )?;
        let [first, second] = config.token_exchange.trusted_issuers.as_slice() else {
            return Err("expected two trusted issuers".into());
        };
        assert_eq!(
            first.algorithms,
            [tessera_types::JwsAlgorithm::RS256, tessera_types::JwsAlgorithm::ES256]
        );
        assert_eq!(
            (first.subject_claim.as_str(), first.subject, first.max_age),
            ("sub", SubjectMapping::Username, 3600)
        );
        assert!(first.audience.is_none() && first.scopes.is_empty() && first.jwks.is_none());
        assert_eq!(second.subject, SubjectMapping::PassThrough);
        assert_eq!(
            second.jwks.as_ref().and_then(|jwks| jwks["keys"][0]["kid"].as_str()),
            Some("k1")
        );
        // The inline JWK Set may also be a string holding the JSON document.
        let config = load(
            "[[token_exchange.trusted_issuers]]\nissuer = \"https://idp.example\"\n\
             jwks = '{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\", \"y\": \"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}'\n",
            &[],
        )?;
        assert!(config.token_exchange.trusted_issuers[0].jwks.is_some());
        Ok(())
    }

    #[test]
    fn trusted_issuer_errors_name_the_key() {
        let issuer = |body: &str| format!("[[token_exchange.trusted_issuers]]\n{body}\n");
        let uri = "jwks_uri = \"https://idp.example/jwks\"";
        let key = "`token_exchange.trusted_issuers[0]";
        check_error(
            &issuer(&format!("issuer = \"\"\n{uri}")),
            &[],
            &format!("{key}.issuer`"),
        );
        check_error(
            &format!(
                "[server]\nissuer = \"https://us.example\"\n{}",
                issuer(&format!("issuer = \"https://us.example\"\n{uri}"))
            ),
            &[],
            &format!("{key}.issuer`: \"https://us.example\" is this server's own issuer"),
        );
        check_error(
            &format!(
                "{}{}",
                issuer(&format!("issuer = \"https://idp.example\"\n{uri}")),
                issuer(&format!("issuer = \"https://idp.example\"\n{uri}"))
            ),
            &[],
            "`token_exchange.trusted_issuers[1].issuer`: \"https://idp.example\" is listed twice",
        );
        check_error(
            &issuer("issuer = \"https://idp.example\""),
            &[],
            &format!("{key}.jwks_uri`"),
        );
        check_error(
            &issuer(&format!(
                "issuer = \"https://idp.example\"\n{uri}\njwks = {{ keys = [{TRUSTED_JWK}] }}"
            )),
            &[],
            &format!("{key}.jwks`: give jwks or jwks_uri, not both"),
        );
        for bad in [
            "http://idp.example/jwks",
            "ftp://127.0.0.1/jwks",
            "not a url",
            "http://127.0.0.1.example/jwks",
        ] {
            check_error(
                &issuer(&format!("issuer = \"https://idp.example\"\njwks_uri = \"{bad}\"")),
                &[],
                &format!("{key}.jwks_uri`"),
            );
        }
        for good in [
            "http://127.0.0.1:9000/jwks",
            "http://[::1]/jwks",
            "http://localhost:8080/jwks",
        ] {
            let loaded = load(
                &issuer(&format!("issuer = \"https://idp.example\"\njwks_uri = \"{good}\"")),
                &[],
            );
            assert!(loaded.is_ok(), "{good}: {loaded:?}");
        }
        check_error(
            &issuer("issuer = \"https://idp.example\"\njwks = { kty = \"EC\" }"),
            &[],
            &format!("{key}.jwks`: must be a JWK Set"),
        );
        check_error(
            &issuer("issuer = \"https://idp.example\"\njwks = { keys = [{ kty = \"oct\", k = \"c2VjcmV0\" }] }"),
            &[],
            &format!("{key}.jwks`: holds no usable public signature key"),
        );
        check_error(
            &issuer("issuer = \"https://idp.example\"\njwks = '{not json'"),
            &[],
            &format!("{key}.jwks`"),
        );
        check_error(
            &issuer(&format!("issuer = \"https://idp.example\"\n{uri}\nalgorithms = []")),
            &[],
            &format!("{key}.algorithms`: must name at least one algorithm"),
        );
        // `none` and HMAC cannot even be named.
        for alg in ["none", "HS256"] {
            check_error(
                &issuer(&format!(
                    "issuer = \"https://idp.example\"\n{uri}\nalgorithms = [\"{alg}\"]"
                )),
                &[],
                &format!("{key}.algorithms"),
            );
        }
        check_error(
            &issuer(&format!("issuer = \"https://idp.example\"\n{uri}\nsubject = \"email\"")),
            &[],
            &format!("{key}.subject`"),
        );
        check_error(
            &issuer(&format!(
                "issuer = \"https://idp.example\"\n{uri}\nsubject_claim = \"\""
            )),
            &[],
            &format!("{key}.subject_claim`"),
        );
        check_error(
            &issuer(&format!("issuer = \"https://idp.example\"\n{uri}\naudience = \"\"")),
            &[],
            &format!("{key}.audience`"),
        );
        check_error(
            &issuer(&format!("issuer = \"https://idp.example\"\n{uri}\nmax_age = -1")),
            &[],
            &format!("{key}.max_age`"),
        );
        check_error(
            &issuer(&format!("issuer = \"https://idp.example\"\n{uri}\njwks_url = \"x\"")),
            &[],
            &format!("{key}.jwks_url`: unknown field"),
        );
    }

    /// Every configuration key is documented in README.md's reference table, and every key there exists.
    #[test]
    fn readme_documents_every_key() -> Result<(), String> {
        fn leaves(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match value {
                    toml::Value::Table(inner) => leaves(&path, inner, out),
                    _ => out.push(path),
                }
            }
        }
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
            .map_err(|e| e.to_string())?;
        let documented: Vec<String> = readme
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split_once('`').map(|(key, _)| key.to_owned()))
            .filter(|key| !key.starts_with('/') && !key.contains(' '))
            .collect();
        let defaults = toml::Table::try_from(Config::default()).map_err(|e| e.to_string())?;
        let mut keys = Vec::new();
        leaves("", &defaults, &mut keys);
        // Options without a default are absent from the serialised defaults.
        keys.extend(["server.issuer", "keys.encryption_key", "keys.encryption_key_file"].map(str::to_owned));
        // The keys of one `[[token_exchange.trusted_issuers]]` table, documented as `…trusted_issuers[].<key>`.
        let trusted: TrustedIssuer = toml::from_str(
            "issuer = \"https://idp.example\"\njwks_uri = \"https://idp.example/jwks\"\naudience = \"x\"\n",
        )
        .map_err(|e| e.to_string())?;
        let trusted = toml::Table::try_from(trusted).map_err(|e| e.to_string())?;
        leaves("token_exchange.trusted_issuers[]", &trusted, &mut keys);
        keys.push("token_exchange.trusted_issuers[].jwks".to_owned());
        for key in &keys {
            assert!(documented.contains(key), "README.md does not document `{key}`");
        }
        for key in documented.iter().filter(|key| key.contains('.') || *key == "mode") {
            assert!(
                keys.contains(key),
                "README.md documents `{key}`, which is not a configuration key"
            );
        }
        Ok(())
    }
}
