//! Undoing the encodings attackers wrap payloads in, before any detector looks at them.
//!
//! One *round* applies every decoder once, left to right, in a single pass: `%XX` and `%uXXXX`
//! (URL), `&lt;` / `&#60;` / `&#x3c;` (HTML entities), `\uXXXX` / `\xXX` (JSON and JavaScript
//! escapes). Rounds repeat while they change something, up to [`crate::Limits::max_rounds`], so
//! double (and triple) URL encoding and URL-encoded entities come apart. Every decoder emits at
//! most as many bytes as it consumes, so a round is linear and never grows the value.
//!
//! [`normalize`] then builds the canonical form the rule-based detectors read: SQL block comments
//! become a space, every whitespace variant (tabs, vertical tab, form feed, NBSP and the
//! other Unicode spaces) becomes one space (line breaks stay, as `\n`: they separate shell
//! commands), ASCII is lowercased, backslashes become slashes and the
//! overlong UTF-8 forms of `.` and `/` (`%c0%ae`, `%c0%af`, ...) become the plain characters.

/// One decoding round over `input`. Returns `None` when nothing was decoded, so the caller can
/// stop at a fixed point without comparing buffers.
pub(crate) fn decode_round(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        let (consumed, emitted) = match input[i] {
            b'%' => percent(&input[i..], &mut out),
            b'&' => entity(&input[i..], &mut out),
            b'\\' => backslash_escape(&input[i..], &mut out),
            b'+' => {
                // In a query string `+` is a space; attackers use it as one between SQL keywords.
                out.push(b' ');
                (1, true)
            }
            b => {
                out.push(b);
                (1, false)
            }
        };
        changed |= emitted;
        i += consumed.max(1);
    }
    changed.then_some(out)
}

/// `%XX` or `%uXXXX` at the start of `s`. Returns (bytes consumed, whether it decoded).
fn percent(s: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
    if let Some(v) = hex_value(s.get(1..3)) {
        out.push(v as u8);
        return (3, true);
    }
    if matches!(s.get(1), Some(b'u' | b'U'))
        && let Some(cp) = hex_value(s.get(2..6))
    {
        push_code_point(cp, out);
        return (6, true);
    }
    out.push(b'%');
    (1, false)
}

/// `\uXXXX`, `\u{X..}` or `\xXX` at the start of `s`.
fn backslash_escape(s: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
    match s.get(1) {
        Some(b'u' | b'U') => {
            if let Some(cp) = hex_value(s.get(2..6)) {
                push_code_point(cp, out);
                return (6, true);
            }
        }
        Some(b'x' | b'X') => {
            if let Some(v) = hex_value(s.get(2..4)) {
                out.push(v as u8);
                return (4, true);
            }
        }
        _ => {}
    }
    out.push(b'\\');
    (1, false)
}

/// Named entities worth knowing: the ones that spell markup, quotes and separators. Anything else
/// is left alone (an unknown entity in a value is text, not an evasion).
const NAMED_ENTITIES: &[(&[u8], u8)] = &[
    (b"lt", b'<'),
    (b"gt", b'>'),
    (b"quot", b'"'),
    (b"apos", b'\''),
    (b"amp", b'&'),
    (b"sol", b'/'),
    (b"bsol", b'\\'),
    (b"colon", b':'),
    (b"semi", b';'),
    (b"lpar", b'('),
    (b"rpar", b')'),
    (b"equals", b'='),
    (b"grave", b'`'),
    (b"period", b'.'),
    (b"comma", b','),
    (b"excl", b'!'),
    (b"num", b'#'),
    (b"dollar", b'$'),
    (b"verbar", b'|'),
    (b"vert", b'|'),
    (b"tab", b'\t'),
    (b"newline", b'\n'),
    (b"nbsp", b' '),
];

/// `&name;`, `&#DDD;` or `&#xHHH;` (the `;` optional for numeric forms, as browsers accept).
fn entity(s: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
    if s.get(1) == Some(&b'#') {
        let (hex, start) = match s.get(2) {
            Some(b'x' | b'X') => (true, 3),
            _ => (false, 2),
        };
        let mut cp: u32 = 0;
        let mut end = start;
        // At most 8 digits: enough for any code point (with leading zeros), and a bound on work.
        while end < s.len() && end - start < 8 {
            let digit = if hex {
                hex_digit(s[end])
            } else {
                s[end].is_ascii_digit().then(|| u32::from(s[end] - b'0'))
            };
            match digit {
                Some(d) => {
                    cp = cp
                        .saturating_mul(if hex { 16 } else { 10 })
                        .saturating_add(d)
                }
                None => break,
            }
            end += 1;
        }
        if end > start {
            if s.get(end) == Some(&b';') {
                end += 1;
            }
            push_code_point(cp, out);
            return (end, true);
        }
    } else {
        let name_end = s
            .iter()
            .skip(1)
            .take(8)
            .position(|b| !b.is_ascii_alphabetic())
            .map(|p| p + 1);
        if let Some(end) = name_end
            && s.get(end) == Some(&b';')
        {
            let name = &s[1..end];
            if let Some((_, b)) = NAMED_ENTITIES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                out.push(*b);
                return (end + 1, true);
            }
        }
    }
    out.push(b'&');
    (1, false)
}

fn hex_digit(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// The value of a run of exactly `slice.len()` hex digits.
fn hex_value(slice: Option<&[u8]>) -> Option<u32> {
    let slice = slice?;
    slice
        .iter()
        .try_fold(0u32, |acc, &b| Some(acc * 16 + hex_digit(b)?))
}

/// Appends `cp` as UTF-8; fullwidth ASCII forms (U+FF01..U+FF5E, a known evasion) fold to ASCII
/// and invalid code points become U+FFFD. Never longer than the escape it came from (>= 4 bytes).
fn push_code_point(cp: u32, out: &mut Vec<u8>) {
    let cp = if (0xFF01..=0xFF5E).contains(&cp) {
        cp - 0xFF01 + 0x21
    } else {
        cp
    };
    let c = char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// The canonical form for the rule-based detectors (see the module docs).
pub(crate) fn normalize(input: &[u8]) -> Vec<u8> {
    canonical(input, true)
}

/// Only the comment and whitespace folding of [`normalize`], keeping case and backslashes (they
/// matter to a SQL tokenizer). `None` when that changes nothing.
pub(crate) fn fold_spaces(input: &[u8]) -> Option<Vec<u8>> {
    let out = canonical(input, false);
    (out != input).then_some(out)
}

fn canonical(input: &[u8], full: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        let (consumed, replacement): (usize, Option<u8>) = match rest {
            [b'/', b'*', ..] => {
                // A SQL block comment, closed or not: one space, like the SQL parser sees it.
                let close = rest
                    .windows(2)
                    .skip(2)
                    .position(|w| w == b"*/")
                    .map_or(rest.len(), |p| p + 4);
                (close, Some(b' '))
            }
            [0xC2, 0xA0, ..] => (2, Some(b' ')),
            [0xC0, 0xAE, ..] | [0xE0, 0x80, 0xAE, ..] => {
                (if rest[0] == 0xC0 { 2 } else { 3 }, Some(b'.'))
            }
            [0xC0, 0xAF, ..] | [0xE0, 0x80, 0xAF, ..] => {
                (if rest[0] == 0xC0 { 2 } else { 3 }, Some(b'/'))
            }
            [0xC1, 0x9C, ..] => (2, Some(b'/')),
            // U+2000..U+200B (typographic spaces), U+2028/9, U+202F, U+205F: whitespace.
            [0xE2, 0x80, 0x80..=0x8B | 0xA8 | 0xA9 | 0xAF, ..] | [0xE2, 0x81, 0x9F, ..] => {
                (3, Some(b' '))
            }
            // U+3000 ideographic space.
            [0xE3, 0x80, 0x80, ..] => (3, Some(b' ')),
            // U+2215 division slash, U+2044 fraction slash: look like `/`.
            [0xE2, 0x88, 0x95, ..] | [0xE2, 0x81, 0x84, ..] => (3, Some(b'/')),
            [b, ..] => match b {
                // A line break separates shell commands: keep it visible to the command rules.
                b'\n' | b'\r' if full => (1, Some(b'\n')),
                b'\t' | b'\n' | b'\r' | 0x0B | 0x0C | b' ' => (1, Some(b' ')),
                b'\\' if full => (1, Some(b'/')),
                0 if full => (1, None),
                _ if full => (1, Some(b.to_ascii_lowercase())),
                _ => (1, Some(*b)),
            },
            [] => (1, None),
        };
        if let Some(r) = replacement {
            // Collapse runs of whitespace: `;  cat` and `; cat` are the same to a shell.
            if !(r == b' ' && out.last() == Some(&b' ')) {
                out.push(r);
            }
        }
        i += consumed;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_rounds(s: &[u8]) -> Vec<u8> {
        let mut cur = s.to_vec();
        for _ in 0..4 {
            match decode_round(&cur) {
                Some(next) => cur = next,
                None => break,
            }
        }
        cur
    }

    #[test]
    fn url_and_double_url() {
        assert_eq!(all_rounds(b"%3Cscript%3E"), b"<script>");
        assert_eq!(all_rounds(b"%253Cscript%253E"), b"<script>");
        assert_eq!(all_rounds(b"%u003Cx"), b"<x");
        assert_eq!(all_rounds(b"1+OR+1"), b"1 OR 1");
    }

    #[test]
    fn entities_and_escapes() {
        assert_eq!(all_rounds(b"&lt;img&gt;"), b"<img>");
        assert_eq!(all_rounds(b"&#60;&#x3C;&#x3c"), b"<<<");
        assert_eq!(all_rounds(b"\\u003cscript\\x3e"), b"<script>");
        assert_eq!(all_rounds(b"%26lt%3B"), b"<");
        assert_eq!(all_rounds(b"&unknown; &"), b"&unknown; &");
        assert_eq!(all_rounds("\\uff1cx".as_bytes()), b"<x");
    }

    #[test]
    fn malformed_escapes_pass_through() {
        for s in [
            &b"%"[..],
            b"%4",
            b"%zz",
            b"\\u12",
            b"&#",
            b"&#x;",
            b"&",
            b"\\",
        ] {
            assert_eq!(decode_round(s), None, "{s:?}");
        }
    }

    #[test]
    fn rounds_never_grow() {
        let s = "&#1114111;&#x10FFFF;\\uFFFF%uD800&#99999999999;".as_bytes();
        let out = all_rounds(s);
        assert!(out.len() <= s.len());
    }

    #[test]
    fn normalize_forms() {
        assert_eq!(normalize(b"UN/**/ION\t  SELECT"), b"un ion select");
        assert_eq!(normalize(b"a\r\nls"), b"a\n\nls");
        assert_eq!(normalize(b"..\\..\\Windows"), b"../../windows");
        assert_eq!(normalize(&[0xC0, 0xAE, 0xC0, 0xAE, 0xC0, 0xAF]), b"../");
        assert_eq!(normalize("a\u{00A0}\u{2003}b".as_bytes()), b"a b");
        assert_eq!(normalize(b"/* open"), b" ");
    }
}
