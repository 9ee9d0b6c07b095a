//! `tessera keys list|rotate`.

use clap::Subcommand;
use tessera_core::keys::KeyState;
use tessera_core::Clock as _;
use tessera_server::audit::{Actor, Audit, Event, EventKind};
use tessera_server::clock::SystemClock;
use tessera_server::config::Config;
use tessera_server::keys::{load_encryption_key, KeyStore};
use tessera_storage::Storage;
use tessera_types::JwsAlgorithm;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List signing keys and their state.
    List,
    /// Add a new key (published now, signing after keys.publication_delay); the old key of the
    /// same algorithm retires once the longest token lifetime has passed after that.
    Rotate {
        /// Algorithm(s) to rotate: ES256, RS256, EdDSA. Default: all.
        #[arg(long = "algorithm", value_parser = parse_algorithm)]
        algorithms: Vec<JwsAlgorithm>,
    },
}

fn parse_algorithm(value: &str) -> Result<JwsAlgorithm, String> {
    JwsAlgorithm::parse(value).ok_or_else(|| format!("unknown algorithm {value:?} (ES256, RS256, EdDSA)"))
}

pub async fn run(
    command: KeysCommand,
    config: &Config,
    storage: &dyn Storage,
    audit: &Audit,
    json: bool,
) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let keys = KeyStore::open(storage, load_encryption_key(config)?, now).await?;
    match command {
        KeysCommand::List => {
            let records = keys.records();
            if json {
                let rows: Vec<_> = records
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "kid": k.kid, "algorithm": k.algorithm, "state": state_name(k.state(now)),
                            "created_at": k.created_at.0, "activates_at": k.activates_at.0, "retires_at": k.retires_at.map(|t| t.0),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for k in &records {
                    let signing = keys.signer(k.algorithm, now).is_some_and(|s| s.kid() == k.kid);
                    println!(
                        "{:<40} {:<6} {:<9}{}",
                        k.kid,
                        k.algorithm.as_str(),
                        state_name(k.state(now)),
                        if signing { " (signing)" } else { "" }
                    );
                }
            }
        }
        KeysCommand::Rotate { algorithms } => {
            let algorithms = if algorithms.is_empty() {
                JwsAlgorithm::ALL.to_vec()
            } else {
                algorithms
            };
            let retire_after = config
                .tokens
                .access_token_max_lifetime
                .max(config.tokens.id_token_lifetime);
            let rotated = keys
                .rotate(storage, &algorithms, now, config.keys.publication_delay, retire_after)
                .await?;
            for key in &rotated {
                audit.record(
                    now,
                    Event::new(EventKind::KeyRotated, Actor::Admin)
                        .detail("kid", key.kid.clone())
                        .detail("algorithm", key.algorithm.as_str())
                        .detail("via", "cli"),
                );
            }
            if json {
                println!("{}", serde_json::to_value(&rotated)?);
            } else {
                for key in &rotated {
                    println!(
                        "new {} key {}: published now, signs from {} (in {} s); previous keys retire at {}",
                        key.algorithm,
                        key.kid,
                        key.activates_at.0,
                        now.seconds_until(key.activates_at),
                        key.previous_retire_at.0
                    );
                }
            }
        }
    }
    Ok(())
}

fn state_name(state: KeyState) -> &'static str {
    match state {
        KeyState::Pending => "pending",
        KeyState::Active => "active",
        KeyState::Retiring => "retiring",
        KeyState::Retired => "retired",
    }
}
