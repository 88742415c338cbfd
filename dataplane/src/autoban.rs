//! Auto-ban: sources that collect too many rejections (401, 403, 404, 429...) within a window
//! are put into the XDP blocklist for a while, and shared with the fleet.
//!
//! Each rule keeps, per source, a two-bucket sliding window (the previous and the current
//! window's counts, the previous weighted by how much of it still overlaps): O(1) memory per
//! source and no timestamps kept per request. The table per rule is bounded; when full, the
//! source seen least recently is forgotten, so a spoofed spray of addresses cannot grow it.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AutobanRule {
    /// Shown in the ban's reason and in metrics.
    pub name: String,
    /// Response statuses that count against a source.
    pub statuses: Vec<u16>,
    /// A source is banned when it collects more than this many within `window`.
    pub threshold: u32,
    /// e.g. "60s".
    #[serde(deserialize_with = "vigil_control::duration::de")]
    pub window: Duration,
    /// How long the ban lasts, e.g. "10m".
    #[serde(deserialize_with = "vigil_control::duration::de")]
    pub ban: Duration,
}

/// Longest `window` and `ban`: a ban is an XDP rule, whose ttl is at most 365 days.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// A rule with its durations parsed.
#[derive(Clone, Debug)]
struct Rule {
    name: String,
    statuses: Vec<u16>,
    threshold: u32,
    window: Duration,
    ban: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Counter {
    window_start: Instant,
    previous: u32,
    current: u32,
    banned_until: Option<Instant>,
    last_seen: Instant,
}

/// A source to ban, returned by `observe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    pub source: IpAddr,
    pub rule: String,
    pub ttl: Duration,
    pub count: u32,
}

#[derive(Debug)]
pub struct Autoban {
    rules: Vec<(Rule, HashMap<IpAddr, Counter>)>,
    max_sources: usize,
}

/// Sources tracked per rule before the least recently seen is forgotten.
pub const MAX_SOURCES: usize = 100_000;

impl AutobanRule {
    pub fn validate(&self, key: &str) -> Result<(), (String, String)> {
        self.parse()
            .map(|_| ())
            .map_err(|(k, m)| (format!("{key}.{k}"), m))
    }

    fn parse(&self) -> Result<Rule, (String, String)> {
        let dur = |k: &str, d: Duration| {
            if d.is_zero() {
                Err((k.to_owned(), "must be more than zero".to_owned()))
            } else if d > MAX_DURATION {
                Err((k.to_owned(), "must be at most 365 days".to_owned()))
            } else {
                Ok(d)
            }
        };
        if self.name.is_empty() || self.name.len() > 24 {
            return Err((
                "name".into(),
                "must be 1 to 24 characters (it goes into the ban reason)".into(),
            ));
        }
        if self.statuses.is_empty() || self.statuses.iter().any(|s| !(100..=599).contains(s)) {
            return Err((
                "statuses".into(),
                "must list HTTP statuses between 100 and 599".into(),
            ));
        }
        if self.threshold == 0 {
            return Err(("threshold".into(), "must be at least 1".into()));
        }
        Ok(Rule {
            name: self.name.clone(),
            statuses: self.statuses.clone(),
            threshold: self.threshold,
            window: dur("window", self.window)?,
            ban: dur("ban", self.ban)?,
        })
    }
}

impl Autoban {
    /// Rules must have been validated (`AutobanRule::validate`); invalid ones are skipped.
    pub fn new(rules: &[AutobanRule]) -> Autoban {
        Self::with_capacity(rules, MAX_SOURCES)
    }

    pub fn with_capacity(rules: &[AutobanRule], max_sources: usize) -> Autoban {
        let rules = rules
            .iter()
            .filter_map(|r| r.parse().ok())
            .map(|r| (r, HashMap::new()))
            .collect();
        Autoban {
            rules,
            max_sources: max_sources.max(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Counts one response to `source`; returns the bans it triggers (at most one per rule).
    pub fn observe(&mut self, source: IpAddr, status: u16, now: Instant) -> Vec<Ban> {
        let mut bans = Vec::new();
        let max = self.max_sources;
        for (rule, table) in &mut self.rules {
            if !rule.statuses.contains(&status) {
                continue;
            }
            if !table.contains_key(&source) && table.len() >= max {
                forget_oldest(table);
            }
            let c = table.entry(source).or_insert(Counter {
                window_start: now,
                previous: 0,
                current: 0,
                banned_until: None,
                last_seen: now,
            });
            c.last_seen = now;
            roll(c, rule.window, now);
            c.current = c.current.saturating_add(1);
            if c.banned_until.is_some_and(|until| now < until) {
                continue; // already banned; the XDP program drops it, nothing more to do
            }
            let count = estimate(c, rule.window, now);
            if count > rule.threshold {
                c.banned_until = Some(now + rule.ban);
                bans.push(Ban {
                    source,
                    rule: rule.name.clone(),
                    ttl: rule.ban,
                    count,
                });
            }
        }
        bans
    }
}

/// Moves the window forward: the current bucket becomes the previous one (or both reset when
/// more than a whole window has passed).
fn roll(c: &mut Counter, window: Duration, now: Instant) {
    let elapsed = now.saturating_duration_since(c.window_start);
    if elapsed >= window * 2 {
        c.previous = 0;
        c.current = 0;
        c.window_start = now;
    } else if elapsed >= window {
        c.previous = c.current;
        c.current = 0;
        c.window_start += window;
    }
}

/// Requests within the last `window`: all of the current bucket plus the overlapping share of
/// the previous one.
fn estimate(c: &Counter, window: Duration, now: Instant) -> u32 {
    let into = now.saturating_duration_since(c.window_start).as_secs_f64() / window.as_secs_f64();
    let weight = (1.0 - into).clamp(0.0, 1.0);
    c.current
        .saturating_add((f64::from(c.previous) * weight) as u32)
}

fn forget_oldest(table: &mut HashMap<IpAddr, Counter>) {
    if let Some(oldest) = table
        .iter()
        .min_by_key(|(_, c)| c.last_seen)
        .map(|(ip, _)| *ip)
    {
        table.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rule(threshold: u32) -> AutobanRule {
        AutobanRule {
            name: "auth".into(),
            statuses: vec![401, 403],
            threshold,
            window: Duration::from_secs(10),
            ban: Duration::from_secs(300),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bans_once_past_the_threshold_within_the_window() {
        let mut a = Autoban::new(&[rule(5)]);
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(
                a.observe(ip("198.18.0.9"), 401, t0 + Duration::from_millis(i))
                    .is_empty()
            );
        }
        // Other statuses and other sources do not count.
        assert!(a.observe(ip("198.18.0.9"), 200, t0).is_empty());
        assert!(a.observe(ip("198.18.0.10"), 401, t0).is_empty());
        let bans = a.observe(ip("198.18.0.9"), 403, t0 + Duration::from_millis(10));
        assert_eq!(
            bans,
            [Ban {
                source: ip("198.18.0.9"),
                rule: "auth".into(),
                ttl: Duration::from_secs(300),
                count: 6
            }]
        );
        // Further failures while banned do not ban again.
        assert!(
            a.observe(ip("198.18.0.9"), 401, t0 + Duration::from_secs(1))
                .is_empty()
        );
    }

    #[test]
    fn a_slow_trickle_never_crosses_the_threshold() {
        let mut a = Autoban::new(&[rule(5)]);
        let t0 = Instant::now();
        // 3 failures every 10 s: the sliding estimate stays at or below 5.
        for w in 0..20u64 {
            for i in 0..3u64 {
                let t = t0 + Duration::from_secs(w * 10) + Duration::from_secs(i * 3);
                assert!(
                    a.observe(ip("2001:db8::1"), 401, t).is_empty(),
                    "window {w}"
                );
            }
        }
    }

    #[test]
    fn the_sliding_window_remembers_the_previous_bucket() {
        let mut a = Autoban::new(&[rule(5)]);
        let t0 = Instant::now();
        for i in 0..5u64 {
            assert!(
                a.observe(ip("198.18.0.1"), 401, t0 + Duration::from_millis(9000 + i))
                    .is_empty()
            );
        }
        // 1.5 s later the new bucket has started, but most of the previous still overlaps.
        assert_eq!(
            a.observe(ip("198.18.0.1"), 401, t0 + Duration::from_millis(10_500))
                .len(),
            1
        );
    }

    #[test]
    fn a_ban_can_recur_after_it_ends() {
        let mut a = Autoban::new(&[AutobanRule {
            ban: Duration::from_secs(2),
            ..rule(1)
        }]);
        let t0 = Instant::now();
        a.observe(ip("198.18.0.2"), 401, t0);
        assert_eq!(a.observe(ip("198.18.0.2"), 401, t0).len(), 1);
        assert!(
            a.observe(ip("198.18.0.2"), 401, t0 + Duration::from_secs(1))
                .is_empty()
        );
        let later = t0 + Duration::from_secs(25);
        a.observe(ip("198.18.0.2"), 401, later);
        assert_eq!(a.observe(ip("198.18.0.2"), 401, later).len(), 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut a = Autoban::with_capacity(&[rule(1)], 100);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let src = IpAddr::from(std::net::Ipv4Addr::from(0xc612_0000 + i));
            a.observe(src, 401, t0 + Duration::from_millis(u64::from(i)));
        }
        assert!(a.rules[0].1.len() <= 100);
    }

    #[test]
    fn invalid_rules_are_named() {
        let bad = AutobanRule {
            window: Duration::ZERO,
            ..rule(5)
        };
        assert_eq!(
            bad.validate("autoban[0]").unwrap_err(),
            (
                "autoban[0].window".to_owned(),
                "must be more than zero".to_owned()
            )
        );
        let bad = AutobanRule {
            ban: Duration::from_secs(366 * 86_400),
            ..rule(5)
        };
        assert_eq!(bad.validate("autoban[0]").unwrap_err().0, "autoban[0].ban");
        let bad = AutobanRule {
            statuses: vec![],
            ..rule(5)
        };
        assert_eq!(
            bad.validate("autoban[1]").unwrap_err().0,
            "autoban[1].statuses"
        );
        let bad = AutobanRule {
            threshold: 0,
            ..rule(5)
        };
        assert_eq!(
            bad.validate("autoban[2]").unwrap_err().0,
            "autoban[2].threshold"
        );
    }
}
