//! The one check a config passes before it is applied: by `vigild --check`, at start and on
//! every reload, so the three cannot disagree. It parses and validates the file, then reads
//! what a start would read short of binding sockets and attaching XDP: the OpenAPI description
//! (compiled), the key set's metadata and files (or the PEM files of `[tls]`), the client CA.

use std::path::Path;

use vigil_hw::keys::{self, FileKeyProvider, KeyError, KeyMode, KeyProvider};

use super::{Config, ConfigError, Finding, KeyProblem, KeysSection, Source};

/// A config that passed [`check`], with what it ignores.
#[derive(Debug)]
pub struct Checked {
    pub config: Config,
    /// Keys that are set but have no effect; logged at start and reload, printed by `--check`.
    pub warnings: Vec<Finding>,
    source: Source,
}

impl Checked {
    /// `message` about `key`, at the line where the file writes it (a reload refusing a key
    /// that cannot change uses this).
    pub fn finding(&self, key: &str, message: impl Into<String>) -> Finding {
        self.source.finding(key, message)
    }
}

/// Reads `file` (bounded), parses, validates and checks everything it points at. The error
/// names the key, the line it is written on and what to do.
pub fn check(file: &Path) -> Result<Checked, ConfigError> {
    let text = vigil_files::read_to_string(file, vigil_files::FileKind::Config)?;
    check_text(&text, file)
}

/// [`check`] on text already read; `file` names it and is where relative paths would start.
pub(crate) fn check_text(text: &str, file: &Path) -> Result<Checked, ConfigError> {
    let (config, source) = Config::parse_located(text, file)?;
    config.check_files().map_err(|p| source.invalid(p))?;
    let warnings = config.warnings(&source);
    Ok(Checked {
        config,
        warnings,
        source,
    })
}

impl Config {
    /// What a start reads before it binds or attaches anything.
    fn check_files(&self) -> Result<(), KeyProblem> {
        let Some(gw) = self.gateway() else {
            return Ok(());
        };
        gw.check_files().map_err(|e| (e.key, e.reason))?;
        match (&self.keys, &self.tls) {
            (Some(k), _) => check_key_dir(k),
            (None, Some(tls)) => check_pem_files(&tls.cert, &tls.key, ["tls.cert", "tls.key"]),
            (None, None) => Err((
                "tls".into(),
                "[listener] needs [tls] with cert and key (PEM files), or a [keys] directory: \
                 add one"
                    .into(),
            )),
        }
    }

    fn warnings(&self, src: &Source) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Some(k) = &self.keys {
            for key in ["tls.cert", "tls.key"] {
                if src.has(key) {
                    out.push(src.finding(
                        key,
                        format!(
                            "ignored: with [keys] the certificate and key come from keys.dir \
                             ({}); remove {key}",
                            k.dir.display()
                        ),
                    ));
                }
            }
        }
        out
    }
}

/// The key set's metadata and the files its mode needs. The TPM itself is not asked: a check
/// must not need it, and a start reports a TPM that refuses.
fn check_key_dir(k: &KeysSection) -> Result<(), KeyProblem> {
    let bad = |message: String| ("keys.dir".to_owned(), message);
    let dir = k.dir.display();
    match std::fs::metadata(&k.dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(bad(format!("{dir} is not a directory"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad(format!(
                "{dir} does not exist: create the key set with `vigilctl keys init --dir {dir}` \
                 (or `vigilctl keys seal`), or fix the path"
            )));
        }
        Err(e) => return Err(bad(format!("cannot read {dir}: {e}"))),
    }
    let info = keys::show(&k.dir).map_err(|e| bad(e.to_string()))?;
    let cert = k.dir.join(keys::CERT_FILE);
    let blob = match info.mode {
        KeyMode::File => {
            return check_pem_files(&cert, &k.dir.join(keys::KEY_FILE), ["keys.dir"; 2]);
        }
        KeyMode::TpmSealed => keys::SEALED_FILE,
        KeyMode::TpmResident => keys::RESIDENT_FILE,
    };
    let pem = vigil_files::read(&cert, vigil_files::FileKind::Certificate)
        .map_err(|e| bad(e.to_string()))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(bad(format!(
            "no certificate in {}: install the chain (leaf first, PEM) there",
            cert.display()
        )));
    }
    vigil_files::read(&k.dir.join(blob), vigil_files::FileKind::KeyBlob)
        .map_err(|e| bad(e.to_string()))?;
    // A key sealed to a policy key needs its signed policy: present, intact, signed by that key.
    keys::check_pcr_policy(&k.dir, k.pcr_policy.as_deref()).map_err(|e| match e {
        KeyError::BadBlob { .. } => bad(e.to_string()),
        e => ("keys.pcr_policy".to_owned(), e.to_string()),
    })
}

/// The certificate chain and private key of file mode, loaded as the listener loads them (the
/// key must belong to the leaf). `names` are the config keys that point at the two files.
fn check_pem_files(cert: &Path, key: &Path, names: [&str; 2]) -> Result<(), KeyProblem> {
    let [cert_key, key_key] = names;
    let err = |k: &str, e: &dyn std::fmt::Display| (k.to_owned(), e.to_string());
    vigil_files::read(cert, vigil_files::FileKind::Certificate).map_err(|e| err(cert_key, &e))?;
    vigil_files::read(key, vigil_files::FileKind::PrivateKey).map_err(|e| err(key_key, &e))?;
    FileKeyProvider::new(cert, key)
        .load()
        .map(drop)
        .map_err(|e| {
            let about_cert = match &e {
                KeyError::NoCertificate { .. } | KeyError::BadCertificate { .. } => true,
                KeyError::BadPem { path, .. } => path == cert,
                _ => false,
            };
            err(if about_cert { cert_key } else { key_key }, &e)
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::PathBuf;

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("vigil-check-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const POLICY: &str = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    \
                          get:\n      responses: {'200': {description: ok}}\n";

    /// A gateway config whose files all exist: a file-mode key set in `dir/keys`, a policy.
    fn gateway(dir: &Path) -> String {
        let keys = dir.join("keys");
        if !keys.exists() {
            keys::init(KeyMode::File, &keys, "", "vigil.test").unwrap();
        }
        std::fs::write(dir.join("api.yaml"), POLICY).unwrap();
        format!(
            "[listener]\nhttps = \"127.0.0.1:8443\"\n\
             [tls]\ncert = \"{k}/cert.pem\"\nkey = \"{k}/key.pem\"\n\
             [metrics]\nlisten = \"127.0.0.1:9100\"\n\
             [policy]\nfile = \"{p}\"\n",
            k = keys.display(),
            p = dir.join("api.yaml").display()
        )
    }

    fn check(text: &str) -> Result<Checked, Finding> {
        check_text(text, Path::new("v.toml")).map_err(|e| e.finding().cloned().unwrap())
    }

    /// The key and line of what `check` refuses.
    fn refused(text: &str) -> (String, Option<usize>, String) {
        let f = check(text).unwrap_err();
        (f.key, f.line, f.message)
    }

    #[test]
    fn a_complete_gateway_passes() {
        let d = Dir::new("ok");
        let c = check(&gateway(&d.0)).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.config.policy.is_some());
    }

    #[test]
    fn what_a_start_would_read_is_read() {
        let d = Dir::new("files");
        let good = gateway(&d.0);
        // A missing policy file, and one that does not compile: line 9 is `file = ...`.
        let missing = good.replace("api.yaml", "missing.yaml");
        let (key, line, msg) = refused(&missing);
        assert_eq!((key.as_str(), line), ("policy.file", Some(9)), "{msg}");
        assert!(msg.contains("missing.yaml"), "{msg}");
        std::fs::write(d.0.join("bad.yaml"), "openapi: 3.0.3\npaths: 7\n").unwrap();
        let (key, line, _) = refused(&good.replace("api.yaml", "bad.yaml"));
        assert_eq!((key.as_str(), line), ("policy.file", Some(9)));
        // The TLS key file: a missing one, and one that is not a key.
        let (key, line, msg) = refused(&good.replace("keys/key.pem", "keys/nope.pem"));
        assert_eq!((key.as_str(), line), ("tls.key", Some(5)), "{msg}");
        let (key, _, msg) = refused(&good.replace("keys/key.pem", "keys/csr.pem"));
        assert_eq!(key, "tls.key", "{msg}");
        let (key, line, _) = refused(&good.replace("keys/cert.pem", "keys/key.json"));
        assert_eq!((key.as_str(), line), ("tls.cert", Some(4)));
    }

    #[test]
    fn a_missing_or_empty_key_set_is_refused_at_keys_dir() {
        let d = Dir::new("keys");
        let with_keys = |dir: &Path| {
            format!(
                "{}[keys]\ndir = \"{}\"\ntcti = \"swtpm:port=1\"\n",
                gateway(&d.0),
                dir.display()
            )
        };
        let (key, line, msg) = refused(&with_keys(&d.0.join("nope")));
        assert_eq!((key.as_str(), line), ("keys.dir", Some(11)), "{msg}");
        assert!(msg.contains("vigilctl keys init"), "{msg}");
        let (key, _, msg) = refused(&with_keys(&d.0));
        assert_eq!(key, "keys.dir", "{msg}");
        // A file-mode key set passes; tls.cert and tls.key are then ignored, with a warning
        // at their lines.
        let c = check(&with_keys(&d.0.join("keys"))).unwrap();
        let w: Vec<(&str, Option<usize>)> = c
            .warnings
            .iter()
            .map(|w| (w.key.as_str(), w.line))
            .collect();
        assert_eq!(w, [("tls.cert", Some(4)), ("tls.key", Some(5))]);
        assert!(
            c.warnings[1].message.contains("ignored"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn listeners_on_one_address_are_refused() {
        let d = Dir::new("addr");
        let text = gateway(&d.0).replace("127.0.0.1:9100", "127.0.0.1:8443");
        let (key, line, msg) = refused(&text);
        assert_eq!((key.as_str(), line), ("metrics.listen", Some(7)), "{msg}");
        assert!(msg.contains("listener.https"), "{msg}");
    }

    #[test]
    fn errors_found_after_parsing_name_their_line() {
        let (key, line, _) = refused(
            "[xdp]\ninterface = \"eth0\"\nblock = [\n  \"198.18.0.0/24\",\n  \"10.0.0.1/8\",\n]\n",
        );
        assert_eq!((key.as_str(), line), ("xdp.block[1]", Some(5)));
        let up =
            |name: &str| format!("[[upstream]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:9\"\n");
        let text = format!(
            "[listener]\nhttps = \"127.0.0.1:0\"\n{}{}",
            up("a"),
            up("a")
        );
        let (key, line, _) = refused(&text);
        assert_eq!((key.as_str(), line), ("upstream[1].name", Some(7)));
        let (key, line, _) = refused("[hw]\n\n[thermal]\nreduced_c = 70.0\nhysteresis_c = 99.0\n");
        assert_eq!((key.as_str(), line), ("thermal.hysteresis_c", Some(5)));
        let (key, line, _) = refused("[thermal]\nreduced_c = 90.0\nshed_c = 80.0\n");
        assert_eq!((key.as_str(), line), ("thermal", Some(1)));
    }

    #[test]
    fn a_key_name_used_in_several_sections_is_found_by_its_path() {
        let mut text = "[xdp]\ninterface = \"eth0\"\nmode = \"native\"\n".to_owned();
        text.push_str(&"\n".repeat(30));
        text.push_str("[listener]\nhttps = \"127.0.0.1:0\"\n[policy]\nfile = \"/p.yaml\"\n");
        text.push_str("mode = \"enforcing\"\n");
        let (key, line, msg) = refused(&text);
        assert_eq!((key.as_str(), line), ("policy.mode", Some(38)), "{msg}");
        assert!(msg.contains("unknown variant `enforcing`"), "{msg}");
    }
}
