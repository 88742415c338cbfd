//! Requests and rejections per client TLS fingerprint (JA4), for `vigilctl clients top`.
//! Bounded: past [`MAX_FINGERPRINTS`] distinct fingerprints, new ones are counted together
//! under [`OTHER`], so a client that varies its ClientHello cannot grow the table.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

/// Distinct fingerprints tracked one by one.
pub const MAX_FINGERPRINTS: usize = 4096;
/// Where fingerprints past the bound are counted.
pub const OTHER: &str = "other";

/// Requests and rejections of one fingerprint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub rejected: u64,
}

#[derive(Debug, Default)]
pub struct ClientStats {
    map: Mutex<HashMap<Box<str>, Counts>>,
}

impl ClientStats {
    /// Counts a request of the client with fingerprint `ja4`; `rejected` when the gateway
    /// answered it instead of forwarding it.
    pub fn record(&self, ja4: &str, rejected: bool) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let c = match map.get_mut(ja4) {
            Some(c) => c,
            None => {
                let key = if map.len() < MAX_FINGERPRINTS {
                    ja4
                } else {
                    OTHER
                };
                map.entry(key.into()).or_default()
            }
        };
        c.requests += 1;
        c.rejected += u64::from(rejected);
    }

    /// The `n` fingerprints with the most requests (ties by name), and how many are tracked.
    pub fn top(&self, n: usize) -> (Vec<(String, Counts)>, usize) {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rows: Vec<(String, Counts)> =
            map.iter().map(|(k, c)| (k.to_string(), *c)).collect();
        let tracked = rows.len();
        rows.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then_with(|| a.0.cmp(&b.0)));
        rows.truncate(n);
        (rows, tracked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sort_by_requests_and_the_table_is_bounded() {
        let s = ClientStats::default();
        for _ in 0..3 {
            s.record("t13d3112h2_e8f1e7e78f70_b26ce05bbdd6", false);
        }
        s.record("t13d1011h1_61a7ad8aa9b6_3fcd1a44f3e3", true);
        let (rows, tracked) = s.top(10);
        assert_eq!(tracked, 2);
        assert_eq!(rows[0].0, "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6");
        assert_eq!(
            rows[0].1,
            Counts {
                requests: 3,
                rejected: 0
            }
        );
        assert_eq!(
            rows[1].1,
            Counts {
                requests: 1,
                rejected: 1
            }
        );
        for i in 0..MAX_FINGERPRINTS + 10 {
            s.record(&format!("fp{i}"), false);
        }
        let (rows, tracked) = s.top(1);
        assert_eq!(tracked, MAX_FINGERPRINTS + 1, "the bound, plus `other`");
        assert_eq!(rows[0].0, OTHER);
        assert_eq!(rows[0].1.requests, 12);
    }
}
