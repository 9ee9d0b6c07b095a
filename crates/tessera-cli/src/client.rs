//! `tessera client create|list|show|update|rotate-secret|delete`.

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use tessera_core::client::{AccessTokenFormat, AuthMethod, ClientSettings, ClientType};
use tessera_core::{Client, Clock as _};
use tessera_server::admin::ADMIN_SCOPE;
use tessera_server::audit::{Actor, Audit, Event, EventKind};
use tessera_server::clients;
use tessera_server::clock::SystemClock;
use tessera_storage::Storage;
use tessera_types::token::GrantType;
use tessera_types::JwsAlgorithm;

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a client. Prints its secret once (secret-based methods).
    Create {
        /// The client_id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// An admin API client: confidential, the client_credentials grant and the
        /// `tessera:admin` scope (added to the options given).
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// List clients.
    List,
    /// Show one client.
    Show { id: String },
    /// Change a client: only the options given change.
    Update {
        id: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Generate a new secret; the old one stops working at once. Prints the new secret once.
    RotateSecret { id: String },
    /// Delete a client.
    Delete { id: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TypeArg {
    Confidential,
    Public,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AuthMethodArg {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Jwt,
    Opaque,
}

/// Client settings as options. On `create`, unset options take the defaults shown; on `update`,
/// unset options keep the current value.
#[derive(Args)]
pub struct SettingsArgs {
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Client type [create default: confidential].
    #[arg(long = "type", value_enum)]
    client_type: Option<TypeArg>,
    /// Token endpoint authentication [create default: client_secret_basic, or none for public clients].
    #[arg(long, value_enum)]
    auth_method: Option<AuthMethodArg>,
    /// Allowed grant type (repeatable): client_credentials, authorization_code, refresh_token, password, token exchange URN.
    #[arg(long = "grant-type", value_parser = parse_grant)]
    grant_types: Vec<GrantType>,
    /// Allowed scope (repeatable).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Allowed audience / resource indicator (repeatable).
    #[arg(long = "audience")]
    audiences: Vec<String>,
    /// Redirect URI, matched exactly (repeatable).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// Access-token format [create default: jwt].
    #[arg(long, value_enum)]
    token_format: Option<FormatArg>,
    /// Signing algorithm for JWT access tokens (ES256, RS256, EdDSA) [default: server's].
    #[arg(long, value_parser = parse_algorithm)]
    access_token_algorithm: Option<JwsAlgorithm>,
    /// Access-token lifetime in seconds [default: server's].
    #[arg(long)]
    access_token_lifetime: Option<u64>,
    /// JWK Set for private_key_jwt: inline JSON, or @path to a file.
    #[arg(long)]
    jwks: Option<String>,
    /// JWK Set URL for private_key_jwt.
    #[arg(long)]
    jwks_uri: Option<String>,
    /// Whether the client may introspect access tokens issued to other clients (a resource
    /// server): true or false [create default: false].
    #[arg(long)]
    introspection: Option<bool>,
    /// On update: replace every list option (grant types, scopes, audiences, redirect URIs) with
    /// what is given, clearing those not given.
    #[arg(long)]
    replace_lists: bool,
    /// All settings as JSON (inline or @file), in the shape `client show --json` prints; they
    /// replace the current (or default) settings, and the other options given override them.
    /// Use this for settings without an option of their own, such as `refresh_tokens`.
    #[arg(long)]
    settings: Option<String>,
}

fn parse_grant(value: &str) -> Result<GrantType, String> {
    GrantType::parse(value).ok_or_else(|| format!("unknown grant type {value:?}"))
}

fn parse_algorithm(value: &str) -> Result<JwsAlgorithm, String> {
    JwsAlgorithm::parse(value).ok_or_else(|| format!("unknown algorithm {value:?} (ES256, RS256, EdDSA)"))
}

impl SettingsArgs {
    /// The base settings: `--settings` if given, else `fallback`.
    fn base(&mut self, fallback: ClientSettings) -> anyhow::Result<ClientSettings> {
        let Some(settings) = self.settings.take() else {
            return Ok(fallback);
        };
        let text = match settings.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
            None => settings,
        };
        let mut value: serde_json::Value = serde_json::from_str(&text).context("--settings is not JSON")?;
        if let Some(object) = value.as_object_mut() {
            // Accept `client show --json` output as it is.
            for key in ["client_id", "client_secret", "created_at", "updated_at"] {
                object.remove(key);
            }
        }
        serde_json::from_value(value).context("--settings")
    }

    /// Applies the given options to `base`.
    fn apply(self, mut base: ClientSettings) -> anyhow::Result<ClientSettings> {
        if let Some(name) = self.name {
            base.name = Some(name);
        }
        if let Some(client_type) = self.client_type {
            base.client_type = match client_type {
                TypeArg::Confidential => ClientType::Confidential,
                TypeArg::Public => ClientType::Public,
            };
        }
        if let Some(method) = self.auth_method {
            base.auth_method = match method {
                AuthMethodArg::ClientSecretBasic => AuthMethod::ClientSecretBasic,
                AuthMethodArg::ClientSecretPost => AuthMethod::ClientSecretPost,
                AuthMethodArg::PrivateKeyJwt => AuthMethod::PrivateKeyJwt,
                AuthMethodArg::None => AuthMethod::None,
            };
        }
        let replace = self.replace_lists;
        let set_list = |target: &mut Vec<String>, values: Vec<String>| {
            if replace || !values.is_empty() {
                *target = values;
            }
        };
        set_list(&mut base.scopes, self.scopes);
        set_list(&mut base.audiences, self.audiences);
        set_list(&mut base.redirect_uris, self.redirect_uris);
        if replace || !self.grant_types.is_empty() {
            base.grant_types = self.grant_types;
        }
        if let Some(format) = self.token_format {
            base.access_token_format = match format {
                FormatArg::Jwt => AccessTokenFormat::Jwt,
                FormatArg::Opaque => AccessTokenFormat::Opaque,
            };
        }
        if let Some(algorithm) = self.access_token_algorithm {
            base.access_token_algorithm = Some(algorithm);
        }
        if let Some(lifetime) = self.access_token_lifetime {
            base.access_token_lifetime = Some(lifetime);
        }
        if let Some(introspection) = self.introspection {
            base.introspection = introspection;
        }
        if let Some(jwks) = self.jwks {
            let text = match jwks.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
                None => jwks,
            };
            base.jwks = Some(serde_json::from_str(&text).context("--jwks is not JSON")?);
            base.jwks_uri = None;
        }
        if let Some(uri) = self.jwks_uri {
            base.jwks_uri = Some(uri);
            base.jwks = None;
        }
        Ok(base)
    }
}

/// The settings a new client starts from: confidential with Basic authentication, or public with
/// `none` when `--type public` is given.
fn create_defaults(args: &SettingsArgs) -> ClientSettings {
    if matches!(args.client_type, Some(TypeArg::Public)) {
        ClientSettings {
            client_type: ClientType::Public,
            auth_method: AuthMethod::None,
            ..ClientSettings::default()
        }
    } else {
        ClientSettings::default()
    }
}

pub async fn run(command: ClientCommand, storage: &dyn Storage, audit: &Audit, json: bool) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let mut rng = rand::rngs::OsRng;
    let event = |kind: EventKind, id: &str| Event::new(kind, Actor::Admin).client(id).detail("via", "cli");
    match command {
        ClientCommand::Create {
            id,
            admin,
            mut settings,
        } => {
            let base = settings.base(create_defaults(&settings))?;
            let mut settings = settings.apply(base)?;
            if admin {
                if !settings.grant_types.contains(&GrantType::ClientCredentials) {
                    settings.grant_types.push(GrantType::ClientCredentials);
                }
                if !settings.scopes.iter().any(|s| s == ADMIN_SCOPE) {
                    settings.scopes.push(ADMIN_SCOPE.to_owned());
                }
            }
            let registered = clients::create(storage, &mut rng, now, id, settings).await?;
            audit.record(now, event(EventKind::ClientCreated, &registered.client.id));
            print_client(&registered.client, registered.secret.as_deref(), json);
        }
        ClientCommand::List => {
            let all = storage.clients().list().await?;
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(all.iter().map(|c| client_json(c, None)).collect())
                );
            } else {
                for client in &all {
                    let settings = &client.settings;
                    let grants: Vec<_> = settings.grant_types.iter().map(|g| g.as_str()).collect();
                    println!(
                        "{:<32} {:<12} {:<20} {}",
                        client.id,
                        format!("{:?}", settings.client_type).to_lowercase(),
                        settings.auth_method.as_str(),
                        grants.join(",")
                    );
                }
            }
        }
        ClientCommand::Show { id } => print_client(&clients::show(storage, &id).await?, None, json),
        ClientCommand::Update { id, mut settings } => {
            let current = clients::show(storage, &id).await?;
            let base = settings.base(current.settings)?;
            let updated = clients::update(storage, &mut rng, now, &id, settings.apply(base)?).await?;
            audit.record(now, event(EventKind::ClientUpdated, &id));
            print_client(&updated.client, updated.secret.as_deref(), json);
        }
        ClientCommand::RotateSecret { id } => {
            let rotated = clients::rotate_secret(storage, &mut rng, now, &id).await?;
            audit.record(now, event(EventKind::ClientSecretRotated, &id));
            print_client(&rotated.client, rotated.secret.as_deref(), json);
        }
        ClientCommand::Delete { id } => {
            clients::delete(storage, &id).await?;
            audit.record(now, event(EventKind::ClientDeleted, &id));
            if json {
                println!("{}", serde_json::json!({ "deleted": id }));
            } else {
                println!("deleted client {id}");
            }
        }
    }
    Ok(())
}

fn client_json(client: &Client, secret: Option<&str>) -> serde_json::Value {
    let mut value = serde_json::to_value(&client.settings).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("client_id".into(), client.id.clone().into());
        object.insert("created_at".into(), client.created_at.0.into());
        object.insert("updated_at".into(), client.updated_at.0.into());
        if let Some(secret) = secret {
            object.insert("client_secret".into(), secret.into());
        }
    }
    value
}

fn print_client(client: &Client, secret: Option<&str>, json: bool) {
    if json {
        println!("{}", client_json(client, secret));
        return;
    }
    let value = client_json(client, None);
    println!("client_id: {}", client.id);
    if let Some(object) = value.as_object() {
        for (key, field) in object {
            if key != "client_id" {
                println!("{key}: {field}");
            }
        }
    }
    if let Some(secret) = secret {
        println!("client_secret: {secret}");
        println!("(the secret is shown only now; it is stored hashed and cannot be shown again)");
    }
}
