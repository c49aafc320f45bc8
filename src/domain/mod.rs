//! Validated domain types. Each type can only be built through a fallible constructor,
//! so a value that exists past the API boundary is known to be valid ("parse, don't validate").

pub mod broker_url;
pub mod catalog;
pub mod description;
pub mod filter;
pub mod flag;
pub mod headers;
pub mod health;
pub mod ids;
pub mod payload;
pub mod portal;
pub mod records;
pub mod rotation;
pub mod secret;
pub mod sent_headers;
pub mod signing_keys;
pub mod steering;
pub mod target;
pub mod topic;
pub mod trace_context;
pub mod user;
pub mod webhook;
pub mod webhook_change;
pub mod webhook_url;

pub use description::WebhookDescription;
pub use flag::parse_flag;
pub use headers::ExtraHeaders;
pub use ids::{DeliveryId, EventId, MerchantId, UserId, WebhookId};
pub use payload::{BodyTemplate, DeliveryStatus};
pub use records::{
    AttemptLog, ClaimedDelivery, DeliveryDetail, DeliveryFilter, DeliveryRecord, DeliverySearch, DeliveryUpdate,
    DisabledAnnouncement, Failing, KeyCheck, MerchantSummary, PayloadRecord, PublishRequest, Published, Recovered,
    Requeue, SchemaChecked, Scope, StatusTarget, StoredSecrets, UserRecord,
};
pub use rotation::{RotateOutcome, SecretRotation};
pub use secret::SecretKey;
pub use sent_headers::SentHeaders;
pub use signing_keys::{KeyPair, PreviousKey, SignatureScheme};
pub use steering::{FilterSource, MaxRate};
pub use topic::{Catalog, Topic, TopicList, TopicPattern};
pub use trace_context::TraceParent;
pub use user::{ApiKey, MerchantCode, Role, UserName};
pub use webhook::{NewWebhook, Webhook};
pub use webhook_change::WebhookChange;
pub use webhook_url::WebhookUrl;
