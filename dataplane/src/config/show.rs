//! `vigilctl config show`: the configuration a running vigild applies, every default filled
//! in, as TOML and as JSON. Secrets (passwords, tokens, inline key material, a password in a
//! URL) are replaced by `<redacted>`; paths are shown as they are.

use std::{path::Path, time::Duration};

use serde::{Serialize, Serializer, ser::SerializeSeq};
use toml::{Table, Value};
use vigil_control::{duration, reply::ConfigShown};

use super::Config;
use crate::autoban::AutobanRule;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// Key names (or parts of them) whose values are secrets whatever they look like.
const SECRET_NAMES: [&str; 8] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "private_key",
    "api_key",
];

impl Config {
    /// The effective configuration read from `file`, secrets redacted.
    pub fn shown(&self, file: &Path) -> ConfigShown {
        let table = self.effective();
        ConfigShown {
            file: file.to_owned(),
            config: serde_json::to_value(&table).unwrap_or_default(),
            toml: toml::to_string(&table).unwrap_or_default(),
        }
    }

    /// Every section with its defaults, as a TOML table, secrets redacted.
    pub(crate) fn effective(&self) -> Table {
        // Every field serializes to a TOML value (strings, numbers, tables); a failure would
        // show an empty config rather than a wrong one.
        let mut t = Table::try_from(self).unwrap_or_default();
        // The gateway's sections with their defaults, when it runs.
        if let Some(Ok(gw)) = self.gateway().map(|g| Table::try_from(&g)) {
            t.extend(gw);
            if self.keys.is_some()
                && let Some(Value::Table(tls)) = t.get_mut("tls")
            {
                // Not used: the key set in keys.dir is.
                tls.remove("cert");
                tls.remove("key");
            }
        }
        if let (Some(x), Some(Value::Table(xt))) = (&self.xdp, t.get_mut("xdp")) {
            // One spelling, the interval in force.
            xt.remove("sweep_interval_ms");
            xt.insert(
                "sweep_interval".into(),
                Value::String(duration::format(x.sweep_interval())),
            );
        }
        if let Some(f) = &self.fleet_written {
            t.insert("fleet".into(), Value::Table(f.clone()));
        }
        redact_table(&mut t);
        t
    }
}

fn redact_table(t: &mut Table) {
    for (k, v) in t.iter_mut() {
        redact(k, v);
    }
}

fn redact(key: &str, v: &mut Value) {
    let name = key.to_ascii_lowercase();
    // `password_file` names where the secret is, which an operator needs to see.
    let is_path = ["_file", "_dir", "_path"].iter().any(|s| name.ends_with(s));
    let secret = !is_path && SECRET_NAMES.iter().any(|n| name.contains(n));
    match v {
        Value::Table(t) => redact_table(t),
        Value::Array(items) => items.iter_mut().for_each(|i| redact(key, i)),
        Value::String(s) if secret || s.contains("-----BEGIN") => *s = REDACTED.to_owned(),
        Value::String(s) => {
            if let Some(clean) = without_url_password(s) {
                *s = clean;
            }
        }
        _ if secret => *v = Value::String(REDACTED.to_owned()),
        _ => {}
    }
}

/// `redis://user:pw@host:6379` as `redis://user:<redacted>@host:6379`; `None` when `s` holds
/// no password in a URL.
fn without_url_password(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let (userinfo, host) = rest.split_once('@')?;
    if host.contains('@') || userinfo.contains('/') {
        return None;
    }
    let (user, _) = userinfo.split_once(':')?;
    Some(format!("{scheme}://{user}:{REDACTED}@{host}"))
}

/// `[[autoban]]` rules as they are written (the rule type only reads them).
pub(super) fn autoban<S: Serializer>(rules: &[AutobanRule], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Shown<'a> {
        name: &'a str,
        statuses: &'a [u16],
        threshold: u32,
        window: String,
        ban: String,
        key: crate::autoban::CountBy,
        #[serde(skip_serializing_if = "Option::is_none")]
        min_sources: Option<u32>,
    }
    let fmt = |d: Duration| duration::format(d);
    let mut seq = s.serialize_seq(Some(rules.len()))?;
    for r in rules {
        let AutobanRule {
            name,
            statuses,
            threshold,
            window,
            ban,
            key,
            min_sources,
        } = r;
        seq.serialize_element(&Shown {
            name,
            statuses,
            threshold: *threshold,
            window: fmt(*window),
            ban: fmt(*ban),
            key: *key,
            min_sources: *min_sources,
        })?;
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn shown(text: &str) -> ConfigShown {
        Config::parse(text, Path::new("t.toml"))
            .unwrap()
            .shown(Path::new("/etc/vigil/vigild.toml"))
    }

    #[test]
    fn defaults_are_filled_in_and_the_toml_reads_back() {
        let s = shown(
            "[xdp]\ninterface = \"eth0\"\nsweep_interval_ms = 200\n\
             [listener]\nhttps = \"127.0.0.1:8443\"\n[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n\
             [[autoban]]\nname = \"r\"\nstatuses = [401]\nthreshold = 5\nwindow = \"1m30s\"\n\
             ban = \"1d\"\n",
        );
        assert_eq!(s.file, Path::new("/etc/vigil/vigild.toml"));
        let c = &s.config;
        assert_eq!(c["xdp"]["mode"], "native");
        assert_eq!(c["xdp"]["sweep_interval"], "200ms");
        assert!(c["xdp"].get("sweep_interval_ms").is_none());
        assert_eq!(c["control"]["socket"], "/run/vigil/vigild.sock");
        assert_eq!(c["metrics"]["listen"], "127.0.0.1:9464");
        assert_eq!(c["tls"]["key"], "/k.pem", "paths are not secrets");
        assert_eq!(c["autoban"][0]["window"], "1m 30s");
        assert_eq!(c["thermal"]["poll_interval_ms"], 500);
        // What vigilctl prints is a config vigild would load again.
        let back = Config::parse(&s.toml, Path::new("shown.toml")).unwrap();
        assert_eq!(
            back.xdp.unwrap().sweep_interval(),
            Duration::from_millis(200)
        );
        assert_eq!(back.autoban[0].window, Duration::from_secs(90));
    }

    #[test]
    fn secrets_are_redacted_and_paths_are_not() {
        let mut t: Table = toml::from_str(
            "[fleet]\nredis = \"redis://vigil:hunter2@10.0.0.1:6379\"\npassword = \"hunter2\"\n\
             tls_key = \"/etc/vigil/fleet.key\"\npassword_file = \"/etc/vigil/redis.pass\"\n\
             [fleet.auth]\napi_token = 42\n\
             [other]\npem = \"-----BEGIN PRIVATE KEY-----\\nMIIE\"\nkey = \"client_ip\"\n\
             list = [\"a\", \"b\"]\n",
        )
        .unwrap();
        redact_table(&mut t);
        let text = toml::to_string(&t).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("MIIE"), "{text}");
        assert_eq!(
            t["fleet"]["redis"].as_str(),
            Some("redis://vigil:<redacted>@10.0.0.1:6379")
        );
        assert_eq!(t["fleet"]["password"].as_str(), Some(REDACTED));
        assert_eq!(t["fleet"]["auth"]["api_token"].as_str(), Some(REDACTED));
        assert_eq!(t["fleet"]["tls_key"].as_str(), Some("/etc/vigil/fleet.key"));
        assert_eq!(
            t["fleet"]["password_file"].as_str(),
            Some("/etc/vigil/redis.pass")
        );
        assert_eq!(t["other"]["key"].as_str(), Some("client_ip"));
        assert_eq!(without_url_password("http://127.0.0.1:9"), None);
        assert_eq!(without_url_password("http://user@host"), None);
    }

    #[test]
    fn the_fleet_is_shown_as_written() {
        let (_dir, key) = crate::config::tests::fleet_key();
        let s = shown(&format!(
            "[fleet]\nredis = \"127.0.0.1:6379\"\nprefix = \"edge\"\n\
             signing_key = \"{}\"\n",
            key.display()
        ));
        assert_eq!(s.config["fleet"]["redis"], "127.0.0.1:6379");
        assert_eq!(s.config["fleet"]["prefix"], "edge");
        assert_eq!(s.config["fleet"]["signing_key"], key.display().to_string());
        assert!(s.toml.contains("[fleet]"), "{}", s.toml);
    }
}
