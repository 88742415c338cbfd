//! A request written out as HTTP/1.1 text (request line, headers, blank line, body), as
//! `vigilctl patch test RULE REQUEST_FILE` reads it to say offline whether a patch would match.

use crate::engine::Request;

/// Longest request file read.
pub const MAX_FILE: usize = 4 << 20;

#[derive(Clone, Debug, Default)]
pub struct FileRequest {
    pub method: String,
    pub path: String,
    /// The OpenAPI operation it would match (`GET /orders/{id}`), if the caller knows it.
    pub route: Option<String>,
    query: Vec<(String, Vec<u8>)>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    json: Option<serde_json::Value>,
}

/// Percent-decodes (and `+` as space, as forms write it).
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

impl FileRequest {
    /// Parses the text of a request file. Line ends may be CRLF or LF.
    pub fn parse(text: &[u8]) -> Result<FileRequest, String> {
        if text.len() > MAX_FILE {
            return Err(format!("over {MAX_FILE} bytes"));
        }
        let split = text
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| (p, p + 4))
            .or_else(|| {
                text.windows(2)
                    .position(|w| w == b"\n\n")
                    .map(|p| (p, p + 2))
            });
        let (head, body) = match split {
            Some((h, b)) => (&text[..h], &text[b..]),
            None => (text, &[][..]),
        };
        let head = std::str::from_utf8(head).map_err(|_| "the head is not UTF-8".to_owned())?;
        let mut lines = head.lines();
        let first = lines.next().unwrap_or_default();
        let mut parts = first.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return Err(format!(
                "the first line {first:?} is not a request line (`POST /orders?q=1 HTTP/1.1`)"
            ));
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut req = FileRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            body: body.to_vec(),
            ..FileRequest::default()
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            req.query.push((
                String::from_utf8_lossy(&percent_decode(k)).into_owned(),
                percent_decode(v),
            ));
        }
        for (n, line) in lines.enumerate() {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("header line {}: {line:?} has no ':'", n + 2))?;
            req.headers.push((
                name.trim().to_ascii_lowercase(),
                value.trim().as_bytes().to_vec(),
            ));
        }
        let json_type = req.headers.iter().any(|(n, v)| {
            n == "content-type"
                && String::from_utf8_lossy(v)
                    .to_ascii_lowercase()
                    .contains("json")
        });
        if json_type && !req.body.is_empty() {
            req.json = Some(
                serde_json::from_slice(&req.body)
                    .map_err(|e| format!("the body is declared JSON but does not parse: {e}"))?,
            );
        }
        Ok(req)
    }
}

/// The values of cookie `name` in one `Cookie` header (`a=1; b=2`).
pub fn cookie_values(header: &[u8], name: &str, each: &mut dyn FnMut(&[u8])) {
    for c in header.split(|b| *b == b';') {
        let c = c.trim_ascii();
        let (n, val) = match c.iter().position(|b| *b == b'=') {
            Some(p) => (&c[..p], &c[p + 1..]),
            None => (c, &[][..]),
        };
        if n == name.as_bytes() {
            each(val);
        }
    }
}

/// A JSON value as patches see it: a string as its text, anything else as JSON.
pub fn json_text(v: &serde_json::Value) -> Vec<u8> {
    match v {
        serde_json::Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

impl Request for FileRequest {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }
    fn query(&self, name: &str, each: &mut dyn FnMut(&[u8])) {
        for (k, v) in &self.query {
            if k == name {
                each(v);
            }
        }
    }
    fn header(&self, name: &str, each: &mut dyn FnMut(&[u8])) {
        for (k, v) in &self.headers {
            if k == name {
                each(v);
            }
        }
    }
    fn cookie(&self, name: &str, each: &mut dyn FnMut(&[u8])) {
        for (k, v) in &self.headers {
            if k == "cookie" {
                cookie_values(v, name, each);
            }
        }
    }
    fn json(&self, pointer: &str, each: &mut dyn FnMut(&[u8])) {
        if let Some(v) = self.json.as_ref().and_then(|j| j.pointer(pointer)) {
            each(&json_text(v));
        }
    }
    fn body(&self) -> Option<&[u8]> {
        Some(&self.body)
    }
}
