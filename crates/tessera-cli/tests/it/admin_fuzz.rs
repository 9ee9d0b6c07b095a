//! The admin API fuzzed from its own OpenAPI document by an independent tool: Schemathesis
//! (from PyPI) loads `/admin/v1/openapi.json` from the running server, which also checks that the
//! document is a valid OpenAPI schema, generates a bounded number of requests per operation, valid
//! and invalid, and fails on any 5xx, any undocumented status code or content type, and any
//! response body that does not match its schema.
//!
//! Skipped with a banner when `schemathesis` is not installed, unless
//! `TESSERA_TEST_SCHEMATHESIS=required` (as `.ci/run` sets after `pip install`).

use std::io::Write as _;
use std::process::Command;

use crate::admin::Admin;
use crate::login_flow::ada;
use crate::refresh_token::{login, refreshing_app};
use crate::support::TestServer;

const REQUIRED_VAR: &str = "TESSERA_TEST_SCHEMATHESIS";
/// Generated requests per operation and phase: about 1 500 cases in all, some 10 s.
const MAX_EXAMPLES: &str = "12";

fn schemathesis() -> Option<&'static str> {
    crate::support::tool_available(
        "schemathesis",
        &["--version"],
        REQUIRED_VAR,
        "schemathesis",
        "python3 -m pip install schemathesis==4.32.5",
    )
    .then_some("schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_response_outside_the_schema() {
    let Some(program) = schemathesis() else { return };
    let server = TestServer::start().await;
    let admin = Admin::new(&server).await;
    // Some data for the listings to return: a user with a session, a grant and events.
    let (id, secret) = server.client("rp", refreshing_app()).await;
    ada(&server).await;
    login(
        &server,
        &crate::login_flow::Agent::new(),
        (&id, secret.as_deref().unwrap()),
        "openid offline_access",
    )
    .await;
    let token = admin.token().to_owned();
    let schema = server.url("/admin/v1/openapi.json");
    let args = vec![
        "run".to_owned(),
        schema,
        "--header".to_owned(),
        format!("Authorization: Bearer {token}"),
        "--checks".to_owned(),
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance".to_owned(),
        "--max-examples".to_owned(),
        MAX_EXAMPLES.to_owned(),
        "--phases".to_owned(),
        "examples,coverage,fuzzing".to_owned(),
        "--seed".to_owned(),
        "20261122".to_owned(),
        "--workers".to_owned(),
        "1".to_owned(),
        "--request-timeout".to_owned(),
        "30".to_owned(),
    ];
    // Its caches (`.schemathesis/`, `.hypothesis/`) go to a temporary directory, not the checkout.
    let workdir = tempfile::tempdir().unwrap();
    let cwd = workdir.path().to_owned();
    let output =
        tokio::task::spawn_blocking(move || Command::new(program).args(&args).current_dir(cwd).output().unwrap())
            .await
            .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    let summary: Vec<&str> = stdout.lines().rev().take(80).collect();
    let _ = writeln!(
        std::io::stderr(),
        "{}",
        summary.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    // It really ran: every operation was called.
    assert!(stdout.contains("/admin/v1/users"), "{stdout}");
}
