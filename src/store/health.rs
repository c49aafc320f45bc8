//! Whether the store can take writes, for `/readyz`.
//!
//! The one idea: a database can answer `SELECT 1` while every write fails (a full disk, an
//! fsync that errs), and a node in that state should not be called ready. So each store
//! remembers the outcome of its last write attempt: a storage failure (see
//! `StoreError::is_storage_failure`) makes `ping` fail until a later write commits and is
//! durable. A write refused for its own data (a conflict, a constraint) says nothing about
//! the storage and changes nothing here.

use std::sync::{Arc, Mutex};

use super::{StoreError, StoreResult};

#[derive(Default)]
pub struct WriteHealth {
    failing: Mutex<Option<Arc<StoreError>>>,
}

impl WriteHealth {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<StoreError>>> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a write attempt's storage failure.
    pub fn failed(&self, e: Arc<StoreError>) {
        *self.slot() = Some(e);
    }

    /// A write committed and is durable: the storage works again.
    pub fn succeeded(&self) {
        let mut slot = self.slot();
        if slot.is_some() {
            tracing::info!("writes to the database succeed again");
            *slot = None;
        }
    }

    /// Notes what a write attempt's result says about the storage, and passes it on.
    pub fn observe<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        match &result {
            Ok(_) => self.succeeded(),
            Err(e) => {
                if let Some(failure) = e.storage_failure() {
                    self.failed(Arc::new(failure));
                }
            }
        }
        result
    }

    /// Ok unless the last write attempt failed for want of storage.
    pub fn check(&self) -> StoreResult<()> {
        match &*self.slot() {
            None => Ok(()),
            Some(e) => Err(StoreError::WritesFailing(e.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> StoreError {
        StoreError::from_sync(Arc::new(std::io::Error::from_raw_os_error(libc::ENOSPC)))
    }

    #[test]
    fn a_storage_failure_makes_check_fail_until_a_write_succeeds() {
        let health = WriteHealth::default();
        health.check().unwrap();
        assert!(health.observe::<()>(Err(full())).is_err());
        let e = health.check().unwrap_err();
        assert!(
            matches!(&e, StoreError::WritesFailing(cause) if matches!(**cause, StoreError::StorageFull(_))),
            "{e:?}"
        );
        // A request refused for its own data says nothing about the storage.
        let _ = health.observe::<()>(Err(StoreError::Conflict("user")));
        assert!(health.check().is_err());
        health.observe(Ok(())).unwrap();
        health.check().unwrap();
        let _ = health.observe::<()>(Err(StoreError::Conflict("user")));
        health.check().unwrap();
    }
}
