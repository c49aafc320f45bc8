//! Plain records and selectors passed across the store boundary.

use crate::domain::{MerchantId, Role, UserId, WebhookId};
use crate::time::Millis;

/// A user as stored (the key itself is never stored, only its hash).
#[derive(Clone, Debug)]
pub struct UserRecord {
    pub id: UserId,
    pub name: String,
    pub role: Role,
    pub merchant_id: Option<MerchantId>,
    pub merchant_code: Option<String>,
    pub key_hash: String,
    pub created_at: Millis,
}

/// Whose data a query may see: an admin sees all, a merchant user only its merchant's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Merchant(MerchantId),
}

impl Scope {
    /// The merchant filter as an SQL parameter: None means no filter.
    pub fn merchant_filter(self) -> Option<i64> {
        match self {
            Scope::All => None,
            Scope::Merchant(m) => Some(m.0),
        }
    }
}

/// Which webhooks `webhook.update_status` changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusTarget {
    Id(WebhookId),
    /// Every webhook whose topic list contains this exact entry.
    Topic(String),
}
