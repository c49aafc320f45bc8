//! Throttling of failed logins, per user name and per client address.
//!
//! The one idea to know: each name and each address has a window that opens with its first
//! failed check; once it holds `max` failures, further attempts are refused without
//! checking the key until the window ends. Unknown names count like known ones, so the
//! refusal tells nothing about which names exist. A success clears its name's window (not
//! its address's: one address may hold many users). The table is bounded: names are kept
//! as hashes, IPv6 addresses by their /64, and past `MAX_ENTRIES` new ones are not tracked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Most names and addresses tracked at once.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Subject {
    /// SHA-256 of the user name (names can be long; this keeps each entry small).
    User([u8; 32]),
    Address(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Window {
    opened: Instant,
    failures: u32,
}

/// Failure counts by user name and by client address.
pub struct LoginThrottle {
    max_per_user: u32,
    max_per_address: u32,
    window: Duration,
    windows: Mutex<HashMap<Subject, Window>>,
}

impl LoginThrottle {
    pub fn new(max_per_user: u32, max_per_address: u32, window: Duration) -> Self {
        Self {
            max_per_user,
            max_per_address,
            window,
            windows: Mutex::default(),
        }
    }

    /// `Err(wait)` when `user` or `address` has used up its failures; `wait` is how long
    /// until its window ends.
    pub fn check(&self, user: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let refused = |subject: Subject, max: u32| {
            windows.get(&subject).and_then(|w| {
                let ends = w.opened + self.window;
                (w.failures >= max && ends > now).then(|| ends - now)
            })
        };
        let by_user = refused(user_subject(user), self.max_per_user);
        let by_address = address.and_then(|a| refused(address_subject(a), self.max_per_address));
        match by_user.into_iter().chain(by_address).max() {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed check against `user` and `address`.
    pub fn failed(&self, user: &str, address: Option<IpAddr>) {
        self.count_failure(std::iter::once(user_subject(user)).chain(address.map(address_subject)));
    }

    /// `Err(wait)` when `address` has used up its failures (checks with no user name:
    /// portal links).
    pub fn check_address(&self, address: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let subject = address.map(address_subject);
        match subject.and_then(|s| windows.get(&s)) {
            Some(w) if w.failures >= self.max_per_address && w.opened + self.window > now => {
                Err(w.opened + self.window - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed check against `address` alone.
    pub fn failed_address(&self, address: Option<IpAddr>) {
        self.count_failure(address.map(address_subject).into_iter());
    }

    fn count_failure(&self, subjects: impl Iterator<Item = Subject>) {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        for subject in subjects {
            if windows.len() >= MAX_ENTRIES && !windows.contains_key(&subject) {
                windows.retain(|_, w| w.opened + self.window > now);
                if windows.len() >= MAX_ENTRIES {
                    tracing::warn!("the login throttle table is full; a failure goes uncounted");
                    continue;
                }
            }
            let w = windows.entry(subject).or_insert(Window {
                opened: now,
                failures: 0,
            });
            if w.opened + self.window <= now {
                *w = Window {
                    opened: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }

    /// A successful check clears `user`'s failures.
    pub fn succeeded(&self, user: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.remove(&user_subject(user));
    }
}

fn user_subject(user: &str) -> Subject {
    Subject::User(Sha256::digest(user.as_bytes()).into())
}

/// IPv4 addresses as they are; IPv6 by their /64, which one client usually holds whole.
fn address_subject(address: IpAddr) -> Subject {
    match address {
        IpAddr::V4(_) => Subject::Address(address),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Subject::Address(IpAddr::V4(v4)),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Subject::Address(IpAddr::V6(prefix.into()))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_user_is_refused_after_its_failures_until_the_window_ends() {
        let t = LoginThrottle::new(3, 100, Duration::from_millis(200));
        for _ in 0..3 {
            assert!(t.check("alice", ip("10.0.0.1")).is_ok());
            t.failed("alice", ip("10.0.0.1"));
        }
        let wait = t.check("alice", ip("10.0.0.2")).unwrap_err();
        assert!(wait <= Duration::from_millis(200), "{wait:?}");
        assert!(t.check("bob", ip("10.0.0.1")).is_ok(), "other users are not affected");
        std::thread::sleep(Duration::from_millis(250));
        assert!(t.check("alice", ip("10.0.0.1")).is_ok(), "the window ended");
    }

    #[test]
    fn an_address_is_refused_after_its_failures_whatever_the_name() {
        let t = LoginThrottle::new(100, 3, Duration::from_secs(60));
        for i in 0..3 {
            t.failed(&format!("user{i}"), ip("192.0.2.7"));
        }
        assert!(t.check("someone-else", ip("192.0.2.7")).is_err());
        assert!(t.check("someone-else", ip("192.0.2.8")).is_ok());
        assert!(t.check("someone-else", None).is_ok());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix() {
        let t = LoginThrottle::new(100, 2, Duration::from_secs(60));
        t.failed("a", ip("2001:db8:1:2::1"));
        t.failed("b", ip("2001:db8:1:2::ffff"));
        assert!(t.check("c", ip("2001:db8:1:2:abcd::9")).is_err());
        assert!(t.check("c", ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn a_success_clears_the_users_failures_but_not_the_addresss() {
        let t = LoginThrottle::new(2, 3, Duration::from_secs(60));
        t.failed("alice", ip("10.0.0.1"));
        t.failed("alice", ip("10.0.0.1"));
        assert!(t.check("alice", None).is_err());
        t.succeeded("alice");
        assert!(t.check("alice", None).is_ok());
        t.failed("bob", ip("10.0.0.1"));
        assert!(t.check("carol", ip("10.0.0.1")).is_err());
    }

    #[test]
    fn address_only_failures_share_the_address_window() {
        let t = LoginThrottle::new(100, 2, Duration::from_secs(60));
        t.failed_address(ip("10.0.0.9"));
        assert!(t.check_address(ip("10.0.0.9")).is_ok());
        t.failed("someone", ip("10.0.0.9"));
        assert!(t.check_address(ip("10.0.0.9")).is_err());
        assert!(t.check("anyone", ip("10.0.0.9")).is_err(), "a login from there too");
        assert!(t.check_address(ip("10.0.0.10")).is_ok());
        assert!(t.check_address(None).is_ok());
    }
}
