//! Auto-ban: sources that collect too many rejections (401, 403, 404, 429...) within a window
//! are put into the XDP blocklist for a while, and shared with the fleet.
//!
//! A rule counts per client address (`key = "client_ip"`, the default) or per JA4 TLS
//! fingerprint (`key = "ja4"`): a bot spread over many addresses with one TLS stack is counted
//! as one client. A fingerprint is banned when its count crosses the threshold *and* it came
//! from at least `min_sources` distinct addresses (one address is what `client_ip` rules are
//! for; the minimum is what keeps a single client that copies a browser's ClientHello from
//! getting that browser banned cheaply). A banned fingerprint is refused by the gateway
//! (`fingerprint_banned`) from any address for the rule's ban time, and the addresses that
//! collected its counted statuses are blocked in XDP; an address that merely presents the
//! fingerprint is refused at L7 only, never blocked, so the users of a common TLS stack lose
//! requests for the ban time, not their address. Refusals for a banned fingerprint are not
//! evidence against anyone and are never counted (the daemon leaves them out).
//!
//! Each rule keeps, per subject, a two-bucket sliding window (the previous and the current
//! window's counts, the previous weighted by how much of it still overlaps): O(1) memory per
//! subject and no timestamps kept per request. The table per rule is bounded; when full, the
//! subject seen least recently is forgotten, so a spoofed spray of addresses (or of
//! ClientHellos) cannot grow it.

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
    /// What the rule counts per.
    #[serde(default)]
    pub key: CountBy,
    /// `ja4` rules: distinct addresses a fingerprint's counted statuses must come from before
    /// it is banned (default 10).
    #[serde(default)]
    pub min_sources: Option<u32>,
}

/// `min_sources` when a `ja4` rule does not set it.
pub const DEFAULT_MIN_SOURCES: u32 = 10;

/// Addresses remembered per fingerprint (the ones blocked in XDP when it is banned).
pub const MAX_CONTRIBUTORS: usize = 1024;

/// What an auto-ban rule counts per.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CountBy {
    /// The client's address.
    #[default]
    ClientIp,
    /// The client's JA4 TLS fingerprint (requests without TLS are not counted).
    Ja4,
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
    key: CountBy,
    min_sources: usize,
}

#[derive(Clone, Copy, Debug)]
struct Counter {
    window_start: Instant,
    previous: u32,
    current: u32,
    banned_until: Option<Instant>,
    last_seen: Instant,
}

impl Counter {
    fn new(now: Instant) -> Self {
        Counter {
            window_start: now,
            previous: 0,
            current: 0,
            banned_until: None,
            last_seen: now,
        }
    }
}

/// A source to ban, returned by `observe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    pub source: IpAddr,
    pub rule: String,
    pub ttl: Duration,
    /// The count that crossed the threshold (for a source banned because its fingerprint
    /// already was: the fingerprint's count now).
    pub count: u32,
    /// The banned fingerprint, for a `ja4` rule.
    pub ja4: Option<String>,
    /// The first of a fingerprint ban's addresses: the fingerprint itself is banned by it.
    pub new_fingerprint_ban: bool,
}

/// A fingerprint's count, and the addresses its counted statuses came from within the last one
/// to two windows (at most [`MAX_CONTRIBUTORS`]).
#[derive(Debug)]
struct FingerprintCounter {
    counter: Counter,
    contributors: Vec<IpAddr>,
}

/// One rule and what it counts.
#[derive(Debug)]
struct RuleState {
    rule: Rule,
    /// `client_ip` rules: per address.
    sources: HashMap<IpAddr, Counter>,
    /// `ja4` rules: per fingerprint.
    fingerprints: HashMap<Box<str>, FingerprintCounter>,
}

#[derive(Debug)]
pub struct Autoban {
    rules: Vec<RuleState>,
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
        let min_sources = match (self.key, self.min_sources) {
            (CountBy::ClientIp, Some(_)) => {
                return Err((
                    "min_sources".into(),
                    "applies to key = \"ja4\" rules only (a client_ip rule counts one address)"
                        .into(),
                ));
            }
            (CountBy::ClientIp, None) => 1,
            (CountBy::Ja4, None) => DEFAULT_MIN_SOURCES as usize,
            (CountBy::Ja4, Some(n)) if n == 0 || n as usize > MAX_CONTRIBUTORS => {
                return Err((
                    "min_sources".into(),
                    format!("must be 1 to {MAX_CONTRIBUTORS}"),
                ));
            }
            (CountBy::Ja4, Some(n)) => n as usize,
        };
        Ok(Rule {
            name: self.name.clone(),
            statuses: self.statuses.clone(),
            threshold: self.threshold,
            window: dur("window", self.window)?,
            ban: dur("ban", self.ban)?,
            key: self.key,
            min_sources,
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
            .map(|rule| RuleState {
                rule,
                sources: HashMap::new(),
                fingerprints: HashMap::new(),
            })
            .collect();
        Autoban {
            rules,
            max_sources: max_sources.max(1),
        }
    }

    /// Forgets what every rule counted for `ja4` (an operator lifted its ban): its count starts
    /// over, so it is banned again only if it earns it again.
    pub fn forget_fingerprint(&mut self, ja4: &str) {
        for st in &mut self.rules {
            st.fingerprints.remove(ja4);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Counts one response to `source` (whose TLS fingerprint was `ja4`); returns the bans it
    /// triggers (at most one per rule).
    pub fn observe(
        &mut self,
        source: IpAddr,
        ja4: Option<&str>,
        status: u16,
        now: Instant,
    ) -> Vec<Ban> {
        let mut bans = Vec::new();
        let max = self.max_sources;
        for st in &mut self.rules {
            let rule = &st.rule;
            match rule.key {
                CountBy::ClientIp => {
                    if !rule.statuses.contains(&status) {
                        continue;
                    }
                    let c = counter(&mut st.sources, source, max, now);
                    if let Some(count) = count(c, rule, now) {
                        bans.push(Ban {
                            source,
                            rule: rule.name.clone(),
                            ttl: rule.ban,
                            count,
                            ja4: None,
                            new_fingerprint_ban: false,
                        });
                    }
                }
                CountBy::Ja4 => {
                    let Some(fp) = ja4 else { continue };
                    if !rule.statuses.contains(&status) {
                        continue;
                    }
                    if !st.fingerprints.contains_key(fp) && st.fingerprints.len() >= max {
                        forget_fingerprint(&mut st.fingerprints, now);
                    }
                    let f = st.fingerprints.entry(Box::from(fp)).or_insert_with(|| {
                        FingerprintCounter {
                            counter: Counter::new(now),
                            contributors: Vec::new(),
                        }
                    });
                    let c = &mut f.counter;
                    c.last_seen = now;
                    roll(c, rule.window, now);
                    if c.previous == 0 && c.current == 0 {
                        f.contributors.clear();
                    }
                    c.current = c.current.saturating_add(1);
                    if !f.contributors.contains(&source) && f.contributors.len() < MAX_CONTRIBUTORS
                    {
                        f.contributors.push(source);
                    }
                    if c.banned_until.is_some_and(|until| now < until) {
                        continue; // banned: the gateway refuses it; nothing more to do
                    }
                    let count = estimate(c, rule.window, now);
                    if count <= rule.threshold || f.contributors.len() < rule.min_sources {
                        continue;
                    }
                    c.banned_until = Some(now + rule.ban);
                    for (i, addr) in f.contributors.drain(..).enumerate() {
                        bans.push(Ban {
                            source: addr,
                            rule: rule.name.clone(),
                            ttl: rule.ban,
                            count,
                            ja4: Some(fp.to_owned()),
                            new_fingerprint_ban: i == 0,
                        });
                    }
                }
            }
        }
        bans
    }
}

/// The counter of `key` in `table`, made (after forgetting the least recently seen when the
/// table is full) if there was none.
fn counter<K: std::hash::Hash + Eq + Clone>(
    table: &mut HashMap<K, Counter>,
    key: K,
    max: usize,
    now: Instant,
) -> &mut Counter {
    if !table.contains_key(&key) && table.len() >= max {
        forget_oldest_by(table, |c| c.last_seen);
    }
    table.entry(key).or_insert_with(|| Counter::new(now))
}

/// Makes room in a full fingerprint table: the least recently seen fingerprint that is not
/// banned is forgotten (a flood of new ClientHellos must not push a ban out), or, when every one
/// is banned, the one whose ban ends first.
fn forget_fingerprint(table: &mut HashMap<Box<str>, FingerprintCounter>, now: Instant) {
    let unbanned = table
        .iter()
        .filter(|(_, f)| f.counter.banned_until.is_none_or(|u| now >= u))
        .min_by_key(|(_, f)| f.counter.last_seen)
        .map(|(k, _)| k.clone());
    let victim = unbanned.or_else(|| {
        table
            .iter()
            .min_by_key(|(_, f)| f.counter.banned_until)
            .map(|(k, _)| k.clone())
    });
    if let Some(k) = victim {
        table.remove(&k);
    }
}

/// Counts one response against `c`; the count when it crosses the rule's threshold (and the
/// subject was not banned already), after which `c` is banned for the rule's ban time.
fn count(c: &mut Counter, rule: &Rule, now: Instant) -> Option<u32> {
    c.last_seen = now;
    roll(c, rule.window, now);
    c.current = c.current.saturating_add(1);
    if c.banned_until.is_some_and(|until| now < until) {
        return None; // already banned; the XDP program drops it, nothing more to do
    }
    let count = estimate(c, rule.window, now);
    (count > rule.threshold).then(|| {
        c.banned_until = Some(now + rule.ban);
        count
    })
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

fn forget_oldest_by<K: std::hash::Hash + Eq + Clone, V>(
    table: &mut HashMap<K, V>,
    when: impl Fn(&V) -> Instant,
) {
    if let Some(oldest) = table
        .iter()
        .min_by_key(|(_, v)| when(v))
        .map(|(k, _)| k.clone())
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
            key: CountBy::ClientIp,
            min_sources: None,
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
                a.observe(ip("198.18.0.9"), None, 401, t0 + Duration::from_millis(i))
                    .is_empty()
            );
        }
        // Other statuses and other sources do not count.
        assert!(a.observe(ip("198.18.0.9"), None, 200, t0).is_empty());
        assert!(a.observe(ip("198.18.0.10"), None, 401, t0).is_empty());
        let bans = a.observe(ip("198.18.0.9"), None, 403, t0 + Duration::from_millis(10));
        assert_eq!(
            bans,
            [Ban {
                source: ip("198.18.0.9"),
                rule: "auth".into(),
                ttl: Duration::from_secs(300),
                count: 6,
                ja4: None,
                new_fingerprint_ban: false,
            }]
        );
        // Further failures while banned do not ban again.
        assert!(
            a.observe(ip("198.18.0.9"), None, 401, t0 + Duration::from_secs(1))
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
                    a.observe(ip("2001:db8::1"), None, 401, t).is_empty(),
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
                a.observe(
                    ip("198.18.0.1"),
                    None,
                    401,
                    t0 + Duration::from_millis(9000 + i)
                )
                .is_empty()
            );
        }
        // 1.5 s later the new bucket has started, but most of the previous still overlaps.
        assert_eq!(
            a.observe(
                ip("198.18.0.1"),
                None,
                401,
                t0 + Duration::from_millis(10_500)
            )
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
        a.observe(ip("198.18.0.2"), None, 401, t0);
        assert_eq!(a.observe(ip("198.18.0.2"), None, 401, t0).len(), 1);
        assert!(
            a.observe(ip("198.18.0.2"), None, 401, t0 + Duration::from_secs(1))
                .is_empty()
        );
        let later = t0 + Duration::from_secs(25);
        a.observe(ip("198.18.0.2"), None, 401, later);
        assert_eq!(a.observe(ip("198.18.0.2"), None, 401, later).len(), 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut a = Autoban::with_capacity(&[rule(1)], 100);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let src = IpAddr::from(std::net::Ipv4Addr::from(0xc612_0000 + i));
            a.observe(src, None, 401, t0 + Duration::from_millis(u64::from(i)));
        }
        assert!(a.rules[0].sources.len() <= 100);
    }

    const CURL: &str = "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6";
    const RUSTLS: &str = "t13d1011h1_61a7ad8aa9b6_3fcd1a44f3e3";

    fn by_ja4(threshold: u32, min_sources: u32) -> AutobanRule {
        AutobanRule {
            name: "bots".into(),
            key: CountBy::Ja4,
            min_sources: Some(min_sources),
            ..rule(threshold)
        }
    }

    fn addr(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0xc612_0000 + i))
    }

    #[test]
    fn a_fingerprint_is_counted_across_addresses_and_banned_with_its_contributors() {
        let mut a = Autoban::new(&[by_ja4(4, 3)]);
        let t0 = Instant::now();
        // Three addresses, one TLS stack: their failures add up.
        for i in 0..4 {
            assert!(
                a.observe(addr(i % 3), Some(CURL), 401, t0).is_empty(),
                "{i}"
            );
        }
        // Without TLS, with another fingerprint or with a status that does not count, nothing
        // counts against it.
        assert!(a.observe(addr(20), None, 401, t0).is_empty());
        assert!(a.observe(addr(21), Some(RUSTLS), 401, t0).is_empty());
        assert!(a.observe(addr(22), Some(CURL), 200, t0).is_empty());
        let bans = a.observe(addr(1), Some(CURL), 403, t0);
        // Every address that collected its counted statuses is blocked; the fingerprint is
        // banned once (the first ban says so).
        let mut got: Vec<(IpAddr, bool)> = bans
            .iter()
            .map(|b| (b.source, b.new_fingerprint_ban))
            .collect();
        got.sort();
        assert_eq!(got, [(addr(0), true), (addr(1), false), (addr(2), false)]);
        assert!(bans.iter().all(|b| b.ja4.as_deref() == Some(CURL)
            && b.rule == "bots"
            && b.ttl == Duration::from_secs(300)
            && b.count == 5));
        // While banned, nothing more is returned: the gateway refuses the fingerprint, and an
        // address that merely presents it is not blocked.
        let later = t0 + Duration::from_secs(100);
        assert!(a.observe(addr(9), Some(CURL), 401, later).is_empty());
        assert!(a.observe(addr(0), Some(CURL), 401, later).is_empty());
        assert!(a.observe(addr(9), Some(RUSTLS), 401, later).is_empty());
        // After the ban the fingerprint starts again from nothing.
        let after = t0 + Duration::from_secs(400);
        assert!(a.observe(addr(11), Some(CURL), 401, after).is_empty());
    }

    #[test]
    fn a_forgotten_fingerprint_starts_counting_again() {
        let mut a = Autoban::new(&[by_ja4(4, 3)]);
        let t0 = Instant::now();
        let earn = |a: &mut Autoban, base: u32| {
            (0..5)
                .flat_map(|i| a.observe(addr(base + i % 3), Some(CURL), 401, t0))
                .collect::<Vec<_>>()
        };
        assert_eq!(earn(&mut a, 0).len(), 3, "the first ban");
        // Banned: more failures are not counted against it.
        assert!(earn(&mut a, 10).is_empty());
        a.forget_fingerprint(CURL);
        // Lifted by an operator: a fresh count, that bans it again once it crosses the rule.
        let again = earn(&mut a, 20);
        assert_eq!(
            again.iter().filter(|b| b.new_fingerprint_ban).count(),
            1,
            "{again:?}"
        );
        assert!(again.iter().all(|b| b.source >= addr(20)), "{again:?}");
    }

    #[test]
    fn one_address_cannot_get_a_fingerprint_banned() {
        // A client copying a browser's ClientHello from one address: whatever its volume, the
        // fingerprint needs its minimum of distinct addresses (client_ip rules catch the one).
        let mut a = Autoban::new(&[by_ja4(4, 3)]);
        let t0 = Instant::now();
        for i in 0..1000 {
            assert!(
                a.observe(addr(0), Some(CURL), 401, t0 + Duration::from_millis(i))
                    .is_empty()
            );
        }
        assert!(a.observe(addr(1), Some(CURL), 401, t0).is_empty());
        assert_eq!(a.observe(addr(2), Some(CURL), 401, t0).len(), 3);
        // The default minimum is 10.
        let r = AutobanRule {
            min_sources: None,
            ..by_ja4(1, 1)
        };
        let mut a = Autoban::new(&[r]);
        for i in 0..9 {
            assert!(a.observe(addr(i), Some(CURL), 401, t0).is_empty(), "{i}");
        }
        assert_eq!(a.observe(addr(9), Some(CURL), 401, t0).len(), 10);
    }

    #[test]
    fn a_client_ip_rule_and_a_ja4_rule_count_side_by_side() {
        let mut a = Autoban::new(&[rule(1), by_ja4(100, 2)]);
        let t0 = Instant::now();
        a.observe(ip("198.18.0.9"), Some(CURL), 401, t0);
        let bans = a.observe(ip("198.18.0.9"), Some(CURL), 401, t0);
        assert_eq!(bans.len(), 1);
        assert_eq!(
            (bans[0].rule.as_str(), bans[0].ja4.as_deref()),
            ("auth", None)
        );
    }

    #[test]
    fn the_fingerprint_table_is_bounded_and_keeps_its_bans() {
        let mut a = Autoban::with_capacity(&[by_ja4(1, 1)], 100);
        let t0 = Instant::now();
        a.observe(addr(0), Some(CURL), 401, t0);
        assert_eq!(a.observe(addr(0), Some(CURL), 401, t0).len(), 1);
        // A flood of new fingerprints, each seen once: the table stays bounded and the banned
        // fingerprint is not pushed out.
        for i in 0..1000u32 {
            let fp = format!("t13d{i:04}h2_000000000000_000000000000");
            a.observe(
                addr(i),
                Some(&fp),
                401,
                t0 + Duration::from_millis(u64::from(i) + 1),
            );
        }
        assert!(a.rules[0].fingerprints.len() <= 100);
        assert!(a.rules[0].fingerprints.contains_key(CURL));
        // Contributors are bounded too.
        let mut a = Autoban::new(&[by_ja4(1_000_000, 1)]);
        for i in 0..5000u32 {
            a.observe(addr(i), Some(CURL), 401, t0);
        }
        assert_eq!(
            a.rules[0].fingerprints[CURL].contributors.len(),
            MAX_CONTRIBUTORS
        );
    }

    #[test]
    fn the_key_is_read_from_the_config() {
        let r: AutobanRule = toml::from_str(
            "name = \"b\"\nstatuses = [401]\nthreshold = 1\nwindow = \"1s\"\nban = \"1s\"\nkey = \"ja4\"",
        )
        .unwrap();
        assert_eq!(r.key, CountBy::Ja4);
        assert!(r.validate("autoban[0]").is_ok());
        let bad = AutobanRule {
            min_sources: Some(0),
            ..r.clone()
        };
        assert_eq!(
            bad.validate("autoban[0]").unwrap_err().0,
            "autoban[0].min_sources"
        );
        let bad = AutobanRule {
            min_sources: Some(3),
            ..rule(1)
        };
        assert!(bad.validate("autoban[1]").unwrap_err().1.contains("ja4"));
        let e = toml::from_str::<AutobanRule>(
            "name = \"b\"\nstatuses = [401]\nthreshold = 1\nwindow = \"1s\"\nban = \"1s\"\nkey = \"ua\"",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("client_ip") && e.contains("ja4"), "{e}");
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
