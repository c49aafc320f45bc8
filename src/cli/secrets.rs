//! `hookd secrets reencrypt`: every stored secret under the first key of
//! `HOOKD_ENCRYPTION_KEYS` (in clear without it), safe to re-run and to run while nodes
//! serve (see `sealing::reencrypt`).

use std::sync::Arc;

use clap::Subcommand;

use crate::config::Config;
use crate::sealing::reencrypt::reencrypt;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Rewrite every webhook secret, previous secret and private key under the first key of
    /// HOOKD_ENCRYPTION_KEYS (after putting a new key in front, or to encrypt secrets stored
    /// before encryption was turned on); prints the counts
    Reencrypt,
}

pub async fn run(command: SecretsCommand, store: Arc<dyn Store>, config: &Config) -> anyhow::Result<()> {
    match command {
        SecretsCommand::Reencrypt => {
            let keyring = &config.encryption_keys;
            if !keyring.is_on() {
                eprintln!("hookd: HOOKD_ENCRYPTION_KEYS is not set: secrets are written in clear");
            }
            let done = reencrypt(&*store, keyring).await?;
            println!(
                "webhooks={} rewritten={} unchanged={} changed_meanwhile={} key={}",
                done.webhooks,
                done.rewritten,
                done.unchanged,
                done.changed_meanwhile,
                keyring.current_id().unwrap_or("none (clear text)")
            );
            if done.changed_meanwhile > 0 {
                eprintln!(
                    "hookd: {} webhook(s) changed while this ran and were left as written; run it again to cover them",
                    done.changed_meanwhile
                );
            }
            Ok(())
        }
    }
}
