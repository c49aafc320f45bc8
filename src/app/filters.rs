//! Which filters a merchant's publishes on a topic meet, as this process last learned them
//! from the store (see `store::publish_judged`): judging them before the publish reaches
//! the store saves it a second round. An entry is forgotten after `TTL`, so a filter
//! removed from every webhook stops being judged; publishes of merchants without filtered
//! webhooks never make an entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::MerchantId;

/// How long a learned set is trusted before the store is asked again.
const TTL: Duration = Duration::from_secs(60);
/// Most (merchant, topic) entries; past it the map starts again.
const MAX_ENTRIES: usize = 10_000;

/// By merchant and topic: the filters met, and when that was learned.
type Entries = HashMap<(MerchantId, Box<str>), (Vec<Arc<str>>, Instant)>;

#[derive(Default)]
pub struct LearnedFilters {
    entries: Mutex<Entries>,
}

impl LearnedFilters {
    /// The filters `merchant`'s publishes on `topic` were last seen to meet (none known: empty).
    pub fn get(&self, merchant: MerchantId, topic: &str) -> Vec<Arc<str>> {
        let entries = self.lock();
        if entries.is_empty() {
            return Vec::new();
        }
        match entries.get(&(merchant, topic.into())) {
            Some((filters, at)) if at.elapsed() < TTL => filters.clone(),
            _ => Vec::new(),
        }
    }

    /// Remembers `filters` for `merchant` and `topic` (replacing what was known).
    pub fn set(&self, merchant: MerchantId, topic: &str, filters: Vec<Arc<str>>) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert((merchant, topic.into()), (filters, Instant::now()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
