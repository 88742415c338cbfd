//! Operations on the XDP maps that both vigild and vigilctl (when vigild is down) run, so a
//! rule looks the same whichever path wrote it.

use std::{collections::BTreeMap, path::Path, time::Instant};

use vigil_xdp::{AttachedMode, List, RuleEntry, VigilMaps, XdpError, abi::Reason};

use crate::{
    Cidr, ControlError, ErrorCode, Ttl,
    feed::{self, FeedError},
    reply::{
        RateLimitStatus, ReasonCount, Rule, RuleAdded, RuleRemoved, Rules, RulesFlushed,
        RulesImported, Stats, XdpStatus,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Xdp(#[from] XdpError),
    #[error(
        "{cidr} was not in the {list} list: nothing removed (`vigilctl {list} list` shows what \
         is there)"
    )]
    NoSuchRule { list: &'static str, cidr: Cidr },
    #[error("reason must be printable text without control characters")]
    BadReason,
    #[error("feed {path}: {source}")]
    Feed { path: String, source: FeedError },
    #[error("reading the feed {path}: {source} (the path must be readable by vigild)")]
    ReadFeed {
        path: String,
        source: std::io::Error,
    },
}

impl From<OpError> for ControlError {
    fn from(e: OpError) -> Self {
        let code = match &e {
            OpError::Xdp(XdpError::InvalidCidr { .. } | XdpError::ReasonTooLong { .. })
            | OpError::BadReason
            | OpError::Feed { .. } => ErrorCode::Invalid,
            OpError::ReadFeed { .. } => ErrorCode::Failed,
            OpError::NoSuchRule { .. } => ErrorCode::NoSuchRule,
            OpError::Xdp(_) => ErrorCode::Failed,
        };
        ControlError::new(code, e.to_string())
    }
}

pub fn list_name(list: List) -> &'static str {
    match list {
        List::Block => "block",
        List::Allow => "allow",
    }
}

fn check_reason(reason: &str) -> Result<(), OpError> {
    if reason.chars().any(char::is_control) {
        return Err(OpError::BadReason);
    }
    Ok(())
}

/// Reads and parses a feed file: the same parser on both sides of the socket.
pub fn read_feed(path: &Path) -> Result<feed::Feed, OpError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| OpError::ReadFeed {
        path: shown.clone(),
        source,
    })?;
    feed::parse(&text).map_err(|source| OpError::Feed {
        path: shown,
        source,
    })
}

/// Adds every network of the feed at `path` to `list`, permanent, with one table rebuild.
pub fn rule_import(
    maps: &mut VigilMaps,
    list: List,
    path: &Path,
    reason: Option<&str>,
) -> Result<RulesImported, OpError> {
    let started = Instant::now();
    let reason = reason.unwrap_or("import");
    check_reason(reason)?;
    let feed = read_feed(path)?;
    let added = maps.insert_many(list, &feed.nets, reason, 0)?;
    Ok(RulesImported {
        list,
        file: path.to_owned(),
        prefixes: feed.nets.len(),
        ipv4: feed.ipv4(),
        ipv6: feed.ipv6(),
        added,
        replaced: feed.nets.len() - added,
        duplicate_lines: feed.duplicates,
        rules_now: maps.rule_counts().list(list),
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

pub fn rule_flush(maps: &mut VigilMaps, list: List) -> Result<RulesFlushed, OpError> {
    let removed = maps.flush(list)?;
    Ok(RulesFlushed { list, removed })
}

pub fn rule_add(
    maps: &mut VigilMaps,
    list: List,
    cidr: Cidr,
    ttl: Option<Ttl>,
    reason: Option<&str>,
    flags: u32,
) -> Result<RuleAdded, OpError> {
    let reason = reason.unwrap_or("operator");
    check_reason(reason)?;
    // The map replaces a rule for the same CIDR silently; the operator hears what it was.
    let replaced = find(maps, list, cidr)?;
    maps.insert(list, cidr.net(), ttl.map(Ttl::as_duration), reason, flags)?;
    Ok(RuleAdded {
        list,
        cidr,
        ttl_secs: ttl,
        reason: reason.to_owned(),
        replaced,
    })
}

/// The rule for exactly `cidr` (not a wider one that covers it), if there is one.
/// One exact lookup in the rule store: no walk over a list that may hold a million rules.
fn find(maps: &VigilMaps, list: List, cidr: Cidr) -> Result<Option<Rule>, OpError> {
    match maps.get(list, cidr.net()) {
        Some(e) => Ok(Some(rule(e)?)),
        None => Ok(None),
    }
}

pub fn rule_del(maps: &mut VigilMaps, list: List, cidr: Cidr) -> Result<RuleRemoved, OpError> {
    let absent = || OpError::NoSuchRule {
        list: list_name(list),
        cidr,
    };
    match maps.remove(list, cidr.net()) {
        Ok(true) => {}
        Ok(false) => return Err(absent()),
        // The rule store reports a missing key as a failed bpf_map_delete_elem (ENOENT); only a
        // rule that is still there makes it a real failure.
        Err(e) => {
            return Err(match find(maps, list, cidr)? {
                None => absent(),
                Some(_) => e.into(),
            });
        }
    }
    Ok(RuleRemoved {
        list,
        cidr,
        removed: true,
    })
}

pub fn rule_list(maps: &VigilMaps, list: List) -> Result<Rules, OpError> {
    let rules = maps
        .list(list)?
        .into_iter()
        .map(rule)
        .collect::<Result<_, _>>()?;
    Ok(Rules { list, rules })
}

fn rule(e: RuleEntry) -> Result<Rule, XdpError> {
    let RuleEntry {
        cidr,
        reason,
        created_unix,
        expires_unix,
        expires_in_secs,
        auto,
        from_config,
        fleet_box,
    } = e;
    Ok(Rule {
        cidr: Cidr::try_from(cidr)?,
        reason,
        created_unix,
        expires_unix,
        expires_in_secs,
        auto,
        from_config,
        fleet_box,
    })
}

pub fn stats(maps: &VigilMaps) -> Result<Stats, OpError> {
    let c = maps.counters()?;
    let xdp: BTreeMap<String, ReasonCount> = Reason::ALL
        .into_iter()
        .map(|r| {
            let v = c.get(r);
            let count = ReasonCount {
                packets: v.packets,
                bytes: v.bytes,
                dropped: r.drops(),
            };
            (r.as_str().to_owned(), count)
        })
        .collect();
    Ok(Stats {
        xdp,
        dropped_packets: c.dropped_packets(),
        tracked_sources: maps.tracked_sources() as u64,
    })
}

/// What status says about the XDP side, from the maps alone.
pub fn xdp_status(maps: &VigilMaps, iface: &str, mode: AttachedMode) -> Result<XdpStatus, OpError> {
    let cfg = maps.config()?;
    let rate_limit = (cfg.rate_enabled == 1 && cfg.ns_per_packet > 0).then(|| RateLimitStatus {
        pps: 1_000_000_000 / cfg.ns_per_packet,
        burst: cfg.burst_ns / cfg.ns_per_packet,
    });
    Ok(XdpStatus {
        interface: iface.to_owned(),
        mode,
        pins: maps.dir().to_path_buf(),
        rate_limit,
        block_rules: count_of(maps, List::Block),
        allow_rules: count_of(maps, List::Allow),
        tables: Some(maps.table_memory()),
        adopted: None,
        syn_guard: maps.syn_guard_status()?,
    })
}

/// Rules of a list, from the counters kept at insert and delete.
fn count_of(maps: &VigilMaps, list: List) -> usize {
    usize::try_from(maps.rule_counts().list(list)).unwrap_or(usize::MAX)
}
