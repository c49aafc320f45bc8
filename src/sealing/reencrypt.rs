//! `hookd secrets reencrypt` and the startup check of the keys the database needs.
//!
//! Reencrypting walks the webhooks by id in pages; each page is rewritten in one
//! transaction, each row only where it still holds what was read (compare-and-set), so a
//! secret rotated meanwhile by a serving node is kept (it was written under that node's
//! first key; a re-run covers it if that was an older one). A value already under the
//! first key is left as it is, so a re-run writes nothing.

use crate::domain::signing_keys::{previous_from_stored, previous_to_stored};
use crate::domain::{StoredSecrets, WebhookId};
use crate::sealing::{Keyring, OpenError};
use crate::store::{Store, StoreError};

/// Rows per page and per transaction.
pub const BATCH: i64 = 500;

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reencrypted {
    /// Webhooks looked at.
    pub webhooks: u64,
    /// Webhooks whose secrets were rewritten.
    pub rewritten: u64,
    /// Webhooks already under the first key.
    pub unchanged: u64,
    /// Webhooks changed by someone else between read and write (left as they were).
    pub changed_meanwhile: u64,
}

/// Fails when a stored secret needs a key id that `keyring` lacks, or one it has under
/// that id does not open it: one value per key id in use is tried.
pub async fn check_keys(store: &dyn Store, keyring: &Keyring) -> Result<(), StoreError> {
    for (webhook, value) in store.secrets_key_samples().await? {
        keyring.open(webhook.0, &value)?;
    }
    Ok(())
}

/// Rewrites every stored secret under `keyring`'s first key (into clear text when it has
/// none: how encryption is turned off).
pub async fn reencrypt(store: &dyn Store, keyring: &Keyring) -> Result<Reencrypted, StoreError> {
    let mut done = Reencrypted::default();
    let mut after = WebhookId(0);
    loop {
        let page = store.secrets_page(after, BATCH).await?;
        let Some(last) = page.last() else {
            return Ok(done);
        };
        after = last.webhook;
        done.webhooks += page.len() as u64;
        let mut changes = Vec::new();
        for old in page {
            match resealed(keyring, &old)? {
                Some(new) => changes.push((old, new)),
                None => done.unchanged += 1,
            }
        }
        let asked = changes.len() as u64;
        let written = if changes.is_empty() {
            0
        } else {
            store.secrets_replace(changes).await?
        };
        done.rewritten += written;
        done.changed_meanwhile += asked - written;
    }
}

/// The row under the first key; None when it already is.
fn resealed(keyring: &Keyring, old: &StoredSecrets) -> Result<Option<StoredSecrets>, OpenError> {
    let id = old.webhook.0;
    let reseal = |v: &str| keyring.reseal(id, v);
    let secret = reseal(&old.secret_key)?;
    let signing = match &old.signing_key {
        Some(k) => reseal(k)?,
        None => None,
    };
    let mut previous = previous_from_stored(old.previous_keys.as_deref());
    let mut previous_changed = false;
    for key in &mut previous {
        if let Some(v) = reseal(&key.secret_key)? {
            key.secret_key = v;
            previous_changed = true;
        }
        if let Some(v) = key.signing_key.as_deref().map(reseal).transpose()?.flatten() {
            key.signing_key = Some(v);
            previous_changed = true;
        }
    }
    if secret.is_none() && signing.is_none() && !previous_changed {
        return Ok(None);
    }
    Ok(Some(StoredSecrets {
        webhook: old.webhook,
        secret_key: secret.unwrap_or_else(|| old.secret_key.clone()),
        signing_key: signing.or_else(|| old.signing_key.clone()),
        previous_keys: if previous_changed {
            previous_to_stored(&previous)
        } else {
            old.previous_keys.clone()
        },
    }))
}
