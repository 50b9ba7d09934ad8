//! Failed sign-ins counted per client address and per user name: past the limit within the
//! window, further attempts are refused (429 with `Retry-After`) before any password is
//! checked, which also keeps bcrypt from being used to burn CPU.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses and users tracked at once (the oldest windows go first).
const MAX_TRACKED: usize = 100_000;

/// What a failure is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Address(IpAddr),
    User(String),
}

/// The failed-login limiter.
#[derive(Debug)]
pub struct Limiter {
    max: u32,
    window: Duration,
    /// Subject → (window start, failures in it).
    failures: Mutex<HashMap<Subject, (Instant, u32)>>,
}

impl Limiter {
    /// `max` failures per address and per user in each `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Limiter {
            max: max.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn subjects(address: Option<IpAddr>, user: Option<&str>) -> Vec<Subject> {
        let mut subjects = Vec::with_capacity(2);
        if let Some(a) = address {
            subjects.push(Subject::Address(a));
        }
        if let Some(u) = user {
            subjects.push(Subject::User(u.to_owned()));
        }
        subjects
    }

    /// `Some(seconds to wait)` when the address or the user is over the limit.
    pub fn blocked(&self, address: Option<IpAddr>, user: Option<&str>) -> Option<u64> {
        let failures = self.failures.lock().expect("limiter lock");
        Self::subjects(address, user)
            .iter()
            .filter_map(|s| failures.get(s))
            .filter(|(start, count)| *count >= self.max && start.elapsed() < self.window)
            .map(|(start, _)| self.window.saturating_sub(start.elapsed()).as_secs().max(1))
            .max()
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, address: Option<IpAddr>, user: Option<&str>) {
        let mut failures = self.failures.lock().expect("limiter lock");
        if failures.len() >= MAX_TRACKED {
            let window = self.window;
            failures.retain(|_, (start, _)| start.elapsed() < window);
            if failures.len() >= MAX_TRACKED {
                failures.clear();
            }
        }
        for subject in Self::subjects(address, user) {
            let entry = failures.entry(subject).or_insert((Instant::now(), 0));
            if entry.0.elapsed() >= self.window {
                *entry = (Instant::now(), 0);
            }
            entry.1 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_or_a_user_over_the_limit_is_blocked_until_the_window_passes() {
        let limiter = Limiter::new(3, Duration::from_millis(300));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.blocked(Some(a), Some("alice")).is_none());
            limiter.failed(Some(a), Some("alice"));
        }
        assert!(limiter.blocked(Some(a), Some("bob")).is_some(), "the address");
        assert!(
            limiter.blocked(Some(b), Some("alice")).is_some(),
            "the user, from anywhere"
        );
        assert!(limiter.blocked(Some(b), Some("bob")).is_none());
        std::thread::sleep(Duration::from_millis(350));
        assert!(limiter.blocked(Some(a), Some("alice")).is_none());
    }
}
