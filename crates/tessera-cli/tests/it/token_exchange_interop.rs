//! Token exchange (RFC 8693) with an independent client on the wire: Authlib (PyPI), through
//! `tests/interop/token_exchange.py`, gets the front end's own token with `client_credentials`,
//! exchanges ada's token for the back end with itself as actor, checks the response fields and
//! the issued JWT (`act`, `aud`, signature against `/jwks`), and checks that a garbage subject
//! token and an unlisted audience come back as the OAuth errors Authlib reports.
//!
//! Skipped with a banner when Authlib is not installed, unless
//! `TESSERA_TEST_PYTHON_AUTHLIB=required` (as `.ci/run` sets after `pip install`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;

use crate::token_exchange::Setup;

const REQUIRED_VAR: &str = "TESSERA_TEST_PYTHON_AUTHLIB";

fn authlib() -> bool {
    crate::support::tool_available(
        "python3",
        &["-c", "import authlib, requests, joserfc"],
        REQUIRED_VAR,
        "Authlib",
        "python3 -m pip install authlib==1.9.9 requests==2.34.2",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_as_the_client_exchanges_a_users_token_and_reads_the_errors() {
    if !authlib() {
        return;
    }
    let setup = Setup::new(|_| {}).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/token_exchange.py");
    let (client_id, secret) = setup.frontend();
    let args = vec![
        script.display().to_string(),
        "--token-endpoint".to_owned(),
        setup.server.url("/token"),
        "--jwks-uri".to_owned(),
        setup.server.url("/jwks"),
        "--client-id".to_owned(),
        client_id.to_owned(),
        "--audience".to_owned(),
        "backend".to_owned(),
        "--scope".to_owned(),
        "orders.read".to_owned(),
    ];
    // The secret and the user's token go by environment, not on the command line.
    let envs = [
        ("TESSERA_CLIENT_SECRET", secret.to_owned()),
        ("TESSERA_SUBJECT_TOKEN", setup.user_token().to_owned()),
    ];
    let workdir = tempfile::tempdir().unwrap();
    let cwd = workdir.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(&args)
            .envs(envs)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(cwd)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Authlib client failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let _ = writeln!(std::io::stderr(), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["claims"]["act"]["sub"], "frontend", "{report}");
    assert_eq!(report["signature_verified"], true, "{report}");
    assert_eq!(
        report["errors"]["garbage_subject"]["error"], "invalid_grant",
        "{report}"
    );
}
