//! Token exchange (RFC 8693, DESIGN B13) against the real server: audience changes with narrower
//! scope, delegation (and a two-step chain with nested `act`), impersonation by policy, refused
//! targets, bad subject tokens, requested refresh and ID tokens, and the results at introspection,
//! revocation and in the audit trail.

use serde_json::{json, Value};
use tessera_core::client::{ExchangeAudience, TokenExchangeSettings};
use tessera_core::{AccessTokenFormat, AuthMethod, ClientSettings};
use tessera_types::token::{GrantType, TokenType};

use crate::external_issuer::ExternalIssuer;
use crate::login_flow::{ada, Agent};
use crate::refresh_token::{login, refresh, refreshing_app, rt};
use crate::support::{peek, service_client, TestServer};

pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The front-end API: users sign in to it; it may exchange their tokens for the back end.
pub fn frontend() -> ClientSettings {
    let mut settings = refreshing_app();
    settings.name = Some("Front-end API".into());
    settings
        .grant_types
        .extend([GrantType::ClientCredentials, GrantType::TokenExchange]);
    settings.scopes = ["profile", "offline_access", "orders.read", "orders.write"]
        .map(Into::into)
        .to_vec();
    settings.token_exchange = Some(TokenExchangeSettings {
        subject_token_types: vec![TokenType::AccessToken, TokenType::RefreshToken, TokenType::IdToken],
        requested_token_types: vec![TokenType::IdToken, TokenType::Jwt],
        audiences: vec![ExchangeAudience {
            audience: "backend".into(),
            scopes: vec!["orders.read".into(), "orders.write".into()],
        }],
        impersonation: true,
        delegation: true,
        ..TokenExchangeSettings::default()
    });
    settings
}

/// The back-end API: a resource server that exchanges what it receives for the ledger, acting
/// for the user itself.
fn backend() -> ClientSettings {
    let mut settings = service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Opaque);
    settings.grant_types = vec![GrantType::ClientCredentials, GrantType::TokenExchange];
    settings.scopes = vec!["orders.read".into()];
    settings.introspection = true;
    settings.token_exchange = Some(TokenExchangeSettings {
        subject_token_types: vec![TokenType::AccessToken],
        audiences: vec![ExchangeAudience {
            audience: "ledger".into(),
            scopes: vec!["orders.read".into()],
        }],
        delegation: true,
        ..TokenExchangeSettings::default()
    });
    settings
}

pub struct Setup {
    pub server: TestServer,
    pub frontend: (String, String),
    pub backend: (String, String),
    /// Ada's token response from signing in to the front end (`openid profile orders.read orders.write offline_access`).
    pub tokens: Value,
}

impl Setup {
    pub async fn new(adjust_frontend: impl FnOnce(&mut ClientSettings)) -> Setup {
        Self::with(|_| {}, adjust_frontend).await
    }

    pub async fn with(
        adjust_config: impl FnOnce(&mut tessera_server::config::Config),
        adjust_frontend: impl FnOnce(&mut ClientSettings),
    ) -> Setup {
        let server = TestServer::start_with(adjust_config).await;
        let mut settings = frontend();
        adjust_frontend(&mut settings);
        let (id, secret) = server.client("frontend", settings).await;
        let frontend = (id, secret.unwrap());
        let (id, secret) = server.client("backend", backend()).await;
        let backend = (id, secret.unwrap());
        ada(&server).await;
        let tokens = login(
            &server,
            &Agent::new(),
            (&frontend.0, &frontend.1),
            "openid profile orders.read orders.write offline_access",
        )
        .await;
        Setup {
            server,
            frontend,
            backend,
            tokens,
        }
    }

    pub fn frontend(&self) -> (&str, &str) {
        (&self.frontend.0, &self.frontend.1)
    }

    fn backend(&self) -> (&str, &str) {
        (&self.backend.0, &self.backend.1)
    }

    pub fn user_token(&self) -> &str {
        self.tokens["access_token"].as_str().unwrap()
    }

    pub async fn exchange(&self, client: (&str, &str), params: &[(&str, &str)]) -> (u16, Value) {
        let mut form = vec![("grant_type", GRANT)];
        form.extend_from_slice(params);
        let (status, headers, body) = self.server.token(Some(client), &form).await;
        if status == 200 {
            assert_eq!(headers["cache-control"], "no-store");
        }
        (status, body)
    }

    /// A client-credentials access token of `client`.
    async fn own_token(&self, client: (&str, &str)) -> String {
        let (status, _, body) = self
            .server
            .token(Some(client), &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

fn error(response: &(u16, Value)) -> (u16, &str) {
    (response.0, response.1["error"].as_str().unwrap_or("-"))
}

#[tokio::test]
async fn a_users_token_is_exchanged_for_another_audience_with_narrower_scope() {
    let setup = Setup::new(|_| {}).await;
    // A minute after signing in: the result's auth_time must still be the sign-in's.
    setup.server.clock.advance(60);
    let (status, body) = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", setup.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("audience", "backend"),
                ("scope", "orders.read"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "orders.read");
    assert!(body.get("refresh_token").is_none());
    let (_, claims) = peek(body["access_token"].as_str().unwrap());
    let (_, subject) = peek(setup.user_token());
    assert_eq!(claims["sub"], subject["sub"], "impersonation: the user's token");
    assert_eq!(claims["aud"], "backend");
    assert_eq!(claims["client_id"], "frontend");
    assert!(claims.get("act").is_none(), "impersonation carries no act");
    assert_eq!(
        claims["auth_time"], subject["auth_time"],
        "when the user authenticated, not now"
    );
    assert!(
        claims["exp"].as_i64().unwrap() <= subject["exp"].as_i64().unwrap(),
        "never outlives the subject"
    );

    // Without a scope: everything the subject, the client and the audience allow.
    let (status, body) = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", setup.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("resource", "backend"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some("orders.read orders.write")),
        "{body}"
    );

    // A scope the audience does not take, or the subject never had.
    let asked = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", setup.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("audience", "backend"),
                ("scope", "orders.read profile"),
            ],
        )
        .await;
    assert_eq!(error(&asked), (400, "invalid_scope"));

    // An audience the policy does not list.
    let elsewhere = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", setup.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("audience", "payroll"),
            ],
        )
        .await;
    assert_eq!(error(&elsewhere), (400, "invalid_target"));
}

#[tokio::test]
async fn delegation_puts_the_actor_in_act_and_a_chain_nests_it() {
    let setup = Setup::new(|_| {}).await;
    let frontend_token = setup.own_token(setup.frontend()).await;
    let (status, first) = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", setup.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("actor_token", &frontend_token),
                ("actor_token_type", ACCESS_TOKEN),
                ("audience", "backend"),
                ("scope", "orders.read"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let first_token = first["access_token"].as_str().unwrap();
    let (_, claims) = peek(first_token);
    assert_eq!(claims["act"], json!({ "sub": "frontend" }));

    // The back end receives that token (its aud names it) and exchanges it for the ledger,
    // acting itself: the new actor wraps the earlier one (RFC 8693 §4.1).
    let backend_token = setup.own_token(setup.backend()).await;
    let (status, second) = setup
        .exchange(
            setup.backend(),
            &[
                ("subject_token", first_token),
                ("subject_token_type", ACCESS_TOKEN),
                ("actor_token", &backend_token),
                ("actor_token_type", ACCESS_TOKEN),
                ("audience", "ledger"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["scope"], "orders.read");
    let second_token = second["access_token"].as_str().unwrap();
    assert!(second_token.starts_with("tsr_at_"), "the back end's tokens are opaque");
    // Introspection shows the chain, for opaque results too.
    let (status, _, described) = setup
        .server
        .post_form("/introspect", Some(setup.backend()), &[("token", second_token)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(described["active"], true, "{described}");
    assert_eq!(
        described["act"],
        json!({ "sub": "backend", "act": { "sub": "frontend" } })
    );
    assert_eq!(described["aud"], json!(["ledger"]));

    // Another client's actor token is not an allowed actor.
    let stranger = setup.own_token(setup.backend()).await;
    let refused = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", setup.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("actor_token", &stranger),
                ("actor_token_type", ACCESS_TOKEN),
                ("audience", "backend"),
            ],
        )
        .await;
    assert_eq!(error(&refused), (400, "unauthorized_client"));
    // actor_token without its type.
    let incomplete = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", setup.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("actor_token", &frontend_token),
            ],
        )
        .await;
    assert_eq!(error(&incomplete), (400, "invalid_request"));

    // The results revoke like any token.
    let (status, _, _) = setup
        .server
        .post_form("/revoke", Some(setup.backend()), &[("token", second_token)])
        .await;
    assert_eq!(status, 200);
    let (_, _, described) = setup
        .server
        .post_form("/introspect", Some(setup.backend()), &[("token", second_token)])
        .await;
    assert_eq!(described, json!({ "active": false }));
}

#[tokio::test]
async fn impersonation_and_delegation_are_each_allowed_by_policy() {
    let no_impersonation = Setup::new(|settings| {
        if let Some(policy) = settings.token_exchange.as_mut() {
            policy.impersonation = false;
        }
    })
    .await;
    let without_actor = no_impersonation
        .exchange(
            no_impersonation.frontend(),
            &[
                ("subject_token", no_impersonation.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("audience", "backend"),
            ],
        )
        .await;
    assert_eq!(error(&without_actor), (400, "unauthorized_client"));
    let actor = no_impersonation.own_token(no_impersonation.frontend()).await;
    let (status, body) = no_impersonation
        .exchange(
            no_impersonation.frontend(),
            &[
                ("subject_token", no_impersonation.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("actor_token", &actor),
                ("actor_token_type", ACCESS_TOKEN),
                ("audience", "backend"),
            ],
        )
        .await;
    assert_eq!(status, 200, "delegation is still allowed: {body}");

    let no_delegation = Setup::new(|settings| {
        if let Some(policy) = settings.token_exchange.as_mut() {
            policy.delegation = false;
        }
    })
    .await;
    let actor = no_delegation.own_token(no_delegation.frontend()).await;
    let with_actor = no_delegation
        .exchange(
            no_delegation.frontend(),
            &[
                ("subject_token", no_delegation.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("actor_token", &actor),
                ("actor_token_type", ACCESS_TOKEN),
                ("audience", "backend"),
            ],
        )
        .await;
    assert_eq!(error(&with_actor), (400, "unauthorized_client"));

    // A client without the grant, or without a policy.
    let (id, secret) = no_delegation
        .server
        .client(
            "plain",
            service_client(AuthMethod::ClientSecretBasic, AccessTokenFormat::Jwt),
        )
        .await;
    let plain = no_delegation
        .exchange(
            (&id, secret.as_deref().unwrap()),
            &[
                ("subject_token", no_delegation.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
            ],
        )
        .await;
    assert_eq!(error(&plain), (400, "unauthorized_client"));
}

#[tokio::test]
async fn expired_revoked_foreign_and_malformed_subject_tokens_are_invalid_grant() {
    let setup = Setup::new(|_| {}).await;
    let exchange = |token: String, kind: &'static str| {
        let setup = &setup;
        async move {
            setup
                .exchange(
                    setup.frontend(),
                    &[
                        ("subject_token", &token),
                        ("subject_token_type", kind),
                        ("audience", "backend"),
                    ],
                )
                .await
        }
    };
    assert_eq!(
        error(&exchange("garbage".into(), ACCESS_TOKEN).await),
        (400, "invalid_grant")
    );
    assert_eq!(
        error(&exchange("a.b.c".into(), ACCESS_TOKEN).await),
        (400, "invalid_grant")
    );
    assert_eq!(
        error(&exchange("tsr_rt_not-a-real-token".into(), REFRESH_TOKEN).await),
        (400, "invalid_grant")
    );
    assert_eq!(
        error(&exchange(setup.user_token().into(), "urn:example:unknown").await),
        (400, "invalid_request")
    );
    // An access token presented as an ID token, and the other way round.
    assert_eq!(
        error(&exchange(setup.user_token().into(), ID_TOKEN).await),
        (400, "invalid_grant")
    );
    let id_token = setup.tokens["id_token"].as_str().unwrap().to_owned();
    assert_eq!(error(&exchange(id_token, ACCESS_TOKEN).await), (400, "invalid_grant"));

    // Foreign: another client's token that was not sent to the front end.
    let (id, secret) = setup.server.client("other-app", refreshing_app()).await;
    let others = login(
        &setup.server,
        &Agent::new(),
        (&id, secret.as_deref().unwrap()),
        "openid",
    )
    .await;
    let foreign = others["access_token"].as_str().unwrap().to_owned();
    assert_eq!(error(&exchange(foreign, ACCESS_TOKEN).await), (400, "invalid_grant"));
    // Foreign: signed by a key that is not ours.
    let forged = {
        let (_, claims) = peek(setup.user_token());
        let key = jsonwebtoken::EncodingKey::from_secret(b"not our key");
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    };
    assert_eq!(error(&exchange(forged, ACCESS_TOKEN).await), (400, "invalid_grant"));

    // Revoked (RFC 7009: a JWT access token's jti is recorded).
    let (status, _, _) = setup
        .server
        .post_form("/revoke", Some(setup.frontend()), &[("token", setup.user_token())])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        error(&exchange(setup.user_token().into(), ACCESS_TOKEN).await),
        (400, "invalid_grant")
    );

    // Expired.
    let fresh = Setup::new(|_| {}).await;
    fresh.server.clock.advance(3600);
    let expired = fresh
        .exchange(
            fresh.frontend(),
            &[
                ("subject_token", fresh.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("audience", "backend"),
            ],
        )
        .await;
    assert_eq!(error(&expired), (400, "invalid_grant"));
}

#[tokio::test]
async fn a_refresh_token_is_issued_only_where_policy_allows_and_obeys_the_refresh_rules() {
    let setup = Setup::new(|_| {}).await;
    let refresh_token = rt(&setup.tokens);
    let not_allowed = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", &refresh_token),
                ("subject_token_type", REFRESH_TOKEN),
                ("requested_token_type", REFRESH_TOKEN),
                ("audience", "backend"),
            ],
        )
        .await;
    assert_eq!(error(&not_allowed), (400, "unauthorized_client"));

    let setup = Setup::new(|settings| {
        if let Some(policy) = settings.token_exchange.as_mut() {
            policy.requested_token_types.push(TokenType::RefreshToken);
            policy.may_outlive_subject = true;
        }
    })
    .await;
    let (status, body) = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", &rt(&setup.tokens)),
                ("subject_token_type", REFRESH_TOKEN),
                ("requested_token_type", REFRESH_TOKEN),
                ("audience", "backend"),
                ("scope", "orders.read"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], REFRESH_TOKEN);
    assert!(body["refresh_expires_in"].as_u64().unwrap() > 0);
    let new_rt = rt(&body);
    let (_, claims) = peek(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "backend");

    // The new refresh token rotates, and a reused one revokes its grant (B3), but not the
    // grant the subject token came from.
    let (status, rotated) = refresh(&setup.server, setup.frontend(), &new_rt, None).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["scope"], "orders.read");
    let (status, _) = refresh(&setup.server, setup.frontend(), &new_rt, None).await;
    assert_eq!(status, 400);
    let (status, _) = refresh(&setup.server, setup.frontend(), &rt(&rotated), None).await;
    assert_eq!(status, 400, "the whole exchanged grant is revoked");
    let (status, body) = refresh(&setup.server, setup.frontend(), &rt(&setup.tokens), None).await;
    assert_eq!(status, 200, "the subject's own grant lives on: {body}");

    // Another client's refresh token cannot be a subject (B8).
    let (id, secret) = setup.server.client("other-app", refreshing_app()).await;
    let others = login(
        &setup.server,
        &Agent::new(),
        (&id, secret.as_deref().unwrap()),
        "openid offline_access",
    )
    .await;
    let foreign = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", &rt(&others)),
                ("subject_token_type", REFRESH_TOKEN),
                ("audience", "backend"),
            ],
        )
        .await;
    assert_eq!(error(&foreign), (400, "invalid_grant"));
}

#[tokio::test]
async fn id_tokens_and_jwts_are_issued_as_asked_and_every_exchange_is_audited() {
    let setup = Setup::new(|_| {}).await;
    let (status, body) = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", setup.tokens["id_token"].as_str().unwrap()),
                ("subject_token_type", ID_TOKEN),
                ("requested_token_type", ID_TOKEN),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["token_type"].as_str(), body["issued_token_type"].as_str()),
        (Some("N_A"), Some(ID_TOKEN))
    );
    let (header, claims) = peek(body["access_token"].as_str().unwrap());
    assert_eq!(header["typ"], "JWT");
    assert_eq!(claims["aud"], "frontend");

    let (status, body) = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", setup.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("requested_token_type", JWT),
                ("audience", "backend"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], JWT);
    assert_eq!(peek(body["access_token"].as_str().unwrap()).0["typ"], "at+jwt");

    // A requested type the policy does not list.
    let refused = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", setup.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("requested_token_type", REFRESH_TOKEN),
            ],
        )
        .await;
    assert_eq!(error(&refused), (400, "unauthorized_client"));

    let discovery = setup.server.get_json("/.well-known/openid-configuration").await;
    assert!(discovery["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!(GRANT)));

    setup.server.state.audit.flush().await;
    let events = setup
        .server
        .storage
        .events()
        .query(
            &tessera_storage::EventFilter {
                kind: Some("token.exchanged".into()),
                ..Default::default()
            },
            &tessera_storage::Page {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    // Both happened in the same second of the test clock: find the JWT one by its details.
    let event = events
        .iter()
        .find(|e| e.details.contains(JWT))
        .expect("the JWT exchange's event");
    let details: Value = serde_json::from_str(&event.details).unwrap();
    assert_eq!(details["audience"], json!(["backend"]));
    assert_eq!(details["subject_token_type"], ACCESS_TOKEN);
    assert_eq!(event.client_id.as_deref(), Some("frontend"));
    assert!(event.user_id.is_some());
}

#[tokio::test]
async fn a_jwt_from_a_trusted_issuer_is_exchanged_for_a_local_token() {
    let issuer = ExternalIssuer::start().await;
    let trusted = issuer.trusted();
    let setup = Setup::with(
        move |config| config.token_exchange.trusted_issuers = vec![trusted],
        |settings| {
            if let Some(policy) = settings.token_exchange.as_mut() {
                policy.subject_token_types.push(TokenType::Jwt);
            }
        },
    )
    .await;
    let now = setup.server.clock_now().0;
    let claims = json!({
        "iss": issuer.issuer(),
        "sub": "ada",
        "aud": setup.server.base,
        "iat": now,
        "exp": now + 300,
        "scope": "orders.read orders.write",
    });
    let exchange = |jwt: String| {
        let setup = &setup;
        async move {
            setup
                .exchange(
                    setup.frontend(),
                    &[
                        ("subject_token", &jwt),
                        ("subject_token_type", JWT),
                        ("audience", "backend"),
                        ("scope", "orders.read"),
                    ],
                )
                .await
        }
    };
    let (status, body) = exchange(issuer.sign(&claims)).await;
    assert_eq!(status, 200, "{body}");
    let (_, local) = peek(body["access_token"].as_str().unwrap());
    let (_, ada) = peek(setup.user_token());
    assert_eq!(local["sub"], ada["sub"], "mapped to the local user by username");
    assert_eq!(local["iss"], setup.server.base);
    assert_eq!(local["aud"], "backend");
    assert_eq!(local["scope"], "orders.read");
    assert!(local["exp"].as_i64().unwrap() <= now + 300);

    // The same token with a bad signature, from an issuer we do not trust, or expired.
    assert_eq!(
        error(&exchange(issuer.sign_with_other_key(&claims)).await),
        (400, "invalid_grant")
    );
    let mut untrusted = claims.clone();
    untrusted["iss"] = json!("https://elsewhere.example");
    assert_eq!(error(&exchange(issuer.sign(&untrusted)).await), (400, "invalid_grant"));
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 1);
    assert_eq!(error(&exchange(issuer.sign(&expired)).await), (400, "invalid_grant"));
    // A subject the issuer vouches for but who is no local user.
    let mut stranger = claims.clone();
    stranger["sub"] = json!("mallory");
    assert_eq!(error(&exchange(issuer.sign(&stranger)).await), (400, "invalid_grant"));
    // The JWT type is only for external tokens: our own access token is not a trusted JWT.
    let ours = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", setup.user_token()),
                ("subject_token_type", JWT),
                ("audience", "backend"),
            ],
        )
        .await;
    assert_eq!(error(&ours), (400, "invalid_grant"));
}

#[tokio::test]
async fn a_pass_through_subject_keeps_its_external_identity() {
    let issuer = ExternalIssuer::start().await;
    let mut trusted = issuer.trusted();
    trusted.subject = tessera_server::config::SubjectMapping::PassThrough;
    let setup = Setup::with(
        move |config| config.token_exchange.trusted_issuers = vec![trusted],
        |settings| {
            if let Some(policy) = settings.token_exchange.as_mut() {
                policy.subject_token_types.push(TokenType::Jwt);
                policy.requested_token_types.push(TokenType::RefreshToken);
            }
        },
    )
    .await;
    let now = setup.server.clock_now().0;
    let jwt = issuer.sign(&json!({
        "iss": issuer.issuer(), "sub": "partner-user-7", "aud": setup.server.base,
        "iat": now, "exp": now + 300, "scope": "orders.read",
    }));
    let (status, body) = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", &jwt),
                ("subject_token_type", JWT),
                ("audience", "backend"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(peek(body["access_token"].as_str().unwrap()).1["sub"], "partner-user-7");
    // No local user: no refresh token (a grant needs a user).
    let refused = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", &jwt),
                ("subject_token_type", JWT),
                ("requested_token_type", REFRESH_TOKEN),
                ("audience", "backend"),
            ],
        )
        .await;
    assert_eq!(error(&refused), (400, "invalid_request"));
    // Nor an ID token: there is no local user to describe.
    let no_id_token = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", &jwt),
                ("subject_token_type", JWT),
                ("requested_token_type", ID_TOKEN),
            ],
        )
        .await;
    assert_eq!(error(&no_id_token), (400, "invalid_request"));
}

#[tokio::test]
async fn a_refresh_token_needs_the_refresh_grant_too() {
    // The policy lists refresh tokens, but the client may not use the refresh_token grant.
    let setup = Setup::new(|settings| {
        settings.grant_types.retain(|g| *g != GrantType::RefreshToken);
        if let Some(policy) = settings.token_exchange.as_mut() {
            policy.requested_token_types.push(TokenType::RefreshToken);
        }
    })
    .await;
    let refused = setup
        .exchange(
            setup.frontend(),
            &[
                ("subject_token", setup.user_token()),
                ("subject_token_type", ACCESS_TOKEN),
                ("requested_token_type", REFRESH_TOKEN),
                ("audience", "backend"),
            ],
        )
        .await;
    assert_eq!(error(&refused), (400, "unauthorized_client"));
}
