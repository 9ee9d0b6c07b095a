//! A short run of the load generator (`tessera-bench`, issue 5) against the real server: every
//! scenario runs without a single failed request. Not a speed test.

use clap::Parser as _;
use tessera_bench::{Options, Report};
use tessera_types::token::GrantType;

use crate::login_flow::{ada, web_app, PASSWORD, REDIRECT_URI};
use crate::support::TestServer;

/// Runs `tessera-bench` with `args` against `server` (no warm-up) and asserts that nothing failed.
async fn bench(server: &TestServer, secret: &str, args: &[&str]) -> Report {
    let common = [
        "--url",
        &server.base,
        "--client-id",
        "bench",
        "--client-secret",
        secret,
        "--username",
        "ada",
        "--password",
        PASSWORD,
        "--redirect-uri",
        REDIRECT_URI,
        "--warmup",
        "0",
        "--duration",
        "120",
    ];
    let argv = ["tessera-bench"].iter().chain(args).chain(&common);
    let report = tessera_bench::run(&Options::try_parse_from(argv).unwrap())
        .await
        .unwrap();
    assert_eq!(report.errors, 0, "{report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_without_errors() {
    let server = TestServer::start().await;
    let mut settings = web_app();
    settings.grant_types = vec![
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::Password,
        GrantType::ClientCredentials,
    ];
    let (_, secret) = server.client("bench", settings).await;
    let secret = secret.unwrap();
    let user = ada(&server).await;

    // Closed loop, 8 chains. Reuse detection is on, so a re-presented token would have failed
    // and revoked its chain's grant: 300 successes are 300 real rotations.
    let report = bench(&server, &secret, &["refresh", "--requests", "300", "-c", "8"]).await;
    assert_eq!((report.requests, report.succeeded()), (300, 300), "{report}");
    let grants = server.storage.grants().list_by_user(&user.id).await.unwrap();
    assert_eq!(grants.len(), 8, "one grant per chain, none restarted");
    assert!(grants.iter().all(|grant| grant.revoked_at.is_none()));

    // Two URLs (the same server twice: the workers alternate between them) and
    // `--record-tokens`: a `granted` line per chain, then a `received` line per 200, in order.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    let args = [
        "refresh",
        "--requests",
        "200",
        "-c",
        "4",
        "--url",
        &server.base,
        "--record-tokens",
        file.to_str().unwrap(),
    ];
    let report = bench(&server, &secret, &args).await;
    assert_eq!((report.requests, report.succeeded()), (200, 200), "{report}");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<Vec<&str>> = vec![Vec::new(); 4];
    for line in text.lines() {
        let (worker, rest) = line.split_once(' ').unwrap();
        lines[worker.parse::<usize>().unwrap()].push(rest);
    }
    let mut tokens = std::collections::HashSet::new();
    for (worker, lines) in lines.iter().enumerate() {
        assert!(
            lines[0].starts_with("granted "),
            "worker {worker} starts with {}",
            lines[0]
        );
        assert!(
            lines[1..].iter().all(|line| line.starts_with("received ")),
            "worker {worker}: {lines:?}"
        );
        for line in lines {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 2, "{line}");
            assert!(tokens.insert(fields[1].to_owned()), "a token recorded twice: {line}");
        }
    }
    let received = text.lines().filter(|line| line.contains(" received ")).count();
    assert_eq!((tokens.len(), received), (204, 200), "{text}");
    let grants = server.storage.grants().list_by_user(&user.id).await.unwrap();
    assert_eq!(grants.len(), 12, "one grant per chain, none restarted");

    // Open loop.
    let report = bench(
        &server,
        &secret,
        &["client-credentials", "--requests", "300", "-c", "8", "--rate", "1000"],
    )
    .await;
    assert_eq!((report.requests, report.succeeded()), (300, 300), "{report}");

    let report = bench(&server, &secret, &["login", "--requests", "12", "-c", "4"]).await;
    assert_eq!((report.requests, report.succeeded()), (12, 12), "{report}");

    // Introspection of the client's own (JWT) access tokens: every answer says active.
    let report = bench(&server, &secret, &["introspect", "--requests", "300", "-c", "8"]).await;
    assert_eq!((report.requests, report.succeeded()), (300, 300), "{report}");
}
