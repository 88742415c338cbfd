//! Request paths and path templates: safe percent-decoding, template parsing, and the
//! normalised form the shadow-API inventory groups unknown paths by.

use std::borrow::Cow;

/// Why a request path or a query component cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// `%` not followed by two hex digits.
    BadEscape,
    /// `%2F` inside a segment: it would let a parameter span segments.
    EncodedSlash,
    /// A NUL byte, raw or encoded: C upstreams would truncate there.
    Nul,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
    /// A `.` or `..` segment: upstreams would resolve it to another route.
    DotSegment,
}

impl DecodeError {
    /// The keyword put in a [`crate::Deny`].
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            DecodeError::BadEscape => "percent_encoding",
            DecodeError::EncodedSlash => "encoded_slash",
            DecodeError::Nul => "nul",
            DecodeError::NotUtf8 => "utf8",
            DecodeError::DotSegment => "dot_segment",
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `raw`; `plus_is_space` for form-encoded query strings.
fn decode(raw: &str, plus_is_space: bool, slash_ok: bool) -> Result<Cow<'_, str>, DecodeError> {
    let bytes = raw.as_bytes();
    if bytes.contains(&0) {
        return Err(DecodeError::Nul);
    }
    if !(bytes.contains(&b'%') || plus_is_space && bytes.contains(&b'+')) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex);
                let lo = bytes.get(i + 2).copied().and_then(hex);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(DecodeError::BadEscape);
                };
                let b = hi << 4 | lo;
                if b == 0 {
                    return Err(DecodeError::Nul);
                }
                if b == b'/' && !slash_ok {
                    return Err(DecodeError::EncodedSlash);
                }
                out.push(b);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| DecodeError::NotUtf8)
}

/// Decodes one path segment. Refuses encoded `/`, NUL, bad escapes, non-UTF-8 and dot
/// segments (raw or encoded: `%2e%2e` is `..` to many upstreams).
pub(crate) fn decode_segment(raw: &str) -> Result<Cow<'_, str>, DecodeError> {
    let s = decode(raw, false, false)?;
    if s == "." || s == ".." {
        return Err(DecodeError::DotSegment);
    }
    Ok(s)
}

/// Decodes a form-encoded query key or value (`+` is a space).
pub(crate) fn decode_query(raw: &str) -> Result<Cow<'_, str>, DecodeError> {
    decode(raw, true, true)
}

/// Decodes a `$ref` fragment (a URI-encoded JSON pointer).
pub(crate) fn decode_fragment(raw: &str) -> Option<Cow<'_, str>> {
    decode(raw, false, true).ok()
}

/// One part of a templated segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Lit(String),
    Param(String),
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// `users`
    Lit(String),
    /// `{id}`
    Param(String),
    /// `{name}.{ext}`, `report.{format}`: literal parts anchor the parameters.
    Mixed(Vec<Part>),
}

/// Parses a path template (`/users/{id}`) into segments.
pub(crate) fn parse_template(template: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = template.strip_prefix('/') else {
        return Err("a path must start with `/`".into());
    };
    rest.split('/').map(parse_segment).collect()
}

fn parse_segment(seg: &str) -> Result<Segment, String> {
    let mut parts = Vec::new();
    let mut rest = seg;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let Some(end) = after.find('}') else {
                return Err(format!("unclosed `{{` in segment `{seg}`"));
            };
            let name = &after[..end];
            if name.is_empty() || name.contains('{') {
                return Err(format!("bad template expression in segment `{seg}`"));
            }
            if matches!(parts.last(), Some(Part::Param(_))) {
                return Err(format!(
                    "adjacent template expressions in segment `{seg}` cannot be told apart"
                ));
            }
            parts.push(Part::Param(name.to_string()));
            rest = &after[end + 1..];
        } else {
            let end = rest.find('{').unwrap_or(rest.len());
            if rest[..end].contains('}') {
                return Err(format!("stray `}}` in segment `{seg}`"));
            }
            parts.push(Part::Lit(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    Ok(match parts.as_slice() {
        [] => Segment::Lit(String::new()),
        [Part::Lit(l)] => Segment::Lit(l.clone()),
        [Part::Param(p)] => Segment::Param(p.clone()),
        _ => Segment::Mixed(parts),
    })
}

/// Matches a decoded segment against mixed parts, returning each parameter's value. Literal
/// parts are matched left to right at their first occurrence.
pub(crate) fn match_mixed<'s>(parts: &[Part], seg: &'s str) -> Option<Vec<(usize, &'s str)>> {
    let mut out = Vec::new();
    let mut rest = seg;
    let mut i = 0;
    while i < parts.len() {
        match &parts[i] {
            Part::Lit(l) => rest = rest.strip_prefix(l.as_str())?,
            Part::Param(_) => {
                let value = match parts.get(i + 1) {
                    None => std::mem::take(&mut rest),
                    Some(Part::Lit(next)) => {
                        // The last literal is found from the end (`{name}.{ext}` splits
                        // `a.b.json` at the last dot), the others at their first occurrence.
                        let last = parts[i + 2..].iter().all(|p| matches!(p, Part::Param(_)));
                        let at = if last {
                            rest.rfind(next.as_str())?
                        } else {
                            rest.find(next.as_str())?
                        };
                        let (v, r) = rest.split_at(at);
                        rest = r;
                        v
                    }
                    Some(Part::Param(_)) => return None,
                };
                if value.is_empty() {
                    return None;
                }
                out.push((i, value));
            }
        }
        i += 1;
    }
    rest.is_empty().then_some(out)
}

/// Groups unknown paths for the shadow inventory: numeric, UUID-looking and long hexadecimal
/// segments become `{id}`, so `/v2/orders/17` and `/v2/orders/18` are one entry. Bounded in
/// length and stripped of control characters: the input is an attacker's.
pub fn normalise_path(path: &str) -> String {
    const MAX_SEGMENTS: usize = 32;
    const MAX_LEN: usize = 256;
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut out = String::with_capacity(path.len().min(MAX_LEN));
    for (n, seg) in path.trim_start_matches('/').split('/').enumerate() {
        if n == MAX_SEGMENTS {
            out.push_str("/...");
            break;
        }
        out.push('/');
        if looks_like_id(seg) {
            out.push_str("{id}");
        } else {
            out.extend(seg.chars().map(|c| if c.is_control() { '?' } else { c }));
        }
        if out.len() > MAX_LEN {
            let mut cut = MAX_LEN;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push_str("...");
            break;
        }
    }
    out
}

fn looks_like_id(seg: &str) -> bool {
    let b = seg.as_bytes();
    if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    let uuid = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    let long_hex =
        b.len() >= 16 && b.iter().all(u8::is_ascii_hexdigit) && b.iter().any(u8::is_ascii_digit);
    uuid || long_hex
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn segments_decode_safely() {
        assert!(matches!(decode_segment("abc"), Ok(Cow::Borrowed("abc"))));
        assert_eq!(decode_segment("a%20b").unwrap(), "a b");
        assert_eq!(decode_segment("caf%C3%A9").unwrap(), "café");
        assert_eq!(decode_segment("a%2Fb"), Err(DecodeError::EncodedSlash));
        assert_eq!(decode_segment("a%2fb"), Err(DecodeError::EncodedSlash));
        assert_eq!(decode_segment("a%00"), Err(DecodeError::Nul));
        assert_eq!(decode_segment("a\0"), Err(DecodeError::Nul));
        assert_eq!(decode_segment("%zz"), Err(DecodeError::BadEscape));
        assert_eq!(decode_segment("%4"), Err(DecodeError::BadEscape));
        assert_eq!(decode_segment("%ff"), Err(DecodeError::NotUtf8));
        assert_eq!(decode_segment(".."), Err(DecodeError::DotSegment));
        assert_eq!(decode_segment("%2e%2E"), Err(DecodeError::DotSegment));
        assert_eq!(decode_segment("."), Err(DecodeError::DotSegment));
        assert_eq!(decode_segment("...").unwrap(), "...");
    }

    #[test]
    fn query_components_decode_plus_and_slash() {
        assert_eq!(decode_query("a+b%2Fc").unwrap(), "a b/c");
        assert_eq!(decode_query("%00"), Err(DecodeError::Nul));
    }

    #[test]
    fn templates_parse() {
        assert_eq!(
            parse_template("/users/{id}").unwrap(),
            vec![Segment::Lit("users".into()), Segment::Param("id".into())]
        );
        assert_eq!(
            parse_template("/").unwrap(),
            vec![Segment::Lit(String::new())]
        );
        assert_eq!(
            parse_template("/f/{name}.{ext}").unwrap()[1],
            Segment::Mixed(vec![
                Part::Param("name".into()),
                Part::Lit(".".into()),
                Part::Param("ext".into())
            ])
        );
        assert!(parse_template("users").is_err());
        assert!(parse_template("/a/{id").is_err());
        assert!(parse_template("/a/{x}{y}").is_err());
        assert!(parse_template("/a/b}").is_err());
    }

    #[test]
    fn mixed_segments_match() {
        let Segment::Mixed(parts) = parse_template("/{name}.{ext}").unwrap().remove(0) else {
            panic!("not mixed");
        };
        assert_eq!(
            match_mixed(&parts, "a.b.json").unwrap(),
            vec![(0, "a.b"), (2, "json")]
        );
        assert_eq!(match_mixed(&parts, "noext"), None);
        assert_eq!(match_mixed(&parts, ".json"), None);
        let Segment::Mixed(parts) = parse_template("/report.{fmt}").unwrap().remove(0) else {
            panic!("not mixed");
        };
        assert_eq!(match_mixed(&parts, "report.csv").unwrap(), vec![(1, "csv")]);
        assert_eq!(match_mixed(&parts, "other.csv"), None);
    }

    #[test]
    fn unknown_paths_are_grouped() {
        assert_eq!(
            normalise_path("/v2/orders/17/items"),
            "/v2/orders/{id}/items"
        );
        assert_eq!(
            normalise_path("/u/123e4567-e89b-12d3-a456-426614174000?x=1"),
            "/u/{id}"
        );
        assert_eq!(normalise_path("/h/5f2b9c0e1a7d4e3f"), "/h/{id}");
        assert_eq!(normalise_path("/admin/deadbeefcafe"), "/admin/deadbeefcafe");
        assert_eq!(normalise_path("/a\nb"), "/a?b");
        assert!(normalise_path(&"/x".repeat(1000)).len() < 300);
        assert!(normalise_path(&format!("/{}", "é".repeat(500))).len() < 300);
    }
}
