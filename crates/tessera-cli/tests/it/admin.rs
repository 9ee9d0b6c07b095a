//! The admin API (`/admin/v1`) against the real server: who may call it, and every resource —
//! clients, users, sessions, grants, keys — with the effects that matter (a rotated secret, a
//! password reset, an ended session and a revoked grant all take effect at `/token` at once).

use reqwest::Method;
use serde_json::{json, Value};
use tessera_core::client::RefreshTokenIssuance;
use tessera_core::{AccessTokenFormat, AuthMethod, ClientSettings};
use tessera_server::admin::ADMIN_SCOPE;

use crate::login_flow::{ada, Agent, PASSWORD};
use crate::refresh_token::{login, refresh, refreshing_app, rt};
use crate::support::{read, service_client, TestServer};

/// An admin API caller: a client with the admin scope and a token from client credentials.
pub struct Admin<'a> {
    server: &'a TestServer,
    /// The admin client's id.
    pub client_id: String,
    token: String,
}

impl<'a> Admin<'a> {
    pub async fn new(server: &'a TestServer) -> Admin<'a> {
        let mut settings = service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt);
        settings.scopes = vec![ADMIN_SCOPE.into()];
        let (id, secret) = server.client("admin-cli", settings).await;
        let token = client_token(server, (&id, secret.as_deref().unwrap()), ADMIN_SCOPE).await;
        Admin {
            server,
            client_id: id,
            token,
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        call(self.server, Some(&self.token), method, path, body).await
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

pub async fn call(
    server: &TestServer,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.http.request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let (status, headers, body) = read(request.send().await.unwrap()).await;
    if status >= 400 {
        assert_eq!(headers["content-type"], "application/json", "{status} {body}");
        assert!(body["error"].is_string() && body["message"].is_string(), "{body}");
    }
    (status, body)
}

async fn client_token(server: &TestServer, client: (&str, &str), scope: &str) -> String {
    let (status, _, body) = server
        .token(Some(client), &[("grant_type", "client_credentials"), ("scope", scope)])
        .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn only_a_client_credentials_token_with_the_admin_scope_opens_the_admin_api() {
    let server = TestServer::start().await;
    let admin = Admin::new(&server).await;
    assert_eq!(admin.call(Method::GET, "/admin/v1/clients", None).await.0, 200);

    let (status, body) = call(&server, None, Method::GET, "/admin/v1/clients", None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")));
    let (status, _) = call(&server, Some("not-a-token"), Method::GET, "/admin/v1/users", None).await;
    assert_eq!(status, 401);

    // A client-credentials token without the admin scope.
    let (id, secret) = server
        .client(
            "reader",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Opaque),
        )
        .await;
    let token = client_token(&server, (&id, secret.as_deref().unwrap()), "read").await;
    let (status, body) = call(&server, Some(&token), Method::GET, "/admin/v1/users", None).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));

    // A user's token is refused even when a (misconfigured) client could give it the admin scope.
    let mut careless = refreshing_app();
    careless.scopes.push(ADMIN_SCOPE.into());
    let (id, secret) = server.client("careless", careless).await;
    ada(&server).await;
    let body = login(
        &server,
        &Agent::new(),
        (&id, secret.as_deref().unwrap()),
        &format!("openid {ADMIN_SCOPE}"),
    )
    .await;
    assert!(body["scope"].as_str().unwrap().contains(ADMIN_SCOPE), "{body}");
    let user_token = body["access_token"].as_str().unwrap();
    let (status, _) = call(&server, Some(user_token), Method::GET, "/admin/v1/users", None).await;
    assert_eq!(status, 403);

    // The OpenAPI document is public and describes every resource.
    let doc = server.get_json("/admin/v1/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/admin/v1/clients",
        "/admin/v1/clients/{client_id}/secret",
        "/admin/v1/users/{user_id}/password",
        "/admin/v1/users/{user_id}/sessions",
        "/admin/v1/users/{user_id}/grants",
        "/admin/v1/clients/{client_id}/grants",
        "/admin/v1/grants/{grant_id}",
        "/admin/v1/sessions/{session_id}",
        "/admin/v1/keys/rotate",
        "/admin/v1/events",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} not in the OpenAPI document");
    }
}

#[tokio::test]
async fn clients_are_created_changed_rotated_and_deleted() {
    let server = TestServer::start().await;
    let admin = Admin::new(&server).await;
    let settings = serde_json::to_value(service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt)).unwrap();

    let (status, created) = admin
        .call(
            Method::POST,
            "/admin/v1/clients",
            Some(json!({ "client_id": "billing", "settings": settings })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["client"]["client_id"], "billing");
    assert_eq!(created["client"]["has_secret"], true);
    let first_secret = created["client_secret"].as_str().unwrap().to_owned();
    client_token(&server, ("billing", &first_secret), "read").await;

    let (status, body) = admin
        .call(
            Method::POST,
            "/admin/v1/clients",
            Some(json!({ "client_id": "billing", "settings": settings })),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));
    let (status, body) = admin
        .call(
            Method::POST,
            "/admin/v1/clients",
            Some(json!({ "settings": { "nonsense": 1 } })),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let mut public_cc = settings.clone();
    public_cc["client_type"] = json!("public");
    public_cc["auth_method"] = json!("none");
    let (status, body) = admin
        .call(
            Method::POST,
            "/admin/v1/clients",
            Some(json!({ "settings": public_cc })),
        )
        .await;
    assert_eq!(status, 400, "client_credentials for a public client: {body}");

    let listed = admin.get("/admin/v1/clients").await;
    assert!(listed.as_array().unwrap().iter().any(|c| c["client_id"] == "billing"));
    assert!(
        !listed.to_string().contains(&first_secret),
        "a secret is shown only once"
    );

    // Replace the settings: the new scope applies at once on this node.
    let mut changed = settings.clone();
    changed["scopes"] = json!(["read", "write", "invoices"]);
    let (status, body) = admin
        .call(Method::PUT, "/admin/v1/clients/billing", Some(changed))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("client_secret").is_none(), "the existing secret is kept");
    assert_eq!(
        admin.get("/admin/v1/clients/billing").await["settings"]["scopes"][2],
        "invoices"
    );
    client_token(&server, ("billing", &first_secret), "invoices").await;

    // Rotate the secret: the old one stops working, the new one works.
    let (status, rotated) = admin.call(Method::POST, "/admin/v1/clients/billing/secret", None).await;
    assert_eq!(status, 200, "{rotated}");
    let second_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(second_secret, first_secret);
    let (status, _, _) = server
        .token(
            Some(("billing", &first_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, 401);
    client_token(&server, ("billing", second_secret), "read").await;

    let (status, _) = admin.call(Method::DELETE, "/admin/v1/clients/billing", None).await;
    assert_eq!(status, 204);
    let (status, body) = admin.call(Method::GET, "/admin/v1/clients/billing", None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, _, _) = server
        .token(
            Some(("billing", second_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, 401);

    let (status, _) = admin
        .call(Method::DELETE, &format!("/admin/v1/clients/{}", admin.client_id), None)
        .await;
    assert_eq!(status, 409, "an admin client cannot delete itself");
}

#[tokio::test]
async fn users_are_managed_and_a_password_reset_or_disable_revokes_their_grants() {
    let server = TestServer::start().await;
    let admin = Admin::new(&server).await;
    let (id, secret) = server.client("rp", refreshing_app()).await;
    let rp = (id.as_str(), secret.as_deref().unwrap());

    let (status, user) = admin
        .call(
            Method::POST,
            "/admin/v1/users",
            Some(json!({ "username": "ada", "password": PASSWORD, "claims": { "email": "ada@example.org" } })),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["has_password"], true);
    assert!(!user.to_string().contains("argon2"), "never the password hash");
    let user_id = user["id"].as_str().unwrap().to_owned();
    let (status, _) = admin
        .call(Method::POST, "/admin/v1/users", Some(json!({ "username": "ada" })))
        .await;
    assert_eq!(status, 409);
    let (status, _) = admin
        .call(
            Method::POST,
            "/admin/v1/users",
            Some(json!({ "username": "bob", "password": "short" })),
        )
        .await;
    assert_eq!(status, 400);

    let (status, body) = admin
        .call(
            Method::PATCH,
            "/admin/v1/users/ada",
            Some(json!({ "claims": { "name": "Ada Lovelace" } })),
        )
        .await;
    assert_eq!((status, body["claims"]["name"].as_str()), (200, Some("Ada Lovelace")));
    assert_eq!(
        admin.get(&format!("/admin/v1/users/{user_id}")).await["username"],
        "ada"
    );

    // B10: a password reset revokes the user's grants.
    let tokens = login(&server, &Agent::new(), rp, "openid offline_access").await;
    assert_eq!(refresh(&server, rp, &rt(&tokens), None).await.0, 200);
    let tokens = login(&server, &Agent::new(), rp, "openid offline_access").await;
    let (status, _) = admin
        .call(
            Method::POST,
            "/admin/v1/users/ada/password",
            Some(json!({ "password": "a new long password" })),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = refresh(&server, rp, &rt(&tokens), None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    // Disabling does too, and the user cannot sign in.
    let agent = Agent::new();
    let step = agent.get(&crate::login_flow::authorize_url(&server, rp.0, &[])).await;
    let crate::login_flow::Step::Page(_, html) = step else {
        panic!("login page expected")
    };
    let step = agent.login(&server, &html, "ada", "a new long password").await;
    let code = step.redirect()["code"].clone();
    let (status, tokens) = crate::login_flow::exchange(&server, rp, &code, Some(crate::login_flow::VERIFIER)).await;
    assert_eq!(status, 200);
    let (status, body) = admin
        .call(Method::PATCH, "/admin/v1/users/ada", Some(json!({ "disabled": true })))
        .await;
    assert_eq!((status, body["disabled"].as_bool()), (200, Some(true)));
    let (status, _) = refresh(
        &server,
        rp,
        tokens["refresh_token"].as_str().unwrap_or("tsr_rt_x"),
        None,
    )
    .await;
    assert_eq!(status, 400);

    let (status, _) = admin.call(Method::DELETE, "/admin/v1/users/ada", None).await;
    assert_eq!(status, 204);
    let (status, _) = admin.call(Method::GET, "/admin/v1/users/ada", None).await;
    assert_eq!(status, 404);

    // Users come a page at a time, in username order, each once.
    for name in ["carol", "dave", "erin", "frank", "grace"] {
        let (status, _) = admin
            .call(Method::POST, "/admin/v1/users", Some(json!({ "username": name })))
            .await;
        assert_eq!(status, 201);
    }
    let mut names = Vec::new();
    let mut path = "/admin/v1/users?limit=2".to_owned();
    loop {
        let page = admin.get(&path).await;
        names.extend(page["items"].as_array().unwrap().iter().map(|u| u["username"].clone()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/v1/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        names,
        json!(["carol", "dave", "erin", "frank", "grace"])
            .as_array()
            .unwrap()
            .clone()
    );
    let (status, _) = admin.call(Method::GET, "/admin/v1/users?cursor=%FF", None).await;
    assert_eq!(status, 400);
}

/// A client that issues online refresh tokens at every sign-in (Keycloak style).
fn online_app() -> ClientSettings {
    let mut settings = refreshing_app();
    settings.refresh_tokens.issuance = Some(RefreshTokenIssuance::Always);
    settings.redirect_uris = refreshing_app().redirect_uris;
    settings
}

#[tokio::test]
async fn sessions_and_grants_are_listed_and_revoked() {
    let server = TestServer::start().await;
    let admin = Admin::new(&server).await;
    let (id, secret) = server.client("offline-rp", refreshing_app()).await;
    let offline_rp = (id.as_str(), secret.as_deref().unwrap());
    let (id, secret) = server.client("online-rp", online_app()).await;
    let online_rp = (id.as_str(), secret.as_deref().unwrap());
    let user = ada(&server).await;
    let agent = Agent::new();
    let offline = rt(&login(&server, &agent, offline_rp, "openid offline_access").await);
    let online = rt(&login(&server, &agent, online_rp, "openid").await);

    let sessions = admin.get("/admin/v1/users/ada/sessions").await;
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["active"], true);
    assert_eq!(sessions[0]["user_id"], user.id.as_str());

    let grants = admin.get("/admin/v1/users/ada/grants").await;
    assert_eq!(grants.as_array().unwrap().len(), 2, "{grants}");
    let offline_grants = admin.get("/admin/v1/users/ada/grants?kind=offline").await;
    let offline_grants = offline_grants.as_array().unwrap();
    assert_eq!(offline_grants.len(), 1);
    assert_eq!(offline_grants[0]["client_id"], "offline-rp");
    assert_eq!(offline_grants[0]["kind"], "offline");
    assert!(offline_grants[0]["scopes"]
        .as_array()
        .unwrap()
        .contains(&json!("offline_access")));
    assert!(offline_grants[0]["expires_at"].as_i64().unwrap() > offline_grants[0]["last_used_at"].as_i64().unwrap());
    let (status, _) = admin
        .call(Method::GET, "/admin/v1/users/ada/grants?kind=sideways", None)
        .await;
    assert_eq!(status, 400);

    // B9: ending the session revokes its online grant; the offline grant stays.
    let session_id = sessions[0]["id"].as_str().unwrap();
    let (status, _) = admin
        .call(Method::DELETE, &format!("/admin/v1/sessions/{session_id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(refresh(&server, online_rp, &online, None).await.0, 400);
    let (status, body) = refresh(&server, offline_rp, &offline, None).await;
    assert_eq!(status, 200, "{body}");
    let offline = rt(&body);
    assert_eq!(admin.get("/admin/v1/users/ada/sessions").await[0]["active"], false);

    // Revoke one grant by id.
    let grant_id = offline_grants[0]["id"].as_str().unwrap();
    let (status, _) = admin
        .call(Method::DELETE, &format!("/admin/v1/grants/{grant_id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(refresh(&server, offline_rp, &offline, None).await.0, 400);
    let grant = admin.get(&format!("/admin/v1/grants/{grant_id}")).await;
    assert_eq!(grant["revocation_reason"], "admin");
    let (status, _) = admin.call(Method::DELETE, "/admin/v1/grants/no-such-grant", None).await;
    assert_eq!(status, 404);

    // Revoke all of a user's offline grants; online ones of a new session stay.
    let agent = Agent::new();
    let offline_a = rt(&login(&server, &agent, offline_rp, "openid offline_access").await);
    let offline_b = rt(&login(&server, &agent, offline_rp, "openid offline_access").await);
    let online = rt(&login(&server, &agent, online_rp, "openid").await);
    let (status, body) = admin
        .call(Method::DELETE, "/admin/v1/users/ada/grants?kind=offline", None)
        .await;
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(2)), "{body}");
    assert_eq!(refresh(&server, offline_rp, &offline_a, None).await.0, 400);
    assert_eq!(refresh(&server, offline_rp, &offline_b, None).await.0, 400);
    let (status, body) = refresh(&server, online_rp, &online, None).await;
    assert_eq!(status, 200, "{body}");
    let online = rt(&body);

    // End every session of the user.
    let (status, body) = admin.call(Method::DELETE, "/admin/v1/users/ada/sessions", None).await;
    assert_eq!((status, body["ended"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(refresh(&server, online_rp, &online, None).await.0, 400);

    // A client's grants, a page at a time, newest first, revoked ones included.
    let mut seen = Vec::new();
    let mut path = "/admin/v1/clients/offline-rp/grants?limit=2".to_owned();
    loop {
        let page = admin.get(&path).await;
        for grant in page["items"].as_array().unwrap() {
            assert_eq!(grant["client_id"], "offline-rp");
            seen.push(grant["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/v1/clients/offline-rp/grants?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (3, 3), "{seen:?}");
    let (status, _) = admin
        .call(Method::GET, "/admin/v1/clients/offline-rp/grants?cursor=garbage", None)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn signing_keys_are_listed_and_rotated() {
    let server = TestServer::start().await;
    let admin = Admin::new(&server).await;
    let keys = admin.get("/admin/v1/keys").await;
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.iter().all(|k| k["state"] == "active"));
    assert!(
        !serde_json::to_string(keys).unwrap().contains("\"d\""),
        "no private key parts"
    );

    let (status, rotated) = admin
        .call(
            Method::POST,
            "/admin/v1/keys/rotate",
            Some(json!({ "algorithms": ["ES256"] })),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let kid = rotated[0]["kid"].as_str().unwrap();
    let jwks = server.get_json("/jwks").await;
    assert!(
        jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == kid),
        "the new key is published at once"
    );
    assert_eq!(admin.get("/admin/v1/keys").await.as_array().unwrap().len(), 4);
    let (status, _) = admin
        .call(
            Method::POST,
            "/admin/v1/keys/rotate",
            Some(json!({ "algorithms": ["none"] })),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_cli_creates_an_admin_client_whose_token_opens_the_admin_api() {
    // `tessera client create --admin` (the same service layer as the API) sets the grant and scope.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tessera.db");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["--json", "client", "create", "--id", "ops", "--admin"])
        .env_clear()
        .env("TESSERA_DATABASE__URL", format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(created["grant_types"], json!(["client_credentials"]));
    assert_eq!(created["scopes"], json!([ADMIN_SCOPE]));
    let secret = created["client_secret"].as_str().unwrap().to_owned();

    let storage = tessera_storage_sqlite::SqliteStorage::open(&db, Default::default()).unwrap();
    let server = TestServer::start_on(std::sync::Arc::new(storage), dir, |_| {}).await;
    let token = client_token(&server, ("ops", &secret), ADMIN_SCOPE).await;
    let (status, body) = call(
        &server,
        Some(&token),
        Method::GET,
        "/admin/v1/events?type=client.created",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let event = &body["items"][0];
    assert_eq!(
        (event["client_id"].as_str(), event["actor"].as_str()),
        (Some("ops"), Some("admin"))
    );
    assert_eq!(event["details"]["via"], "cli", "the CLI's changes are audited too");
}
