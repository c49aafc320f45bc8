//! `hookd user add|list|remove|rotate-key`: API users made by an operator with database
//! access (admins may also use the API's `user.*`, CONTRACT §7.1; both follow the rules of
//! `app::provision`). A new key is printed once (alone on stdout's last line) and stored
//! only as a hash.

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::app::provision::{self, UserRequest};
use crate::domain::MerchantCode;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user and print its new API key
    Add {
        /// Login name
        name: String,
        /// A merchant user: the merchant it manages (created if it does not exist yet). A
        /// publisher: a merchant it may publish for (repeat it; none: any merchant; each must exist)
        #[arg(long = "merchant", value_name = "CODE", conflicts_with = "admin")]
        merchants: Vec<String>,
        /// Make an admin (may publish events and see every merchant)
        #[arg(long, conflicts_with = "publisher")]
        admin: bool,
        /// Make a publisher (may only publish events and read the topic catalog)
        #[arg(long)]
        publisher: bool,
    },
    /// List users
    List,
    /// Remove a user (its sessions end at once)
    Remove { name: String },
    /// Give a user a new API key and print it; the old key and its sessions stop at once
    RotateKey { name: String },
}

pub async fn run(cmd: UserCommand, store: Arc<dyn Store>) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            merchants,
            admin,
            publisher,
        } => {
            let request = match (admin, publisher, merchants.as_slice()) {
                (true, _, _) => UserRequest {
                    username: name,
                    role: "admin".into(),
                    ..UserRequest::default()
                },
                (false, true, codes) => UserRequest {
                    username: name,
                    role: "publisher".into(),
                    merchant_codes: (!codes.is_empty()).then(|| codes.to_vec()),
                    ..UserRequest::default()
                },
                (false, false, [code]) => {
                    let code = MerchantCode::parse(code)?;
                    store.merchant_ensure(&code).await.context("creating merchant")?;
                    UserRequest {
                        username: name,
                        role: "merchant".into(),
                        merchant_code: Some(code.as_str().to_string()),
                        ..UserRequest::default()
                    }
                }
                (false, false, []) => bail!("give --merchant CODE, --admin or --publisher"),
                (false, false, _) => bail!("a merchant user has one --merchant (or give --publisher)"),
            };
            let (user, key) = provision::user_create(&*store, request).await?;
            eprintln!(
                "created {} user '{}'; its API key is shown once:",
                user.role.as_str(),
                user.name
            );
            println!("{}", key.expose());
        }
        UserCommand::List => {
            for u in store.user_list().await? {
                let merchants = match (&u.merchant_code, u.merchant_codes.is_empty()) {
                    (Some(code), _) => code.clone(),
                    (None, false) => u.merchant_codes.join(","),
                    (None, true) => "-".to_string(),
                };
                println!("{}\t{}\t{merchants}", u.name, u.role.as_str());
            }
        }
        UserCommand::Remove { name } => {
            if !store.user_remove(&name).await? {
                bail!("no user named '{name}'");
            }
            eprintln!("removed user '{name}'");
        }
        UserCommand::RotateKey { name } => {
            let key = provision::user_rotate_key(&*store, &name).await?;
            eprintln!("new API key for '{name}' (the old one and its sessions no longer work); shown once:");
            println!("{}", key.expose());
        }
    }
    Ok(())
}
