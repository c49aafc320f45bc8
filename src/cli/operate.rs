//! Operator commands: find and act on merchants, webhooks and deliveries without SQL
//! (`hookd merchant list`, `hookd webhook list`, `hookd delivery list|retry`). Each prints
//! a header line and one tab-separated line per item on stdout, so `column -t` or `cut`
//! can take it from there.

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::domain::{DeliveryFilter, DeliveryId, DeliveryStatus, MerchantId, Requeue, Scope, WebhookId};
use crate::redact;
use crate::store::Store;
use crate::time::{format_timestamp_millis, now_millis};

#[derive(Subcommand, Debug)]
pub enum MerchantCommand {
    /// List merchants with how many webhooks each has
    List,
    /// Create a merchant (`user add --merchant` also makes one on first use)
    Add {
        /// Its code: 1 to 64 letters, digits, '.', '_', '-' or '@'
        code: String,
        /// A display name
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// List webhooks (every merchant's, or one's)
    List {
        /// Only this merchant's
        #[arg(long)]
        merchant: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeliveryCommand {
    /// List payloads, newest first
    List {
        /// pending, retrying, success, failed or canceled
        #[arg(long)]
        status: Option<String>,
        /// Only this webhook's
        #[arg(long)]
        webhook: Option<i64>,
        /// Only this merchant's webhooks'
        #[arg(long)]
        merchant: Option<String>,
        /// At most this many per webhook
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
    },
    /// Queue a failed payload again now (a running server sends it within its poll interval)
    Retry {
        /// The delivery id
        id: i64,
    },
}

const DELIVERY_HEADER: &str =
    "delivery_id\twebhook_id\tincrement_id\ttopic\tstatus\tattempts\tlast_http_status\tcreated_at\tlast_error";

pub async fn merchants(cmd: MerchantCommand, store: Arc<dyn Store>) -> anyhow::Result<()> {
    if let MerchantCommand::Add { code, name } = cmd {
        let made = crate::app::provision::merchant_create(&*store, &code, name.as_deref()).await?;
        eprintln!("created merchant '{}'", made.code);
        return Ok(());
    }
    println!("merchant_id\tcode\twebhooks");
    for (id, code) in store.merchant_list().await? {
        println!("{}\t{code}\t{}", id.0, store.webhook_count(id).await?);
    }
    Ok(())
}

async fn merchant_scope(store: &dyn Store, merchant: Option<&str>) -> anyhow::Result<Scope> {
    Ok(match merchant {
        None => Scope::All,
        Some(code) => match store.merchant_by_code(code).await? {
            Some(id) => Scope::Merchant(id),
            None => bail!("no merchant with the code '{code}'"),
        },
    })
}

pub async fn webhooks(cmd: WebhookCommand, store: Arc<dyn Store>) -> anyhow::Result<()> {
    let WebhookCommand::List { merchant } = cmd;
    let scope = merchant_scope(store.as_ref(), merchant.as_deref()).await?;
    let codes: std::collections::HashMap<MerchantId, String> = store.merchant_list().await?.into_iter().collect();
    println!("webhook_id\tmerchant\tis_active\tincrement_id\ttopics\turl\tsignature_scheme\tpublic_key\tdescription");
    for w in store.webhook_list(scope).await? {
        let code = codes.get(&w.merchant_id).map(String::as_str).unwrap_or("?");
        println!(
            "{}\t{code}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            w.id.0,
            w.is_active as u8,
            w.increment_id,
            w.topics,
            // Without userinfo and with query credentials masked (the API shows it as given).
            redact::listed_url(&w.url),
            w.signature_scheme.as_str(),
            w.public_key.as_deref().unwrap_or("-"),
            // The webhook's name (CONTRACT §7.7); one line without control characters, so
            // it cannot break the columns. Last, so scripts cutting earlier columns still fit.
            if w.description.is_empty() {
                "-"
            } else {
                w.description.as_str()
            }
        );
    }
    Ok(())
}

pub async fn deliveries(cmd: DeliveryCommand, store: Arc<dyn Store>) -> anyhow::Result<()> {
    match cmd {
        DeliveryCommand::List {
            status,
            webhook,
            merchant,
            limit,
        } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(DeliveryStatus::parse(s).with_context(|| {
                    format!("--status must be pending, retrying, success, failed or canceled, not '{s}'")
                })?),
            };
            let scope = merchant_scope(store.as_ref(), merchant.as_deref()).await?;
            let hooks: Vec<WebhookId> = match webhook {
                Some(id) => vec![WebhookId(id)],
                None => store.webhook_list(scope).await?.into_iter().map(|w| w.id).collect(),
            };
            let filter = DeliveryFilter {
                status,
                before: None,
                limit,
            };
            println!("{DELIVERY_HEADER}");
            for hook in hooks {
                let Some(webhook) = store.webhook_get(scope, hook).await? else {
                    bail!("no webhook {} (of that merchant)", hook.0);
                };
                // An error may quote the URL: its credentials are masked as in `webhook list`.
                let secrets = redact::listed_url_secrets(&webhook.url);
                for d in store.delivery_list(scope, hook, &filter).await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        d.id.0,
                        d.webhook_id.0,
                        d.increment_id,
                        d.topic,
                        d.status.as_str(),
                        d.attempts,
                        d.last_http_status.map(|s| s.to_string()).unwrap_or_default(),
                        format_timestamp_millis(d.created_at),
                        redact::mask_secrets(&d.last_error.unwrap_or_default(), &secrets).replace(['\t', '\n'], " "),
                    );
                }
            }
            Ok(())
        }
        DeliveryCommand::Retry { id } => {
            match store.delivery_requeue(Scope::All, DeliveryId(id), now_millis()).await? {
                Requeue::Requeued(_) => {
                    // A running server finds it by its queue scan.
                    println!("delivery {id} queued again");
                    Ok(())
                }
                Requeue::NotFound => bail!("no delivery {id}"),
                Requeue::NotFailed(s) => bail!(
                    "delivery {id} is {}; only a failed or successful one can be sent again",
                    s.as_str()
                ),
            }
        }
    }
}
