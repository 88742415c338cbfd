//! Detects HTTP/1.1 request heads whose framing is ambiguous: both Content-Length and
//! Transfer-Encoding, or Content-Length more than once.
//!
//! hyper follows RFC 9112 §6.3 for such a message: it drops Content-Length, decodes the body as
//! chunked and closes the connection afterwards. That is safe for hyper itself but hides the
//! smuggling attempt, and the header is gone before the pipeline sees the request. So the
//! connection's read path runs this small framing tracker over the raw bytes: it follows heads
//! and body lengths exactly as the parser does for valid traffic, and records the index of the
//! first ambiguous head so that request (and any after it) is refused with 400. hyper also
//! folds repeated identical Content-Length headers into one without a word, though a front end
//! that reads the second one differently is exactly how requests are smuggled: those heads are
//! refused the same way. On anything it does not understand the tracker switches itself off;
//! hyper still rejects malformed framing itself.

/// Longest header line kept for inspection; longer lines cannot be the headers we look for.
const MAX_LINE: usize = 64;

#[derive(Debug)]
enum State {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkCrlf(u8),
    Trailers,
    Off,
}

/// What was wrong with a head's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Content-Length and Transfer-Encoding together.
    Ambiguous,
    /// Content-Length more than once (hyper keeps one if they are equal).
    RepeatedLength,
    /// A Content-Length too large for any body: hyper answers a bare 431 for it.
    HugeLength,
}

impl Fault {
    /// The stable reason code for the refusal.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Ambiguous => "ambiguous_framing",
            Self::RepeatedLength | Self::HugeLength => "bad_content_length",
        }
    }
}

/// Per-connection tracker.
#[derive(Debug)]
pub struct Framing {
    state: State,
    line: Vec<u8>,
    line_len: usize,
    head_lines: usize,
    cl: Option<u64>,
    cl_count: u32,
    huge_cl: bool,
    te: bool,
    upgrade: bool,
    heads: u64,
    h2: bool,
}

impl Default for Framing {
    fn default() -> Self {
        Self {
            state: State::Head,
            line: Vec::with_capacity(MAX_LINE),
            line_len: 0,
            head_lines: 0,
            cl: None,
            cl_count: 0,
            huge_cl: false,
            te: false,
            upgrade: false,
            heads: 0,
            h2: false,
        }
    }
}

impl Framing {
    /// Feeds bytes read from the client. Returns the 0-based request number and the fault of
    /// the first head in `data` whose framing is ambiguous.
    pub fn feed(&mut self, mut data: &[u8]) -> Option<(u64, Fault)> {
        let mut found = None;
        while !data.is_empty() {
            match &mut self.state {
                State::Off => return found,
                State::Body(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.state = State::Head;
                    }
                }
                State::ChunkData(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.state = State::ChunkCrlf(2);
                    }
                }
                State::ChunkCrlf(n) => {
                    *n -= 1;
                    if *n == 0 {
                        self.state = State::ChunkSize;
                    }
                    data = &data[1..];
                }
                State::Head | State::ChunkSize | State::Trailers => {
                    // A line at a time, not a byte at a time: a head is read with every
                    // request, and only the first MAX_LINE bytes of a line are ever looked at.
                    let end = memchr::memchr(b'\n', data);
                    let part = &data[..end.unwrap_or(data.len())];
                    let room = MAX_LINE.saturating_sub(self.line.len());
                    self.line.extend_from_slice(&part[..part.len().min(room)]);
                    self.line_len += part.len();
                    let Some(end) = end else {
                        return found;
                    };
                    data = &data[end + 1..];
                    if let Some(i) = self.end_line() {
                        found = found.or(Some(i));
                    }
                }
            }
        }
        found
    }

    /// The client opened with the HTTP/2 preface: no HTTP/1.1 head follows.
    pub fn h2(&self) -> bool {
        self.h2
    }

    /// A request head has begun and not ended: the client is part way through sending one.
    pub fn partial_head(&self) -> bool {
        matches!(self.state, State::Head) && (self.head_lines > 0 || self.line_len > 0)
    }

    fn end_line(&mut self) -> Option<(u64, Fault)> {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
            self.line_len = self.line_len.saturating_sub(1);
        }
        // The buffer goes back once the line is read, so a head costs no allocation per line.
        let mut line = std::mem::take(&mut self.line);
        let len = std::mem::replace(&mut self.line_len, 0);
        let found = self.read_line(&line, len);
        line.clear();
        self.line = line;
        found
    }

    fn read_line(&mut self, line: &[u8], len: usize) -> Option<(u64, Fault)> {
        match self.state {
            State::Head => self.head_line(line, len),
            State::ChunkSize => {
                let hex = line.split(|b| *b == b';').next().unwrap_or(&[]);
                let size = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|s| u64::from_str_radix(s.trim(), 16).ok());
                self.state = match size {
                    Some(0) => State::Trailers,
                    Some(n) => State::ChunkData(n),
                    None => State::Off,
                };
                None
            }
            State::Trailers => {
                if len == 0 {
                    self.state = State::Head;
                }
                None
            }
            _ => None,
        }
    }

    fn head_line(&mut self, line: &[u8], len: usize) -> Option<(u64, Fault)> {
        if len == 0 {
            if self.head_lines == 0 {
                return None; // empty lines before a request line are allowed
            }
            let index = self.heads;
            self.heads += 1;
            let (cl, te, upgrade) = (self.cl.take(), self.te, self.upgrade);
            let (cl_count, huge) = (self.cl_count, self.huge_cl);
            self.head_lines = 0;
            self.cl_count = 0;
            self.huge_cl = false;
            self.te = false;
            self.upgrade = false;
            let fault = if te && cl.is_some() {
                Some(Fault::Ambiguous)
            } else if huge {
                Some(Fault::HugeLength)
            } else if cl_count > 1 {
                Some(Fault::RepeatedLength)
            } else {
                None
            };
            self.state = if te && cl.is_some() || huge {
                // hyper closes the connection after this request; nothing more to track.
                State::Off
            } else if upgrade {
                // After a 101 the bytes are another protocol.
                State::Off
            } else if te {
                State::ChunkSize
            } else {
                match cl {
                    Some(n) if n > 0 => State::Body(n),
                    _ => State::Head,
                }
            };
            return fault.map(|f| (index, f));
        }
        self.head_lines += 1;
        if self.head_lines == 1 {
            if line.starts_with(b"PRI * HTTP/2") {
                self.state = State::Off;
                self.h2 = true;
            }
            return None;
        }
        let colon = line.iter().position(|b| *b == b':')?;
        let name = &line[..colon];
        let value = std::str::from_utf8(&line[colon + 1..]).unwrap_or("").trim();
        if name.eq_ignore_ascii_case(b"content-length") {
            self.cl_count += 1;
            // hyper reserves the top two values of u64 and refuses them as a too-large head.
            let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            match value.parse::<u64>() {
                Ok(n) if n >= u64::MAX - 1 => self.huge_cl = true,
                Err(_) if digits => self.huge_cl = true,
                Ok(n) => self.cl = Some(n),
                // A long or odd value: hyper decides; stop guessing lengths.
                Err(_) if len > MAX_LINE => self.state = State::Off,
                Err(_) => self.cl = Some(0),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.te = true;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.upgrade = true;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_bodies_and_flags_the_ambiguous_head() {
        let mut f = Framing::default();
        let stream = b"POST /a HTTP/1.1\r\nContent-Length: 30\r\n\r\n\
            Transfer-Encoding: chunked\r\n\r\n\
            POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
            5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n\
            GET /c HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /d HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        // Byte by byte and all at once give the same answer: request index 3.
        assert_eq!(f.feed(stream), Some((3, Fault::Ambiguous)));
        let mut g = Framing::default();
        let found: Vec<(u64, Fault)> = stream.iter().filter_map(|b| g.feed(&[*b])).collect();
        assert_eq!(found, vec![(3, Fault::Ambiguous)]);
    }

    #[test]
    fn a_repeated_or_huge_content_length_is_a_fault() {
        let mut f = Framing::default();
        let stream = b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nok\
            POST /b HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok";
        assert_eq!(f.feed(stream), Some((1, Fault::RepeatedLength)));
        assert!(!f.partial_head());
        assert!(f.feed(b"GET / HT").is_none() && f.partial_head());
        let mut g = Framing::default();
        let huge = b"POST /a HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n";
        assert_eq!(g.feed(huge), Some((0, Fault::HugeLength)));
        let mut h = Framing::default();
        let over = b"POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert_eq!(h.feed(over), Some((0, Fault::HugeLength)));
        assert_eq!(Fault::RepeatedLength.reason(), "bad_content_length");
    }

    #[test]
    fn body_text_that_looks_like_headers_is_not_a_head() {
        let mut f = Framing::default();
        let body = "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let req = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(f.feed(req.as_bytes()), None);
        assert_eq!(f.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
    }
}
