//! The real `tessera` binary: scriptable client and key commands, configuration errors, and
//! `serve` answering HTTP and shutting down gracefully on SIGTERM.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "TESSERA_DATABASE__URL",
                format!("sqlite://{}", self.dir.path().join("tessera.db").display()),
            );
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed with JSON on stdout.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
    }

    /// Runs a command that must fail with a one-line reason containing `expected`.
    fn fails(&self, args: &[&str], expected: &str) {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr:?} lacks {expected:?}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one-line reason: {stderr:?}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn client_commands_are_scriptable() {
    let cli = Cli::new();
    let created = cli.json(&[
        "client",
        "create",
        "--json",
        "--id",
        "billing",
        "--grant-type",
        "client_credentials",
        "--scope",
        "read",
        "--audience",
        "https://api.example",
    ]);
    assert_eq!(created["client_id"], "billing");
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tsr_cs_"), "{secret}");

    let shown = cli.json(&["client", "show", "billing", "--json"]);
    assert!(shown.get("client_secret").is_none(), "the secret is shown once only");
    assert_eq!(shown["scopes"], serde_json::json!(["read"]));
    assert!(!String::from_utf8_lossy(&cli.run(&["client", "show", "billing"]).stdout).contains(&secret));

    let updated = cli.json(&[
        "client",
        "update",
        "billing",
        "--json",
        "--scope",
        "read",
        "--scope",
        "write",
        "--token-format",
        "opaque",
        "--introspection",
        "true",
    ]);
    assert_eq!(updated["scopes"], serde_json::json!(["read", "write"]));
    assert_eq!(updated["access_token_format"], "opaque");
    assert_eq!(updated["introspection"], true);
    assert_eq!(
        updated["grant_types"],
        serde_json::json!(["client_credentials"]),
        "unchanged lists are kept"
    );

    let rotated = cli.json(&["client", "rotate-secret", "billing", "--json"]);
    assert_ne!(rotated["client_secret"].as_str().unwrap(), secret);

    cli.json(&[
        "client",
        "create",
        "--json",
        "--id",
        "spa",
        "--type",
        "public",
        "--redirect-uri",
        "https://app.example/cb",
    ]);
    let list = cli.json(&["client", "list", "--json"]);
    let ids: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["billing", "spa"]);

    cli.fails(&["client", "create", "--id", "billing"], "already exists");
    cli.fails(
        &["client", "update", "spa", "--introspection", "true"],
        "introspection needs a confidential client",
    );
    cli.fails(
        &[
            "client",
            "create",
            "--type",
            "public",
            "--auth-method",
            "client-secret-basic",
        ],
        "public client",
    );
    cli.fails(
        &[
            "client",
            "create",
            "--type",
            "public",
            "--grant-type",
            "client_credentials",
        ],
        "confidential",
    );
    cli.fails(&["client", "create", "--auth-method", "private-key-jwt"], "jwks");
    cli.fails(&["client", "create", "--redirect-uri", "/relative"], "redirect URI");
    cli.fails(&["client", "show", "nobody"], "not found");

    // Settings without options of their own go through --settings, which takes `show --json` output.
    let mut settings = cli.json(&["client", "show", "billing", "--json"]);
    settings["refresh_tokens"] = serde_json::json!({ "rotation": false, "max_reuse": 2 });
    let updated = cli.json(&[
        "client",
        "update",
        "billing",
        "--json",
        "--settings",
        &settings.to_string(),
        "--name",
        "Billing",
    ]);
    assert_eq!(
        updated["refresh_tokens"],
        serde_json::json!({ "rotation": false, "max_reuse": 2 })
    );
    assert_eq!(updated["name"], "Billing");
    assert_eq!(updated["scopes"], serde_json::json!(["read", "write"]));
    cli.fails(
        &[
            "client",
            "update",
            "billing",
            "--settings",
            r#"{"client_type":"confidential","bogus":1}"#,
        ],
        "bogus",
    );

    let deleted = cli.json(&["client", "delete", "spa", "--json"]);
    assert_eq!(deleted["deleted"], "spa");
    cli.fails(&["client", "delete", "spa"], "not found");
}

#[test]
fn key_commands_and_migrate() {
    let cli = Cli::new();
    let migrated = cli.json(&["migrate", "--json"]);
    assert_eq!(
        migrated["applied"],
        serde_json::json!([1, 2, 3, 4, 5, 6, 7, 8]),
        "a fresh database gets every migration"
    );
    let migrated = cli.json(&["migrate", "--json"]);
    assert_eq!(migrated["applied"], serde_json::json!([]), "and only once");
    let keys = cli.json(&["keys", "list", "--json"]);
    let states: Vec<_> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["algorithm"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(states.len(), 3, "{keys}");
    assert!(states.iter().all(|(_, state)| state == "active"));

    let rotated = cli.json(&["keys", "rotate", "--algorithm", "ES256", "--json"]);
    assert_eq!(rotated[0]["algorithm"], "ES256");
    let keys = cli.json(&["keys", "list", "--json"]);
    let mut es256: Vec<_> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["algorithm"] == "ES256")
        .map(|k| k["state"].as_str().unwrap().to_owned())
        .collect();
    es256.sort();
    assert_eq!(
        es256,
        ["pending", "retiring"],
        "old key retiring (still published), new key published but not signing"
    );
    assert!(
        Path::new(&cli.dir.path().join("tessera.kek")).exists(),
        "development mode generates a key-encryption key file"
    );
}

#[test]
fn configuration_errors_name_the_key() {
    let cli = Cli::new();
    let output = cli
        .command(&["migrate"])
        .env("TESSERA_SERVER__LISTN", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("server.listn"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    std::fs::write(cli.dir.path().join("bad.toml"), "[tokens]\naccess_token_lifetme = 5\n").unwrap();
    cli.fails(&["--config", "bad.toml", "migrate"], "tokens.access_token_lifetme");
    cli.fails(&["--config", "missing.toml", "migrate"], "missing.toml");

    let output = cli
        .command(&["migrate"])
        .env("TESSERA_MODE", "production")
        .env("TESSERA_SERVER__ISSUER", "https://id.example")
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "production without a key-encryption key must refuse"
    );
}

#[tokio::test]
async fn serve_answers_and_stops_gracefully_on_sigterm() {
    let cli = Cli::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let child = cli
        .command(&["serve"])
        .env("TESSERA_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("TESSERA_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..600 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "server did not become ready");

    // The CLI works beside a running server, on the same database.
    let created = cli.json(&[
        "client",
        "create",
        "--json",
        "--grant-type",
        "client_credentials",
        "--scope",
        "read",
    ]);
    let id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    let response = http
        .post(format!("{base}/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit after SIGTERM: {:?}\n{stderr}",
        output.status
    );
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        first.contains(&format!("127.0.0.1:{port}")) && first.contains("sqlite://"),
        "first log line says where it listens and which database: {first}"
    );
    assert!(
        stderr.contains("shutting down") && stderr.contains("stopped"),
        "{stderr}"
    );
    assert!(!stderr.contains(secret), "no secret in logs");
}

#[test]
fn user_commands_are_scriptable() {
    use std::io::Write as _;
    let cli = Cli::new();
    let mut child = cli
        .command(&[
            "user",
            "create",
            "ada",
            "--password-stdin",
            "--json",
            "--name",
            "Ada Lovelace",
            "--email",
            "ada@example.org",
            "--email-verified",
            "true",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery staple\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let created: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(created["username"], "ada");
    assert_eq!(created["has_password"], true);
    assert_eq!(
        created["claims"],
        serde_json::json!({ "name": "Ada Lovelace", "email": "ada@example.org", "email_verified": true })
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("argon2"),
        "no password hash in the output"
    );

    let shown = cli.json(&["user", "show", "ada", "--json"]);
    assert_eq!(shown["id"], created["id"]);
    let by_id = cli.json(&["user", "show", created["id"].as_str().unwrap(), "--json"]);
    assert_eq!(by_id["username"], "ada");
    assert_eq!(cli.json(&["user", "disable", "ada", "--json"])["is_disabled"], true);
    assert_eq!(cli.json(&["user", "enable", "ada", "--json"])["is_disabled"], false);
    let updated = cli.json(&["user", "update", "ada", "--json", "--given-name", "Ada"]);
    assert_eq!(updated["claims"]["given_name"], "Ada");
    assert_eq!(updated["claims"]["name"], "Ada Lovelace", "other claims are kept");

    let mut child = cli
        .command(&["user", "passwd", "ada", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 8 characters"));

    let list = cli.json(&["user", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    cli.fails(&["user", "create", "ada"], "taken");
    cli.fails(&["user", "create", "has space"], "username");
    assert_eq!(cli.json(&["user", "delete", "ada", "--json"])["deleted"], "ada");
    cli.fails(&["user", "show", "ada"], "not found");
}
