//! Which merchant an admin's publish (or webhook) is for, without a database read each time.
//!
//! Merchants are never renamed or deleted, so the id a code was found under is kept. "The
//! only merchant", used when an admin names none, is kept for a second: another process
//! (`hookd user create`, another node) may add a merchant at any moment, and a read done
//! per publish would not close that race either, since it is not part of the publish's
//! transaction. Once there are several merchants, that stays so and is kept.
//!
//! When "the only merchant" goes stale, every publish then in progress needs the list: they
//! share one read (`InFlight`) rather than each taking an API connection for it. A burst of
//! single-event publishes read the list once a second instead of once per publish in flight,
//! which on a small pool waited past its acquire timeout and failed publishes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::in_flight::InFlight;
use super::{App, AppError};
use crate::domain::MerchantId;

/// How long "the only merchant" is trusted without asking the store again.
const ONLY_FOR: Duration = Duration::from_secs(1);
/// Codes remembered at most; past that the memory starts again.
const MAX_CODES: usize = 10_000;

#[derive(Default)]
pub(super) struct MerchantCache {
    inner: Mutex<Known>,
    /// The list read in progress, if any, shared by the callers that need it meanwhile.
    reading: InFlight<(), Arc<ListRead>>,
}

/// A read of the merchant list: when it began, and the list.
type ListRead = (Instant, Vec<(MerchantId, String)>);

#[derive(Default)]
struct Known {
    by_code: HashMap<String, MerchantId>,
    only: Option<(Instant, MerchantId, String)>,
    several: bool,
}

/// What the cache can say about an admin naming no merchant.
enum Unnamed {
    Only(MerchantId, String),
    Several,
    Unknown,
}

impl MerchantCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn by_code(&self, code: &str) -> Option<MerchantId> {
        self.lock().by_code.get(code).copied()
    }

    fn remember(&self, code: &str, id: MerchantId) {
        let mut known = self.lock();
        if known.by_code.len() >= MAX_CODES {
            known.by_code.clear();
        }
        known.by_code.insert(code.to_string(), id);
    }

    fn unnamed(&self, now: Instant) -> Unnamed {
        let known = self.lock();
        match &known.only {
            _ if known.several => Unnamed::Several,
            Some((at, id, code)) if now.duration_since(*at) < ONLY_FOR => Unnamed::Only(*id, code.clone()),
            _ => Unnamed::Unknown,
        }
    }

    /// Learns from a full list of merchants read at `at`.
    fn learn(&self, merchants: &[(MerchantId, String)], at: Instant) {
        let mut known = self.lock();
        match merchants {
            [] => known.only = None,
            [(id, code)] => known.only = Some((at, *id, code.clone())),
            _ => {
                known.only = None;
                known.several = true;
            }
        }
    }
}

impl App {
    /// The merchant with this code, if there is one (remembered once found).
    pub async fn merchant_id(&self, code: &str) -> Result<Option<MerchantId>, AppError> {
        if let Some(id) = self.merchants.by_code(code) {
            return Ok(Some(id));
        }
        let found = self.store.merchant_by_code(code).await?;
        if let Some(id) = found {
            self.merchants.remember(code, id);
        }
        Ok(found)
    }

    /// For admin operations: the named merchant, or the only one when none is named.
    pub async fn resolve_merchant(&self, code: Option<&str>) -> Result<(MerchantId, String), AppError> {
        if let Some(code) = code {
            return match self.merchant_id(code).await? {
                Some(id) => Ok((id, code.to_string())),
                None => Err(AppError::InvalidData(format!("merchant_code: no merchant '{code}'"))),
            };
        }
        match self.merchants.unnamed(Instant::now()) {
            Unnamed::Only(id, code) => return Ok((id, code)),
            Unnamed::Several => return Err(several()),
            Unnamed::Unknown => {}
        }
        let read = (self.merchants.reading)
            .try_run((), || async {
                let read_at = Instant::now();
                Ok::<_, AppError>(Arc::new((read_at, self.store.merchant_list().await?)))
            })
            .await?;
        let (read_at, merchants) = &*read;
        self.merchants.learn(merchants, *read_at);
        match merchants.as_slice() {
            [(only, code)] => Ok((*only, code.clone())),
            [] => Err(AppError::InvalidData(
                "no merchant exists yet (create a merchant user first)".into(),
            )),
            _ => Err(several()),
        }
    }
}

fn several() -> AppError {
    AppError::InvalidData("merchant_code is required when more than one merchant exists".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: i64, code: &str) -> (MerchantId, String) {
        (MerchantId(id), code.to_string())
    }

    #[test]
    fn the_only_merchant_is_trusted_for_a_second_and_no_longer() {
        let cache = MerchantCache::default();
        let t0 = Instant::now();
        assert!(matches!(cache.unnamed(t0), Unnamed::Unknown));
        cache.learn(&[m(7, "shop")], t0);
        assert!(
            matches!(cache.unnamed(t0 + Duration::from_millis(999)), Unnamed::Only(MerchantId(7), ref c) if c == "shop")
        );
        assert!(matches!(cache.unnamed(t0 + ONLY_FOR), Unnamed::Unknown));
    }

    #[test]
    fn several_merchants_stay_several_and_none_is_never_kept() {
        let cache = MerchantCache::default();
        let t0 = Instant::now();
        cache.learn(&[], t0);
        assert!(matches!(cache.unnamed(t0), Unnamed::Unknown));
        cache.learn(&[m(1, "a"), m(2, "b")], t0);
        assert!(matches!(
            cache.unnamed(t0 + Duration::from_secs(3600)),
            Unnamed::Several
        ));
    }

    #[test]
    fn codes_are_remembered_up_to_a_bound() {
        let cache = MerchantCache::default();
        for i in 0..MAX_CODES as i64 {
            cache.remember(&format!("m{i}"), MerchantId(i));
        }
        assert_eq!(cache.by_code("m5"), Some(MerchantId(5)));
        cache.remember("one-more", MerchantId(-1));
        assert_eq!(cache.by_code("m5"), None, "full: the memory starts again");
        assert_eq!(cache.by_code("one-more"), Some(MerchantId(-1)));
        assert_eq!(cache.lock().by_code.len(), 1);
    }
}
