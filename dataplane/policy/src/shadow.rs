//! Shadow-API inventory: requests for paths or methods the description does not have. The
//! gateway records each one; `vigilctl shadow list` shows what clients call that nobody
//! described. Bounded (the input is an attacker's), grouped by normalised path, and persisted
//! atomically so it survives restarts.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::path::normalise_path;

/// Distinct statuses and client addresses kept per entry.
const MAX_PER_ENTRY: usize = 16;

/// One undescribed method + path, as seen so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowEntry {
    /// The method (`OTHER` for methods that are not plain tokens of at most 16 bytes).
    pub method: String,
    /// The normalised path (`/v2/orders/{id}`).
    pub path: String,
    /// Requests seen.
    pub count: u64,
    /// Unix seconds of the first request.
    pub first_seen: u64,
    /// Unix seconds of the latest request.
    pub last_seen: u64,
    /// Statuses answered (at most 16, sorted).
    pub statuses: Vec<u16>,
    /// Client addresses (the first 16 distinct ones).
    pub clients: Vec<IpAddr>,
    /// True when more clients were seen than are listed.
    #[serde(default)]
    pub more_clients: bool,
}

/// Why the inventory cannot be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    /// Reading, writing or renaming the file failed.
    #[error("shadow inventory file {path}: {source}; check the directory exists and is writable")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file could not be read (not a regular file, too large, unreadable).
    #[error("shadow inventory: {0}")]
    File(vigil_files::FileError),
    /// The file is not an inventory.
    #[error("shadow inventory file {path} is corrupt ({detail}); move it aside to start empty")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    entries: Vec<ShadowEntry>,
}

/// Thread-safe, bounded inventory. When full, the least recently seen hundredth is evicted.
#[derive(Debug)]
pub struct ShadowInventory {
    capacity: usize,
    entries: Mutex<HashMap<(String, String), ShadowEntry>>,
}

impl Default for ShadowInventory {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

fn method_label(method: &str) -> String {
    let token = !method.is_empty()
        && method.len() <= 16
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        method.to_string()
    } else {
        "OTHER".into()
    }
}

impl ShadowInventory {
    /// Entries kept by default.
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// An empty inventory holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), ShadowEntry>> {
        // A panic elsewhere while holding the lock leaves counts, never broken invariants.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one request the description does not cover (`status`: what it was answered).
    pub fn record(&self, method: &str, path: &str, status: u16, client: IpAddr, now_unix: u64) {
        let key = (method_label(method), normalise_path(path));
        let mut map = self.lock();
        if !map.contains_key(&key) && map.len() >= self.capacity {
            evict(&mut map, (self.capacity / 100).max(1));
        }
        let e = map.entry(key).or_insert_with_key(|(m, p)| ShadowEntry {
            method: m.clone(),
            path: p.clone(),
            count: 0,
            first_seen: now_unix,
            last_seen: now_unix,
            statuses: Vec::new(),
            clients: Vec::new(),
            more_clients: false,
        });
        e.count = e.count.saturating_add(1);
        e.last_seen = e.last_seen.max(now_unix);
        if let Err(at) = e.statuses.binary_search(&status) {
            if e.statuses.len() < MAX_PER_ENTRY {
                e.statuses.insert(at, status);
            }
        }
        if !e.clients.contains(&client) {
            if e.clients.len() < MAX_PER_ENTRY {
                e.clients.push(client);
            } else {
                e.more_clients = true;
            }
        }
    }

    /// All entries, most requested first.
    pub fn list(&self) -> Vec<ShadowEntry> {
        let mut out: Vec<ShadowEntry> = self.lock().values().cloned().collect();
        out.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.path, &a.method).cmp(&(&b.path, &b.method)))
        });
        out
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything (`vigilctl shadow clear`).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Writes the inventory to `path` atomically: a temporary file beside it, flushed to disk,
    /// then renamed over it, so a crash leaves the old file or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), ShadowError> {
        let stored = Stored {
            version: 1,
            entries: self.list(),
        };
        let io = |source| ShadowError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes =
            serde_json::to_vec(&stored).map_err(|e| io(std::io::Error::other(e.to_string())))?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        // Persist the rename itself; failure here only risks losing this one save.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// Loads an inventory saved by [`ShadowInventory::save`]; a missing file is an empty one.
    pub fn load(path: &Path, capacity: usize) -> Result<Self, ShadowError> {
        let inv = Self::new(capacity);
        let bytes = match vigil_files::read(path, vigil_files::FileKind::ShadowInventory) {
            Ok(b) => b,
            Err(vigil_files::FileError::Io { error, .. })
                if error.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(inv);
            }
            Err(e) => return Err(ShadowError::File(e)),
        };
        let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| ShadowError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let mut entries = stored.entries;
        entries.sort_by_key(|e| std::cmp::Reverse(e.last_seen));
        entries.truncate(inv.capacity);
        let mut map = inv.lock();
        for e in entries {
            map.insert((e.method.clone(), e.path.clone()), e);
        }
        drop(map);
        Ok(inv)
    }
}

/// Removes the `n` least recently seen entries.
fn evict(map: &mut HashMap<(String, String), ShadowEntry>, n: usize) {
    let mut by_age: Vec<(u64, (String, String))> =
        map.iter().map(|(k, e)| (e.last_seen, k.clone())).collect();
    let n = n.min(by_age.len());
    if n == 0 {
        return;
    }
    by_age.select_nth_unstable_by_key(n - 1, |(seen, _)| *seen);
    for (_, k) in by_age.into_iter().take(n) {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testutil::TempDir;
    use std::sync::Arc;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn groups_by_normalised_path_and_counts() {
        let inv = ShadowInventory::new(100);
        inv.record("GET", "/v2/orders/17", 404, ip("198.18.0.1"), 100);
        inv.record("GET", "/v2/orders/18?x=1", 404, ip("198.18.0.2"), 105);
        inv.record("DELETE", "/v2/orders/18", 405, ip("198.18.0.1"), 110);
        inv.record("GET /x HTTP/1.1\r\n", "/a", 404, ip("::1"), 111);
        let list = inv.list();
        assert_eq!(list.len(), 3);
        let get = &list[0];
        assert_eq!(
            (get.method.as_str(), get.path.as_str(), get.count),
            ("GET", "/v2/orders/{id}", 2)
        );
        assert_eq!((get.first_seen, get.last_seen), (100, 105));
        assert_eq!(get.statuses, vec![404]);
        assert_eq!(get.clients.len(), 2);
        assert!(list.iter().any(|e| e.method == "OTHER"));
    }

    #[test]
    fn bounded_in_entries_and_clients() {
        let inv = ShadowInventory::new(200);
        for i in 0..1000u64 {
            inv.record("GET", &format!("/p{i}"), 404, ip("198.18.0.1"), i);
        }
        assert!(inv.len() <= 200);
        let list = inv.list();
        assert!(list.iter().any(|e| e.path == "/p999"), "newest kept");
        assert!(!list.iter().any(|e| e.path == "/p0"), "oldest evicted");
        for i in 0..40u32 {
            inv.record(
                "GET",
                "/many",
                400 + (i % 30) as u16,
                IpAddr::from([198, 18, 1, i as u8]),
                2000,
            );
        }
        let e = inv.list().into_iter().find(|e| e.path == "/many").unwrap();
        assert_eq!(
            (e.clients.len(), e.more_clients, e.statuses.len()),
            (16, true, 16)
        );
    }

    #[test]
    fn survives_a_restart_through_its_file() {
        let t = TempDir::new("shadow");
        let file = t.path("shadow.json");
        assert!(ShadowInventory::load(&file, 10).unwrap().is_empty());
        let inv = ShadowInventory::new(10);
        inv.record("POST", "/admin/debug", 404, ip("198.18.0.9"), 42);
        inv.save(&file).unwrap();
        inv.record("POST", "/admin/debug", 404, ip("198.18.0.9"), 43);
        inv.save(&file).unwrap();
        let back = ShadowInventory::load(&file, 10).unwrap();
        assert_eq!(back.list(), inv.list());
        assert_eq!(back.list()[0].count, 2);
        assert_eq!(
            std::fs::read_dir(t.path("")).unwrap().count(),
            1,
            "no temp file left"
        );
        std::fs::write(&file, "{not json").unwrap();
        let e = ShadowInventory::load(&file, 10).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
        // A device or a FIFO is refused, not read until memory runs out or waited on.
        let e = ShadowInventory::load(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = inv.save(&t.path("no/such/dir/x.json")).unwrap_err();
        assert!(e.to_string().contains("writable"), "{e}");
    }

    #[test]
    fn concurrent_records_all_count() {
        let inv = Arc::new(ShadowInventory::default());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let inv = Arc::clone(&inv);
                std::thread::spawn(move || {
                    for i in 0..250 {
                        inv.record(
                            "GET",
                            &format!("/x/{i}"),
                            404,
                            IpAddr::from([198, 18, 0, t]),
                            1,
                        );
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let list = inv.list();
        assert_eq!(
            (list.len(), list[0].count, list[0].clients.len()),
            (1, 1000, 4)
        );
    }
}
