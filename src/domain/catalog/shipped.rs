//! The catalog entries that come with hookd (`catalog/*.json` at the repo root, compiled in)
//! and the seed made of them and the topics file.

use serde_json::Value;

use super::{CatalogEntry, Definition};
use crate::domain::Catalog;

const FILES: &[&str] = &[
    include_str!("../../../catalog/order_created.json"),
    include_str!("../../../catalog/order_shipped.json"),
    include_str!("../../../catalog/shipment_packed.json"),
    include_str!("../../../catalog/inventory_adjusted.json"),
    include_str!("../../../catalog/delivery_processed.json"),
    include_str!("../../../catalog/webhook_disabled.json"),
    include_str!("../../../catalog/test_ping.json"),
];

/// The shipped entries, each checked as `topic.define` checks one.
pub fn entries() -> Vec<CatalogEntry> {
    FILES
        .iter()
        .map(|text| {
            let value: Value = serde_json::from_str(text).expect("a shipped catalog file is JSON");
            let definition = Definition::from_json(&value).expect("a shipped catalog entry is well formed");
            let (entry, _) = definition
                .apply(None)
                .expect("a shipped schema compiles and its example matches");
            entry
        })
        .collect()
}

/// What a catalog starts with: every topic of the topics file, described by the shipped entry
/// when there is one. Only topics missing from the database are added from it.
pub fn seed(topics: &Catalog) -> Vec<CatalogEntry> {
    let shipped = entries();
    topics
        .iter()
        .map(|t| {
            shipped
                .iter()
                .find(|e| e.topic == t)
                .cloned()
                .unwrap_or_else(|| CatalogEntry::named(t))
        })
        .collect()
}
