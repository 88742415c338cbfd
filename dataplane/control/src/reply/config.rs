//! `config_show`: the configuration vigild runs with.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The configuration in force (the last one started or reloaded), every default filled in and
/// secrets (passwords, tokens, inline key material) replaced by `<redacted>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigShown {
    /// The file it was read from.
    pub file: PathBuf,
    /// The configuration as a JSON object, one key per section.
    pub config: serde_json::Value,
    /// The same as TOML: a file vigild would load.
    pub toml: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::{Reply, Request, wire};

    #[test]
    fn config_show_replies_decode_as_config() {
        let line = br#"{"ok":true,"data":{"file":"/etc/vigil/vigild.toml","config":{"hw":{"sysfs_root":"/sys"}},"toml":"[hw]\nsysfs_root = \"/sys\"\n"}}"#;
        let Reply::Config(shown) = wire::decode_reply(&Request::ConfigShow, line)
            .unwrap()
            .unwrap()
        else {
            panic!("not a config reply");
        };
        assert_eq!(shown.file, std::path::Path::new("/etc/vigil/vigild.toml"));
        assert_eq!(shown.config["hw"]["sysfs_root"], "/sys");
        assert!(shown.toml.starts_with("[hw]"));
        assert_eq!(Request::ConfigShow.needs_daemon(), Some("config show"));
    }
}
