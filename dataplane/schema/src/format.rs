//! `format` assertions. A gateway asserts formats (JSON Schema only annotates them by default)
//! because the upstream trusts them. Each check is hand-written, linear and allocation-free.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::number::Num;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    DateTime,
    Date,
    Time,
    Email,
    Uuid,
    Ipv4,
    Ipv6,
    Hostname,
    Uri,
    /// OpenAPI: base64 data.
    Byte,
    /// OpenAPI: a number that fits a signed 32-bit integer.
    Int32,
    /// OpenAPI: a number that fits a signed 64-bit integer.
    Int64,
}

/// What a `format` name means to the compiler.
pub(crate) enum Known {
    Assert(Format),
    /// Defined only as a hint (OpenAPI `float`, `double`, `password`, `binary`).
    Annotation,
}

pub(crate) fn lookup(name: &str, openapi: bool) -> Option<Known> {
    Some(Known::Assert(match name {
        "date-time" => Format::DateTime,
        "date" => Format::Date,
        "time" => Format::Time,
        "email" => Format::Email,
        "uuid" => Format::Uuid,
        "ipv4" => Format::Ipv4,
        "ipv6" => Format::Ipv6,
        "hostname" => Format::Hostname,
        "uri" => Format::Uri,
        "byte" if openapi => Format::Byte,
        "int32" if openapi => Format::Int32,
        "int64" if openapi => Format::Int64,
        "float" | "double" | "password" | "binary" if openapi => return Some(Known::Annotation),
        _ => return None,
    }))
}

impl Format {
    /// Formats that constrain numbers rather than strings.
    pub(crate) fn numeric(self) -> bool {
        matches!(self, Format::Int32 | Format::Int64)
    }

    pub(crate) fn check_str(self, s: &str) -> bool {
        match self {
            Format::DateTime => date_time(s),
            Format::Date => date(s.as_bytes()),
            Format::Time => time(s.as_bytes()),
            Format::Email => email(s),
            Format::Uuid => uuid(s.as_bytes()),
            Format::Ipv4 => s.parse::<Ipv4Addr>().is_ok(),
            Format::Ipv6 => s.parse::<Ipv6Addr>().is_ok(),
            Format::Hostname => hostname(s),
            Format::Uri => uri(s),
            Format::Byte => base64(s.as_bytes()),
            Format::Int32 | Format::Int64 => true,
        }
    }

    pub(crate) fn check_num(self, n: Num) -> bool {
        let (lo, hi) = match self {
            Format::Int32 => (i128::from(i32::MIN), i128::from(i32::MAX)),
            Format::Int64 => (i128::from(i64::MIN), i128::from(i64::MAX)),
            _ => return true,
        };
        match n {
            Num::I(i) => (lo..=hi).contains(&i128::from(i)),
            Num::U(u) => (lo..=hi).contains(&i128::from(u)),
            Num::F(f) => n.is_integer() && f >= lo as f64 && f <= hi as f64,
        }
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0')))
}

fn date(b: &[u8]) -> bool {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (digits(&b[..4]), digits(&b[5..7]), digits(&b[8..10])) else {
        return false;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let max = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=max).contains(&d)
}

/// RFC 3339 `full-time`: hh:mm:ss[.frac] then Z or ±hh:mm. A leap second (:60) is only valid
/// at 23:59 UTC.
fn time(b: &[u8]) -> bool {
    if b.len() < 9 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let (Some(h), Some(m), Some(s)) = (digits(&b[..2]), digits(&b[3..5]), digits(&b[6..8])) else {
        return false;
    };
    let mut rest = &b[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    let offset_min: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh @ .., b':', om1, om2] if oh.len() == 2 => {
            let (Some(oh), Some(om)) = (digits(oh), digits(&[*om1, *om2])) else {
                return false;
            };
            if oh > 23 || om > 59 {
                return false;
            }
            let v = i64::from(oh * 60 + om);
            if *sign == b'-' { -v } else { v }
        }
        _ => return false,
    };
    if h > 23 || m > 59 || s > 60 {
        return false;
    }
    if s == 60 {
        let utc = (i64::from(h * 60 + m) - offset_min).rem_euclid(24 * 60);
        return utc == 23 * 60 + 59;
    }
    true
}

fn date_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 11 && matches!(b[10], b'T' | b't') && date(&b[..10]) && time(&b[11..])
}

fn uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    s.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            // "xn--" labels are punycode; "ab--" in positions 3-4 is reserved for it (RFC 5891).
            && !(b.len() >= 4 && &b[2..4] == b"--" && !b[..2].eq_ignore_ascii_case(b"xn"))
    })
}

fn email(s: &str) -> bool {
    let Some(at) = s.rfind('@') else { return false };
    let (local, domain) = (&s[..at], &s[at + 1..]);
    let local_ok = if let Some(q) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        q.bytes()
            .all(|c| c.is_ascii() && c != b'"' && c != b'\\' && !c.is_ascii_control())
    } else {
        !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".!#$%&'*+-/=?^_`{|}~".contains(&c))
    };
    let domain_ok = if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        match lit.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
            None => lit.parse::<Ipv4Addr>().is_ok(),
        }
    } else {
        hostname(domain)
    };
    local_ok && domain_ok
}

/// RFC 3986 absolute URI: a scheme, then only legal characters, valid percent escapes and
/// brackets only around an IP literal host.
fn uri(s: &str) -> bool {
    let Some(colon) = s.find(':') else {
        return false;
    };
    let scheme = s.as_bytes();
    if colon == 0
        || !scheme[0].is_ascii_alphabetic()
        || !scheme[..colon]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
    {
        return false;
    }
    let rest = &s[colon + 1..];
    let (hier, _) = rest.split_once('#').unwrap_or((rest, ""));
    if let Some(after) = hier.strip_prefix("//") {
        let end = after.find(['/', '?']).unwrap_or(after.len());
        let authority = &after[..end];
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let port = if host_port.starts_with('[') {
            match host_port.find(']') {
                Some(i) => &host_port[i + 1..],
                None => return false,
            }
        } else {
            host_port.rsplit_once(':').map_or("", |(_, p)| p)
        };
        let port = port.strip_prefix(':').unwrap_or(port);
        if !port.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    uri_chars(rest.as_bytes())
}

fn uri_chars(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&c)) {
            return false;
        }
        i += 1;
    }
    true
}

fn base64(b: &[u8]) -> bool {
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let pad = b.iter().rev().take_while(|c| **c == b'=').count();
    pad <= 2
        && b[..b.len() - pad]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times() {
        assert!(Format::DateTime.check_str("1963-06-19T08:30:06.283185Z"));
        assert!(Format::DateTime.check_str("1998-12-31T15:59:60.123-08:00"));
        assert!(!Format::DateTime.check_str("1998-12-31T22:59:60Z"));
        assert!(!Format::DateTime.check_str("2021-02-29T00:00:00Z"));
        assert!(Format::Date.check_str("2020-02-29"));
        assert!(!Format::Date.check_str("2020-2-29"));
        assert!(!Format::Time.check_str("08:30:06"), "offset is required");
        assert!(!Format::Time.check_str("24:00:00Z"));
    }

    #[test]
    fn addresses() {
        assert!(Format::Ipv4.check_str("192.168.0.1"));
        assert!(!Format::Ipv4.check_str("087.10.0.1"));
        assert!(!Format::Ipv4.check_str("256.0.0.1"));
        assert!(Format::Ipv6.check_str("::ffff:192.168.0.1"));
        assert!(!Format::Ipv6.check_str("fe80::a%eth1"));
        assert!(Format::Hostname.check_str("www.example.com"));
        assert!(!Format::Hostname.check_str("-a.example.com"));
        assert!(!Format::Hostname.check_str(&"a".repeat(64)));
    }

    #[test]
    fn emails_uris_uuids() {
        assert!(Format::Email.check_str("joe.bloggs@example.com"));
        assert!(Format::Email.check_str("\"joe bloggs\"@example.com"));
        assert!(Format::Email.check_str("joe@[IPv6:::1]"));
        assert!(!Format::Email.check_str("joe..bloggs@example.com"));
        assert!(!Format::Email.check_str("joe@[127.0.0.300]"));
        assert!(Format::Uri.check_str("http://foo.bar/?baz=qux#quux"));
        assert!(Format::Uri.check_str("urn:oasis:names:specification:docbook:dtd:xml:4.1.2"));
        assert!(!Format::Uri.check_str("//foo.bar/?baz=qux#quux"));
        assert!(!Format::Uri.check_str("http:// shouldfail.com"));
        assert!(!Format::Uri.check_str("http://a.b:port/"));
        assert!(Format::Uuid.check_str("2eb8aa08-aa98-11ea-b4aa-73b441d16380"));
        assert!(!Format::Uuid.check_str("2eb8aa08-aa98-11ea-b4aa-73b441d1638"));
    }

    #[test]
    fn openapi_formats() {
        assert!(Format::Int32.check_num(Num::I(i64::from(i32::MAX))));
        assert!(!Format::Int32.check_num(Num::I(i64::from(i32::MAX) + 1)));
        assert!(!Format::Int64.check_num(Num::U(u64::MAX)));
        assert!(Format::Byte.check_str("aGVsbG8="));
        assert!(!Format::Byte.check_str("aGVsbG8"));
        assert!(matches!(lookup("double", true), Some(Known::Annotation)));
        assert!(lookup("double", false).is_none());
    }
}
