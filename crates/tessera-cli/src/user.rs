//! `tessera user create|list|show|passwd|disable|enable|delete`.
//!
//! Passwords are read from `--password-stdin` (one line) or, on a terminal, prompted for; they
//! never appear on the command line, where other users could see them in the process list.

use std::io::BufRead as _;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use tessera_core::{Clock as _, User, UserClaims};
use tessera_server::audit::{Actor, Audit, Event, EventKind};
use tessera_server::clock::SystemClock;
use tessera_server::config::Config;
use tessera_server::users;
use tessera_storage::Storage;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create {
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        claims: ClaimArgs,
    },
    /// List users.
    List,
    /// Show a user (by username or id).
    Show { user: String },
    /// Set a user's password (read from standard input).
    Passwd { user: String },
    /// Disable a user: no more logins.
    Disable { user: String },
    /// Enable a disabled user.
    Enable { user: String },
    /// Change a user's claims: only the options given change.
    Update {
        user: String,
        #[command(flatten)]
        claims: ClaimArgs,
    },
    /// Delete a user.
    Delete { user: String },
}

/// Standard claims (OIDC Core §5.1).
#[derive(Args)]
pub struct ClaimArgs {
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    given_name: Option<String>,
    #[arg(long)]
    family_name: Option<String>,
    #[arg(long)]
    email: Option<String>,
    /// Whether the email address is verified.
    #[arg(long)]
    email_verified: Option<bool>,
    #[arg(long)]
    phone_number: Option<String>,
    /// Every claim as JSON (inline or @file), e.g. '{"name":"Ada","locale":"en"}'; options win.
    #[arg(long)]
    claims: Option<String>,
}

impl ClaimArgs {
    fn apply(self, mut claims: UserClaims) -> anyhow::Result<UserClaims> {
        if let Some(json) = self.claims {
            let text = match json.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
                None => json,
            };
            claims = serde_json::from_str(&text).context("--claims")?;
        }
        let set = |target: &mut Option<String>, value: Option<String>| {
            if value.is_some() {
                *target = value;
            }
        };
        set(&mut claims.name, self.name);
        set(&mut claims.given_name, self.given_name);
        set(&mut claims.family_name, self.family_name);
        set(&mut claims.email, self.email);
        set(&mut claims.phone_number, self.phone_number);
        if self.email_verified.is_some() {
            claims.email_verified = self.email_verified;
        }
        Ok(claims)
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

pub async fn run(
    command: UserCommand,
    config: &Config,
    storage: &dyn Storage,
    audit: &Audit,
    json: bool,
) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let revocation = config.refresh_tokens.revoke_on_password_change;
    let record = |kind: EventKind, user: &User| {
        audit.record(
            now,
            Event::new(kind, Actor::Admin)
                .user(user.id.clone())
                .detail("via", "cli"),
        );
    };
    match command {
        UserCommand::Create {
            username,
            password_stdin,
            claims,
        } => {
            let password = if password_stdin { Some(read_password()?) } else { None };
            let user = users::create(
                storage,
                &mut rand::rngs::OsRng,
                now,
                &username,
                password.as_deref(),
                claims.apply(UserClaims::default())?,
            )
            .await?;
            record(EventKind::UserCreated, &user);
            print_user(&user, json);
        }
        UserCommand::List => {
            let all = storage.users().list().await?;
            if json {
                println!("{}", serde_json::Value::Array(all.iter().map(user_json).collect()));
            } else {
                for user in &all {
                    println!(
                        "{:<24} {:<24} {}",
                        user.username,
                        user.id,
                        if user.is_disabled { "disabled" } else { "enabled" }
                    );
                }
            }
        }
        UserCommand::Show { user } => print_user(&users::show(storage, &user).await?, json),
        UserCommand::Passwd { user } => {
            let user = users::set_password(storage, now, &user, &read_password()?, revocation).await?;
            record(EventKind::PasswordChanged, &user);
            print_user(&user, json);
        }
        UserCommand::Disable { user } => {
            let user = users::set_disabled(storage, now, &user, true, revocation).await?;
            record(EventKind::UserUpdated, &user);
            print_user(&user, json);
        }
        UserCommand::Enable { user } => {
            let user = users::set_disabled(storage, now, &user, false, revocation).await?;
            record(EventKind::UserUpdated, &user);
            print_user(&user, json);
        }
        UserCommand::Update { user, claims } => {
            let current = users::show(storage, &user).await?;
            let user = users::set_claims(storage, now, &user, claims.apply(current.claims)?).await?;
            record(EventKind::UserUpdated, &user);
            print_user(&user, json);
        }
        UserCommand::Delete { user } => {
            let existing = users::show(storage, &user).await?;
            users::delete(storage, now, &existing.id).await?;
            record(EventKind::UserDeleted, &existing);
            if json {
                println!("{}", serde_json::json!({ "deleted": user }));
            } else {
                println!("deleted user {user}");
            }
        }
    }
    Ok(())
}

fn user_json(user: &User) -> serde_json::Value {
    serde_json::json!({
        "id": user.id,
        "username": user.username,
        "claims": user.claims,
        "is_disabled": user.is_disabled,
        "has_password": user.password_hash.is_some(),
        "password_changed_at": user.password_changed_at.map(|t| t.0),
        "created_at": user.created_at.0,
        "updated_at": user.updated_at.0,
    })
}

fn print_user(user: &User, json: bool) {
    let value = user_json(user);
    if json {
        println!("{value}");
    } else if let Some(object) = value.as_object() {
        for (key, field) in object {
            println!("{key}: {field}");
        }
    }
}
