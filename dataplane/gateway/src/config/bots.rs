//! `[bots]`: User-Agent rules from a file the operator edits (docs/detection.md, "Bots and
//! scanners").

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// What a matching request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BotAction {
    /// 403 `bot_blocked`.
    #[default]
    Block,
    /// Forwarded; the audit line names the rule.
    Log,
}

/// `[bots]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotsConfig {
    /// One rule per line: a case-insensitive substring of the User-Agent, or `/regex/`;
    /// `#` starts a comment. Read at start and on every reload.
    pub file: PathBuf,
    #[serde(default)]
    pub action: BotAction,
    /// Requests without a User-Agent header (or with an empty one) are treated as a match.
    #[serde(default)]
    pub missing: bool,
}

/// Rules per file, at most.
const MAX_RULES: usize = 10_000;
/// Bytes per rule, at most.
const MAX_RULE: usize = 256;

/// A loaded rule file: every rule compiled into one case-insensitive set, matched in one pass.
#[derive(Debug, Clone)]
pub struct BotList {
    /// Each rule as written (the audit line names it).
    pub rules: Vec<String>,
    pub set: regex::RegexSet,
}

impl BotList {
    /// Reads and compiles `path`; an error names the line and what to write instead.
    pub fn load(path: &Path) -> Result<BotList, ConfigError> {
        let text = vigil_files::read_to_string(path, vigil_files::FileKind::Config)
            .map_err(|e| ConfigError::new("bots.file", format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|(line, msg)| {
            ConfigError::new("bots.file", format!("{}:{line}: {msg}", path.display()))
        })
    }

    /// Parses rule text; errors are (line number, message).
    pub fn parse(text: &str) -> Result<BotList, (usize, String)> {
        let mut rules = Vec::new();
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split_once('#').map_or(raw, |(rule, _)| rule).trim();
            if line.is_empty() {
                continue;
            }
            if line.len() > MAX_RULE {
                return Err((i + 1, format!("a rule is at most {MAX_RULE} bytes")));
            }
            if rules.len() == MAX_RULES {
                return Err((i + 1, format!("at most {MAX_RULES} rules")));
            }
            let pattern = match line.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
                Some(re) if !re.is_empty() => {
                    regex::Regex::new(re).map_err(|e| {
                        (
                            i + 1,
                            format!("/{re}/ is not a regular expression (Rust syntax): {e}"),
                        )
                    })?;
                    format!("(?i){re}")
                }
                _ => format!("(?i){}", regex::escape(line)),
            };
            rules.push(line.to_owned());
            patterns.push(pattern);
        }
        let set = regex::RegexSetBuilder::new(&patterns)
            .size_limit(32 << 20)
            .build()
            .map_err(|e| {
                (
                    0,
                    format!("the rules together are too large to compile: {e}"),
                )
            })?;
        Ok(BotList { rules, set })
    }

    /// The first rule matching `ua`, as written.
    pub fn matching(&self, ua: &str) -> Option<&str> {
        let m = self.set.matches(ua);
        m.iter().next().map(|i| self.rules[i].as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rules_are_substrings_or_regexes_case_insensitive_with_comments() {
        let l = BotList::parse(
            "# scanners\nsqlmap\n  Nikto   # web scanner\n/^python-requests/\n\n/zgrab[0-9]?/\n",
        )
        .unwrap();
        assert_eq!(
            l.rules,
            ["sqlmap", "Nikto", "/^python-requests/", "/zgrab[0-9]?/"]
        );
        assert_eq!(
            l.matching("sqlmap/1.7.2#stable (https://sqlmap.org)"),
            Some("sqlmap")
        );
        assert_eq!(l.matching("Mozilla/5.00 (NIKTO/2.5.0)"), Some("Nikto"));
        assert_eq!(
            l.matching("python-requests/2.31"),
            Some("/^python-requests/")
        );
        assert_eq!(l.matching("my python-requests wrapper"), None, "anchored");
        assert_eq!(l.matching("Mozilla/5.0 zgrab/0.x"), Some("/zgrab[0-9]?/"));
        assert_eq!(l.matching("curl/8.5.0"), None);
    }

    #[test]
    fn bad_rules_are_refused_with_their_line() {
        let (line, msg) = BotList::parse("ok\n/(unclosed/\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(msg.contains("not a regular expression"), "{msg}");
        let long = "x".repeat(300);
        assert_eq!(BotList::parse(&long).unwrap_err().0, 1);
    }
}
