//! The patches added at run time, kept across restarts in one JSON file in the data directory,
//! replaced whole (written beside it, synced, renamed over it) so a crash leaves the old file
//! or the new one, never half of either.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{Patch, PatchError};

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    patches: Vec<Patch>,
}

/// `<dir>/patches.json`.
#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Store {
        Store {
            path: dir.join("patches.json"),
        }
    }

    /// The store kept in the file `path`.
    pub fn at(path: PathBuf) -> Store {
        Store { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored patches; none when the file does not exist yet. A file that does not parse
    /// is an error naming it: patches are never dropped silently.
    pub fn load(&self) -> Result<Vec<Patch>, PatchError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(PatchError::Io {
                    what: "reading",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let file: File = serde_json::from_str(&text).map_err(|e| PatchError::File {
            path: self.path.clone(),
            why: format!(
                "{e}; the file is written by vigild: restore it from a backup or move it aside \
                 (its patches are then gone)"
            ),
        })?;
        if file.version != VERSION {
            return Err(PatchError::File {
                path: self.path.clone(),
                why: format!("version {} (this build reads {VERSION})", file.version),
            });
        }
        Ok(file.patches)
    }

    /// Replaces the stored patches with `patches`.
    pub fn save(&self, patches: &[Patch]) -> Result<(), PatchError> {
        let io = |what: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| PatchError::Io { what, path, source }
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&File {
            version: VERSION,
            patches: patches.to_vec(),
        })
        .map_err(|e| PatchError::File {
            path: self.path.clone(),
            why: e.to_string(),
        })?;
        let mut f = fs::File::create(&tmp).map_err(io("creating", &tmp))?;
        f.write_all(text.as_bytes()).map_err(io("writing", &tmp))?;
        f.sync_all().map_err(io("syncing", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io("replacing", &self.path))?;
        Ok(())
    }
}
