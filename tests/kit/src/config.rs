//! vigild's configuration file (the gateway's sections are the same in the gateway's own), built
//! section by section instead of written out as TOML text in every test. Common sections have
//! typed setters; any other key is `set` by its dotted path and every `[[array]]` entry can be
//! `push`ed, so the file stays valid TOML whatever a test adds. Keys are checked by vigild
//! itself: every section refuses unknown keys, naming them.

use std::fmt::Display;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use toml::{Table, Value};

use crate::pki::TlsFiles;

/// A configuration file being built.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    doc: Table,
}

/// An `[[upstream]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    pub name: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u32>,
}

impl Upstream {
    pub fn new(name: &str, url: impl Display) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_string(),
            pool_size: None,
        }
    }

    /// Idle connections kept to this upstream.
    pub fn pool_size(mut self, n: u32) -> Self {
        self.pool_size = Some(n);
        self
    }
}

/// A `[[rate_limit]]` rule.
#[derive(Debug, Clone, Serialize)]
pub struct RateLimit {
    pub name: String,
    /// `client_ip`, `sub`, `header:<name>`, ...
    pub key: String,
    pub rate: u32,
    pub burst: u32,
    /// Buckets kept in the fleet's Redis.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

impl RateLimit {
    pub fn new(name: &str, key: &str, rate: u32, burst: u32) -> Self {
        Self {
            name: name.to_owned(),
            key: key.to_owned(),
            rate,
            burst,
            shared: false,
        }
    }

    pub fn shared(mut self) -> Self {
        self.shared = true;
        self
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

impl Config {
    pub fn new() -> Self {
        Self::default()
    }

    /// The gateway as most tests run it: HTTPS on `https` with this certificate and key, and
    /// metrics on a free loopback port. Upstreams, policy and the rest are added.
    pub fn gateway(https: impl Display, tls: &TlsFiles) -> Self {
        Self::new()
            .set("listener.https", https.to_string())
            .set("tls.cert", path_str(&tls.cert))
            .set("tls.key", path_str(&tls.key))
            .set("metrics.listen", "127.0.0.1:0")
    }

    /// The plain-HTTP listener.
    pub fn http(self, addr: impl Display) -> Self {
        self.set("listener.http", addr.to_string())
    }

    pub fn upstream(self, upstream: Upstream) -> Self {
        self.push_value("upstream", &upstream)
    }

    pub fn rate_limit(self, rule: RateLimit) -> Self {
        self.push_value("rate_limit", &rule)
    }

    /// Audit lines to the file `path`.
    pub fn audit_file(self, path: &Path) -> Self {
        self.set("audit.sink", "file")
            .set("audit.path", path_str(path))
    }

    /// The OpenAPI description enforced.
    pub fn policy(self, file: &Path) -> Self {
        self.set("policy.file", path_str(file))
    }

    /// A fleet member sharing blocks and rate-limit buckets through Redis at `redis`.
    /// A member of the fleet `prefix` in `redis`, signing as `box_id` with its key in `keys`
    /// and trusting every box of `keys`.
    pub fn fleet(
        self,
        redis: impl Display,
        prefix: &str,
        keys: &crate::fleet::FleetKeys,
        box_id: &str,
    ) -> Self {
        let own = keys
            .boxes()
            .iter()
            .find(|b| b.name == box_id)
            .map(|b| path_str(&b.key))
            .unwrap_or_default();
        let mut c = self
            .set("fleet.redis", redis.to_string())
            .set("fleet.prefix", prefix)
            .set("fleet.box_id", box_id)
            .set("fleet.signing_key", own);
        for b in keys.boxes() {
            c = c.set(&format!("fleet.boxes.{}", b.name), b.public.as_str());
        }
        c
    }

    /// The TLS key in `dir`, through the TPM at `tcti` when it is TPM-bound.
    pub fn keys(self, dir: &Path, tcti: &str) -> Self {
        self.set("keys.dir", path_str(dir)).set("keys.tcti", tcti)
    }

    /// Sensors read under `root` (a fake sysfs tree), polled every `poll_ms`.
    pub fn sysfs(self, root: &Path, poll_ms: u32) -> Self {
        self.set("hw.sysfs_root", path_str(root))
            .set("thermal.poll_interval_ms", poll_ms)
    }

    /// XDP on `iface`, its objects pinned under `pin_root`, expired entries swept every 200 ms.
    pub fn xdp(self, iface: &str, pin_root: &Path) -> Self {
        self.set("xdp.interface", iface)
            .set("xdp.pin_root", path_str(pin_root))
            .set_default("xdp.sweep_interval_ms", 200)
    }

    /// The control socket vigilctl talks to.
    pub fn control(self, socket: &Path) -> Self {
        self.set("control.socket", path_str(socket))
    }

    /// Sets the key at a dotted path (`"listener.header_timeout"`, `"xdp.rate_limit.pps"`),
    /// creating the tables on the way.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Self {
        let (table, key) = table_for(&mut self.doc, path);
        table.insert(key.to_owned(), value.into());
        self
    }

    fn set_default(mut self, path: &str, value: impl Into<Value>) -> Self {
        let (table, key) = table_for(&mut self.doc, path);
        table.entry(key).or_insert_with(|| value.into());
        self
    }

    /// Removes the key at a dotted path, if it is there.
    pub fn unset(mut self, path: &str) -> Self {
        let (parents, key) = path.rsplit_once('.').unwrap_or(("", path));
        let mut table = Some(&mut self.doc);
        for part in parents.split('.').filter(|p| !p.is_empty()) {
            table = table
                .and_then(|t| t.get_mut(part))
                .and_then(Value::as_table_mut);
        }
        if let Some(t) = table {
            t.remove(key);
        }
        self
    }

    /// Appends an entry to the array of tables `array` (`[[autoban]]`, say).
    pub fn push(mut self, array: &str, entry: Table) -> Self {
        let (table, key) = table_for(&mut self.doc, array);
        let slot = table.entry(key).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = slot {
            items.push(Value::Table(entry));
        } else {
            *slot = Value::Array(vec![Value::Table(entry)]);
        }
        self
    }

    fn push_value(self, array: &str, entry: &impl Serialize) -> Self {
        // Plain structs of strings and integers always make a table.
        let entry = Table::try_from(entry).unwrap_or_default();
        self.push(array, entry)
    }

    /// The value at a dotted path.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut v = self.doc.get(parts.next()?)?;
        for p in parts {
            v = v.get(p)?;
        }
        Some(v)
    }

    pub fn to_toml(&self) -> String {
        self.doc.to_string()
    }

    /// Writes the file whole: a reload never reads half of it.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut next = path.as_os_str().to_owned();
        next.push(".new");
        std::fs::write(&next, self.to_toml())
            .and_then(|()| std::fs::rename(&next, path))
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// The table holding the last segment of `path`, and that segment.
fn table_for<'a, 'p>(doc: &'a mut Table, path: &'p str) -> (&'a mut Table, &'p str) {
    let (parents, key) = path.rsplit_once('.').unwrap_or(("", path));
    let mut table = doc;
    for part in parents.split('.').filter(|p| !p.is_empty()) {
        let slot = table
            .entry(part)
            .or_insert_with(|| Value::Table(Table::new()));
        if !slot.is_table() {
            *slot = Value::Table(Table::new());
        }
        let Value::Table(next) = slot else {
            unreachable!("just made a table")
        };
        table = next;
    }
    (table, key)
}

/// A table from `key = value` pairs, for `push`.
pub fn table<const N: usize>(pairs: [(&str, Value); N]) -> Table {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn sections_render_as_vigild_reads_them() -> Result<()> {
        let tls = TlsFiles {
            cert: PathBuf::from("/d/cert.pem"),
            key: PathBuf::from("/d/key.pem"),
        };
        let cfg = Config::gateway("127.0.0.1:8443", &tls)
            .upstream(Upstream::new("api", "http://127.0.0.1:9").pool_size(4))
            .rate_limit(RateLimit::new("per-ip", "client_ip", 1, 5).shared())
            .set("xdp.rate_limit.pps", 20)
            .push("autoban", table([("name", "probe".into())]))
            .set("listener.header_timeout", "2s");
        let back: Table = cfg.to_toml().parse()?;
        assert_eq!(back, cfg.doc);
        assert_eq!(back["listener"]["https"].as_str(), Some("127.0.0.1:8443"));
        assert_eq!(back["upstream"][0]["pool_size"].as_integer(), Some(4));
        assert_eq!(back["rate_limit"][0]["shared"].as_bool(), Some(true));
        assert_eq!(back["xdp"]["rate_limit"]["pps"].as_integer(), Some(20));
        assert_eq!(back["autoban"][0]["name"].as_str(), Some("probe"));
        assert!(cfg.to_toml().contains("[[upstream]]"));
        let cfg = cfg.unset("listener.header_timeout").unset("nothing.here");
        assert_eq!(cfg.get("listener.header_timeout"), None);
        assert_eq!(cfg.get("nothing"), None);
        let plain = Config::new().rate_limit(RateLimit::new("a", "sub", 1, 1));
        assert!(plain.to_toml().contains("rate = 1") && !plain.to_toml().contains("shared"));
        Ok(())
    }
}
