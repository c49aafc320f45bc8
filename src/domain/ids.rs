//! Typed identifiers, so a webhook id cannot be passed where a delivery id is expected.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A merchant (tenant).
    MerchantId
);
id_type!(
    /// An API user, admin or merchant.
    UserId
);
id_type!(
    /// A registered webhook.
    WebhookId
);
id_type!(
    /// A published event.
    EventId
);
id_type!(
    /// One payload for one webhook (what `webhook.deliveries` lists).
    DeliveryId
);
