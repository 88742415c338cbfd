//! Helpers shared by the unit tests that build fake sysfs trees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

/// Writes `contents` at `rel` under `root`, creating directories.
pub(crate) fn put(root: &Path, rel: &str, contents: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}
