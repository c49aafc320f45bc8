//! `hookd user add|list|remove`: API users are made here, never through the API, and a new
//! key is printed once (alone on stdout's last line) and stored only as a hash.

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::domain::{ApiKey, MerchantCode, Role, UserName};
use crate::store::{Store, StoreError};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user and print its new API key
    Add {
        /// Login name
        name: String,
        /// The merchant this user manages (created if it does not exist yet)
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        merchant: Option<String>,
        /// Make an admin (may publish events and see every merchant)
        #[arg(long)]
        admin: bool,
    },
    /// List users
    List,
    /// Remove a user (its sessions end at once)
    Remove { name: String },
}

pub async fn run(cmd: UserCommand, store: Arc<dyn Store>) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { name, merchant, admin } => {
            let name = UserName::parse(&name)?;
            let (role, merchant) = match (admin, merchant) {
                (true, _) => (Role::Admin, None),
                (false, Some(code)) => {
                    let code = MerchantCode::parse(&code)?;
                    (
                        Role::Merchant,
                        Some(store.merchant_ensure(&code).await.context("creating merchant")?),
                    )
                }
                (false, None) => bail!("give --merchant CODE or --admin"),
            };
            let key = ApiKey::generate();
            let hash = tokio::task::spawn_blocking({
                let key = ApiKey::from_plain(key.expose());
                move || key.hash()
            })
            .await?;
            match store.user_create(&name, role, merchant, &hash).await {
                Err(StoreError::Conflict(_)) => bail!("a user named '{}' already exists", name.as_str()),
                other => other.context("creating user")?,
            };
            eprintln!(
                "created {} user '{}'; its API key is shown once:",
                role.as_str(),
                name.as_str()
            );
            println!("{}", key.expose());
        }
        UserCommand::List => {
            for u in store.user_list().await? {
                println!(
                    "{}\t{}\t{}",
                    u.name,
                    u.role.as_str(),
                    u.merchant_code.as_deref().unwrap_or("-")
                );
            }
        }
        UserCommand::Remove { name } => {
            if !store.user_remove(&name).await? {
                bail!("no user named '{name}'");
            }
            eprintln!("removed user '{name}'");
        }
    }
    Ok(())
}
