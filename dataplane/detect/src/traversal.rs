//! Path traversal: a value that climbs out of a directory or names a file no API value should.
//!
//! Rules, read on the normalized form (lowercase, `\` folded to `/`, overlong and fullwidth dots
//! and slashes folded, see `decode::normalize`):
//! - `dotdot`: a `..` path segment (`../`, `..;/`, or `..` ending the value after a `/`) that
//!   starts the value, or occurs twice or more. One `../` inside a value is left alone: relative
//!   links in markdown or HTML text have one, an attack that needs to leave a directory tree nearly
//!   always needs several, and a single climb to a sensitive file is caught by the next rule.
//! - `sensitive-file`: a path to a file attackers read to prove a traversal or steal secrets
//!   (`/etc/passwd`, `/proc/self/environ`, `win.ini`, `.ssh/id_rsa`, ...), anywhere in the value.

/// Path fragments whose presence in an API value is an attack, not data. Each carries a `/` or a
/// distinctive file name so that prose about them ("edit your passwd") stays quiet.
const SENSITIVE: &[&[u8]] = &[
    b"/etc/passwd",
    b"/etc/shadow",
    b"/etc/group",
    b"/etc/hosts",
    b"/etc/issue",
    b"/etc/sudoers",
    b"/proc/self/",
    b"/proc/version",
    b"/.ssh/",
    b"id_rsa",
    b".htpasswd",
    b".htaccess",
    b"/.env",
    b"/.git/",
    b"/var/log/",
    b"/windows/win.ini",
    b"/windows/system32",
    b"/winnt/",
    b"boot.ini",
    b"/web-inf/web.xml",
    b"/system32/drivers/etc/hosts",
    b"file:///",
];

/// Scans the normalized form; returns the rule that matched.
pub(crate) fn scan(norm: &[u8]) -> Option<&'static str> {
    let mut climbs = 0usize;
    for i in 0..norm.len() {
        if norm[i] == b'.' && norm.get(i + 1) == Some(&b'.') && is_dotdot_segment(norm, i) {
            if i == 0 || climbs >= 1 {
                return Some("traversal:dotdot");
            }
            climbs += 1;
        }
    }
    SENSITIVE
        .iter()
        .any(|s| crate::cmdi::contains(norm, s))
        .then_some("traversal:sensitive-file")
}

/// Whether the `..` at `i` is a whole path segment: preceded by the start, a separator or
/// something that opens a value (`=`, a quote, a space), and followed by `/`, `;/` or the end
/// after a `/`. `...` (an ellipsis) is not a segment.
fn is_dotdot_segment(s: &[u8], i: usize) -> bool {
    let before_ok = i == 0 || matches!(s[i - 1], b'/' | b'=' | b'\'' | b'"' | b' ' | b':');
    let after = s.get(i + 2..).unwrap_or(&[]);
    let after_ok = match after {
        [b'/', ..] | [b';', b'/', ..] => true,
        [] => i > 0 && s[i - 1] == b'/',
        _ => false,
    };
    before_ok && after_ok
}

#[cfg(test)]
mod tests {
    use crate::rule_tests::{Expect, check};

    #[test]
    fn attacks() {
        check(
            super::scan,
            Expect::Hit,
            &[
                "../../../../etc/passwd",
                "..\\..\\..\\windows\\win.ini",
                "../secret",
                "/var/www/../../etc/shadow",
                "images/../../config.yml",
                "....//....//etc/passwd",
                "..;/..;/admin",
                "/etc/passwd",
                "C:\\Windows\\System32\\drivers\\etc\\hosts",
                "file:///etc/hosts",
                "/proc/self/environ",
            ],
        );
    }

    #[test]
    fn benign() {
        check(
            super::scan,
            Expect::Quiet,
            &[
                "Wait... what?",
                "see ../docs/intro.md for details",
                "https://example.com/a/b/c.png",
                "1.2.3",
                "v1..v2",
                "/api/v1/users/42",
                "edit your passwd file",
                "etc.",
                "3.14",
                "john.doe@example.com",
            ],
        );
    }
}
