//! A bounded map from text to a compiled thing (a CEL program, a regex), shared by every
//! thread: two generations of at most `cap` entries. A lookup that misses the current
//! generation moves the entry up from the previous one; when the current one is full it
//! becomes the previous one (dropping the older). So what is in use stays, and memory is
//! bounded, without a recency list to maintain on every hit.

use std::collections::HashMap;
use std::sync::Mutex;

pub struct BoundedCache<V> {
    cap: usize,
    inner: Mutex<Generations<V>>,
}

struct Generations<V> {
    current: HashMap<Box<str>, V>,
    previous: HashMap<Box<str>, V>,
}

impl<V: Clone> BoundedCache<V> {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            inner: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
            }),
        }
    }

    /// The entry for `key`, made by `make` on a miss. `make` runs outside the lock, so a
    /// slow one does not hold up the other threads' hits; it returns None for a value not
    /// to remember (the next lookup tries again).
    pub fn get_or_make(&self, key: &str, make: impl FnOnce() -> (V, bool)) -> V {
        if let Some(found) = self.get(key) {
            return found;
        }
        let (made, keep) = make();
        if keep {
            let mut g = self.lock();
            g.insert(self.cap, key.into(), made.clone());
        }
        made
    }

    fn get(&self, key: &str) -> Option<V> {
        let mut g = self.lock();
        if let Some(found) = g.current.get(key) {
            return Some(found.clone());
        }
        let (text, found) = g.previous.remove_entry(key)?;
        g.insert(self.cap, text, found.clone());
        Some(found)
    }

    /// Entries held (both generations).
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.current.len() + g.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<V> Generations<V> {
    fn insert(&mut self, cap: usize, text: Box<str>, value: V) {
        if self.current.len() >= cap {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(text, value);
    }
}
