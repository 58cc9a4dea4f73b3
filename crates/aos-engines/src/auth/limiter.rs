//! Brute-force protection: counts failed authentications per client address and per
//! API-key prefix in a fixed window. Past the limit, further *failures* are answered
//! with 429 and a retry time; a valid credential is always accepted, so the real key
//! holder is never locked out by someone guessing at their prefix. Counters are per
//! replica and bounded in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept at most; past this, expired windows are pruned, then the oldest half.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    entries: Mutex<HashMap<String, (u32, Instant)>>,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Records one failure for every key; returns how long to wait if any key is now
    /// over its limit.
    pub fn record_failure(&self, keys: &[String]) -> Option<Duration> {
        let now = Instant::now();
        let Ok(mut entries) = self.entries.lock() else {
            return None;
        };
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, start)| now.duration_since(*start) < self.window);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        let mut wait: Option<Duration> = None;
        for key in keys {
            let entry = entries.entry(key.clone()).or_insert((0, now));
            if now.duration_since(entry.1) >= self.window {
                *entry = (0, now);
            }
            entry.0 = entry.0.saturating_add(1);
            if entry.0 > self.max_failures {
                let left = self.window.saturating_sub(now.duration_since(entry.1));
                wait = Some(wait.map_or(left, |w| w.max(left)));
            }
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_after_max_failures_per_key_and_resets_after_the_window() {
        let limiter = FailureLimiter::new(3, Duration::from_millis(200));
        let ip = vec!["ip:1".to_owned()];
        for _ in 0..3 {
            assert_eq!(limiter.record_failure(&ip), None);
        }
        let wait = limiter.record_failure(&ip).unwrap();
        assert!(wait <= Duration::from_millis(200));
        // Another key is unaffected.
        assert_eq!(limiter.record_failure(&["ip:2".to_owned()]), None);
        std::thread::sleep(Duration::from_millis(220));
        assert_eq!(limiter.record_failure(&ip), None);
    }
}
