//! Just enough RFC 3986 to resolve `$id` and `$ref` against a base URI inside one document.

/// The base used when a document declares no `$id`; refs that leave it are remote.
pub(crate) const DEFAULT_BASE: &str = "vigil-schema:///root.json";

struct Parts<'a> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
}

fn parse(s: &str) -> Parts<'_> {
    let mut rest = s;
    let scheme = match rest.find(':') {
        Some(i)
            if i > 0
                && rest[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && rest.as_bytes()[0].is_ascii_alphabetic() =>
        {
            let sc = &rest[..i];
            rest = &rest[i + 1..];
            Some(sc)
        }
        _ => None,
    };
    let authority = if let Some(r) = rest.strip_prefix("//") {
        let end = r.find(['/', '?']).unwrap_or(r.len());
        rest = &r[end..];
        Some(&r[..end])
    } else {
        None
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    Parts {
        scheme,
        authority,
        path,
        query,
    }
}

fn remove_dots(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    let segs: Vec<&str> = path.split('/').collect();
    let last = segs.len().saturating_sub(1);
    for (i, seg) in segs.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > usize::from(absolute) {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if absolute && !joined.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

fn compose(p: &Parts<'_>, path: &str, query: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(sc) = p.scheme {
        s.push_str(sc);
        s.push(':');
    }
    if let Some(a) = p.authority {
        s.push_str("//");
        s.push_str(a);
    }
    s.push_str(path);
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    s
}

/// Resolves `reference` against `base` (both without consideration of fragments on the base).
/// Returns the absolute URI, fragment included when the reference has one.
pub(crate) fn resolve(base: &str, reference: &str) -> String {
    let (reference, fragment) = match reference.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (reference, None),
    };
    let base = base.split_once('#').map_or(base, |(b, _)| b);
    let b = parse(base);
    let r = parse(reference);
    let mut out = if r.scheme.is_some() {
        compose(&r, &remove_dots(r.path), r.query)
    } else if r.authority.is_some() {
        compose(
            &Parts {
                scheme: b.scheme,
                ..r
            },
            &remove_dots(r.path),
            r.query,
        )
    } else if r.path.is_empty() {
        compose(&b, b.path, r.query.or(b.query))
    } else if r.path.starts_with('/') {
        compose(&b, &remove_dots(r.path), r.query)
    } else {
        let merged = if b.authority.is_some() && b.path.is_empty() {
            format!("/{}", r.path)
        } else {
            match b.path.rfind('/') {
                Some(i) => format!("{}{}", &b.path[..=i], r.path),
                None => r.path.to_string(),
            }
        };
        compose(&b, &remove_dots(&merged), r.query)
    };
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Splits an absolute URI into the resource part and the fragment (`""` when absent).
pub(crate) fn split_fragment(uri: &str) -> (&str, &str) {
    uri.split_once('#').unwrap_or((uri, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3986_examples() {
        let base = "http://a/b/c/d;p?q";
        for (r, want) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("", "http://a/b/c/d;p?q"),
            ("..", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("g:h", "g:h"),
        ] {
            assert_eq!(resolve(base, r), want, "{r}");
        }
    }

    #[test]
    fn urns_and_fragments() {
        assert_eq!(
            resolve("urn:uuid:1234", "#/$defs/a"),
            "urn:uuid:1234#/$defs/a"
        );
        assert_eq!(
            resolve(DEFAULT_BASE, "item.json"),
            "vigil-schema:///item.json"
        );
        assert_eq!(split_fragment("http://x/y#/a"), ("http://x/y", "/a"));
    }
}
