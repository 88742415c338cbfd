//! The attack suite: vigild as a process, an OpenAPI policy that requires a JWT on most
//! operations, and raw sockets playing the attacker. Each case asserts what the attacker gets
//! back (status and reason), what the audit log says, and that nothing desynced or unchecked
//! reached the upstream, which records every request head and every tunnelled byte.
//!
//! Cases: h2c upgrade smuggling, WebSocket upgrade to a non-WebSocket operation, parameter
//! pollution, bodies held before identity, the global body-memory bound, idle connections and
//! the first request's header deadline, a body without Content-Type, framing refusals (CL.TE,
//! TE.CL, Transfer-Encoding obfuscations, repeated and huge Content-Length, NUL in a header),
//! Host and request-target tricks, HTTP/2 window-zero stalls, rapid reset, CONTINUATION flood,
//! HPACK bomb, slowloris and slow POST.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_testkit::config::Config;
use vigil_testkit::ports::free_port;
use vigil_testkit::vigild::Vigild;

/// A P-256 public key (RFC 7517 appendix A.1): requests in this suite never carry a valid
/// token, they only need operations that require one.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig",
"x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}"#;

const POLICY: &str = r#"openapi: 3.0.3
info: {title: attack-suite, version: "1"}
servers: [{url: /api/v1}]
components:
  securitySchemes:
    bearer:
      type: http
      scheme: bearer
      x-vigil-jwt: {issuer: "https://id.example", audience: api, jwks_file: jwks.json}
security: [{bearer: []}]
paths:
  /health:
    get:
      security: []
      responses: {"200": {description: ok}}
  /ws:
    get:
      security: []
      x-vigil: {websocket: true}
      responses: {"101": {description: switching}}
  /users/{user}/orders:
    get:
      parameters: [{name: user, in: path, required: true, schema: {type: string}}]
      x-vigil-ownership:
        rules: [{in: path, name: user, claim: sub}]
      responses: {"200": {description: ok}}
  /items:
    get:
      security: []
      parameters:
        - {name: limit, in: query, schema: {type: integer, maximum: 100}}
      responses: {"200": {description: ok}}
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, properties: {name: {type: string}}}
      responses: {"201": {description: created}}
  /open-items:
    post:
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, properties: {name: {type: string}}}
      responses: {"201": {description: created}}
"#;

/// What the upstream saw: request heads, and bytes that went through a 101 tunnel.
#[derive(Debug, Default)]
struct Seen {
    heads: Vec<String>,
    tunnelled: Vec<String>,
}

/// An HTTP/1.1 upstream that, like a real one would, answers `Upgrade: h2c` and
/// `Upgrade: websocket` with 101 and then relays (WebSocket: echoes) whatever comes through.
fn upstream() -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = log.clone();
            thread::spawn(move || serve_upstream(stream, &log));
        }
    });
    (addr, seen)
}

fn serve_upstream(stream: TcpStream, log: &Mutex<Seen>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let Ok(read) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read);
    let mut w = stream;
    loop {
        let Some(head) = vigil_e2e::upstream::read_head(&mut reader) else {
            return;
        };
        let lower = head.to_ascii_lowercase();
        log.lock().unwrap().heads.push(head.clone());
        let len: usize = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if lower.contains("upgrade: h2c") || lower.contains("upgrade: websocket") {
            let _ = w.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: x\r\n\r\n",
            );
            let echo = lower.contains("websocket");
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    return;
                }
                log.lock()
                    .unwrap()
                    .tunnelled
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                if echo && w.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            return;
        }
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let body = format!("{{\"upstream\":true,\"path\":\"{path}\"}}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// vigild with the attack policy, a TLS and a plain listener, a file audit log.
struct Env {
    d: Vigild,
    seen: Arc<Mutex<Seen>>,
    https: u16,
    http: SocketAddr,
}

impl Env {
    /// With `extra` applied to the config (listener timeouts, limits).
    fn start(extra: impl FnOnce(Config) -> Config) -> Env {
        let (up, seen) = upstream();
        let (https, http) = (free_port().unwrap(), free_port().unwrap());
        let mut d = Vigild::new("attack").unwrap();
        let cfg = d
            .gateway_config("127.0.0.1", https, format!("http://{up}"))
            .unwrap()
            .http(format!("127.0.0.1:{http}"))
            .set("limits.max_body_bytes", 1_048_576)
            .audit_file(&d.path("audit.log"))
            .policy(&d.path("openapi.yaml"));
        d.configure(extra(cfg)).unwrap();
        std::fs::write(d.path("openapi.yaml"), POLICY).unwrap();
        std::fs::write(d.path("jwks.json"), JWKS).unwrap();
        d.start().unwrap();
        Env {
            d,
            seen,
            https,
            http: SocketAddr::from(([127, 0, 0, 1], http)),
        }
    }

    /// Audit lines, parsed; waits (bounded) until one with `reason` and `status` is there.
    fn audit_with(&self, reason: &str, status: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<Value> = std::fs::read_to_string(self.d.path("audit.log"))
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
            let found = lines
                .iter()
                .any(|l| l["reason"] == reason && l["status"] == status);
            if found || Instant::now() > deadline {
                return lines;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn assert_audited(&self, reason: &str, status: u64) {
        let lines = self.audit_with(reason, status);
        assert!(
            lines
                .iter()
                .any(|l| l["reason"] == reason && l["status"] == status),
            "no audit line {status} {reason} in {lines:#?}"
        );
    }

    fn upstream_paths(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .heads
            .iter()
            .map(|h| h.split_whitespace().nth(1).unwrap_or("").to_owned())
            .collect()
    }

    /// One request over the plain listener; the whole answer (the connection is closed).
    fn raw(&self, request: &[u8]) -> String {
        raw_exchange(self.http, request, Duration::from_secs(5))
    }

    /// curl over TLS: (status, head + body).
    fn curl(&self, args: &[&str], path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", "-i", "-k"])
            .args(args)
            .arg(format!("https://127.0.0.1:{}{path}", self.https))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (status_of(&text), text)
    }
}

fn status_of(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Writes `request`, half-closes nothing, reads until the server closes or `wait` passes.
fn raw_exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request).unwrap();
    read_until_close(&mut s, wait)
}

fn read_until_close(s: &mut TcpStream, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True if the server closes `s` within `wait` (reads until EOF or a reset).
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

/// A TCP connection from `src` (another loopback address), so per-client shares can be told
/// apart from the legitimate client on 127.0.0.1.
fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> TcpStream {
    // SAFETY: plain socket(2)/bind(2)/connect(2) on a descriptor this function owns; the
    // sockaddr_in structs are fully initialised and outlive the calls; on success the fd is
    // handed to TcpStream, which closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        a.sin_family = libc::AF_INET as libc::sa_family_t;
        a.sin_addr.s_addr = u32::from(src).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd, (&raw const a).cast(), len), 0, "bind {src}");
        let SocketAddr::V4(d) = dst else {
            panic!("v4 only")
        };
        let mut b: libc::sockaddr_in = std::mem::zeroed();
        b.sin_family = libc::AF_INET as libc::sa_family_t;
        b.sin_addr.s_addr = u32::from(*d.ip()).to_be();
        b.sin_port = d.port().to_be();
        assert_eq!(
            libc::connect(fd, (&raw const b).cast(), len),
            0,
            "connect {dst}"
        );
        TcpStream::from_raw_fd(fd)
    }
}

/// A connection and the start of what an HTTP/2 client sends on it (preface, SETTINGS).
fn h2_conn(addr: SocketAddr) -> (TcpStream, Vec<u8>) {
    let mut out = h2::PREFACE.to_vec();
    out.extend(h2::settings(&[]));
    (TcpStream::connect(addr).unwrap(), out)
}

/// Just enough HTTP/2 to attack with: frames and literal (non-Huffman) HPACK fields.
mod h2 {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// SETTINGS with (id, value) pairs.
    pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
        let mut p = Vec::new();
        for (id, v) in pairs {
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&v.to_be_bytes());
        }
        frame(4, 0, 0, &p)
    }

    pub fn settings_ack() -> Vec<u8> {
        frame(4, 1, 0, &[])
    }

    fn int(out: &mut Vec<u8>, prefix_bits: u8, first: u8, mut n: usize) {
        let max = (1usize << prefix_bits) - 1;
        if n < max {
            out.push(first | n as u8);
            return;
        }
        out.push(first | max as u8);
        n -= max;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }

    /// Literal header fields without indexing, new names, no Huffman.
    pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in fields {
            out.push(0);
            int(&mut out, 7, 0, n.len());
            out.extend_from_slice(n.as_bytes());
            int(&mut out, 7, 0, v.len());
            out.extend_from_slice(v.as_bytes());
        }
        out
    }

    pub fn get(stream: u32, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut fields = vec![
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "api.example"),
            (":path", path),
        ];
        fields.extend_from_slice(extra);
        // END_STREAM | END_HEADERS
        frame(1, 0x5, stream, &block(&fields))
    }

    pub fn rst(stream: u32) -> Vec<u8> {
        frame(3, 0, stream, &8u32.to_be_bytes())
    }
}

#[test]
fn h2c_upgrade_is_never_tunnelled_and_websocket_only_where_described() {
    let env = Env::start(|c| c);
    // The reported bypass: an open operation, an h2c upgrade, then HTTP/2 to a protected one.
    let mut s = TcpStream::connect(env.http).unwrap();
    s.write_all(
        b"GET /api/v1/health HTTP/1.1\r\nHost: api.example\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .unwrap();
    let mut tail = h2::PREFACE.to_vec();
    tail.extend(h2::settings(&[]));
    tail.extend(h2::get(1, "/api/v1/users/bob/orders", &[]));
    thread::sleep(Duration::from_millis(300));
    let _ = s.write_all(&tail);
    let answer = read_until_close(&mut s, Duration::from_secs(3));
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(!answer.contains(" 101 "), "upgrade accepted: {answer}");
    // Over TLS too.
    let (status, text) = env.curl(
        &[
            "--http1.1",
            "-H",
            "Connection: Upgrade, HTTP2-Settings",
            "-H",
            "Upgrade: h2c",
            "-H",
            "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        ],
        "/api/v1/health",
    );
    assert_eq!(status, 200, "{text}");
    {
        let seen = env.seen.lock().unwrap();
        assert!(
            seen.tunnelled.is_empty(),
            "bytes tunnelled: {:?}",
            seen.tunnelled
        );
        for h in &seen.heads {
            let h = h.to_ascii_lowercase();
            assert!(
                !h.contains("upgrade:") && !h.contains("http2-settings"),
                "upgrade headers reached the upstream: {h}"
            );
        }
    }
    assert!(
        !env.upstream_paths()
            .iter()
            .any(|p| p.contains("/users/bob")),
        "the protected operation was reached: {:?}",
        env.upstream_paths()
    );

    // WebSocket: refused on an operation that does not describe it, spliced where it does.
    let ws = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: api.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    let refused = env.raw(ws("/api/v1/health").as_bytes());
    assert_eq!(status_of(&refused), 400, "{refused}");
    assert!(refused.contains("upgrade_not_allowed"), "{refused}");
    env.assert_audited("upgrade_not_allowed", 400);
    let mut s = TcpStream::connect(env.http).unwrap();
    s.write_all(ws("/api/v1/ws").as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(status_of(&head), 101, "{head}");
    s.write_all(b"ping-through-the-tunnel").unwrap();
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping-through-the-tunnel");
}

#[test]
fn parameter_pollution_and_missing_content_type_are_refused() {
    let env = Env::start(|c| c);
    let get = |q: &str| env.curl(&[], &format!("/api/v1/items?{q}"));
    assert_eq!(get("limit=5").0, 200);
    let (status, text) = get("limit=1&limit=1000");
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("param_repeated"), "{text}");
    let (status, text) = get("limit=1&limit=1");
    assert_eq!(status, 400, "{text}");
    assert_eq!(get("limit=1000").0, 400);
    assert!(
        !env.upstream_paths()
            .iter()
            .any(|p| p.contains("limit=1000")),
        "{:?}",
        env.upstream_paths()
    );
    // A body with no Content-Type to an operation that only takes JSON.
    let resp = env.raw(
        b"POST /api/v1/open-items HTTP/1.1\r\nHost: api.example\r\nContent-Length: 13\r\n\
          Connection: close\r\n\r\n{\"name\":\"a\"}\n",
    );
    assert_eq!(status_of(&resp), 415, "{resp}");
    let (status, text) = env.curl(
        &[
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "--data-binary",
            "not json",
        ],
        "/api/v1/open-items",
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("malformed_json"), "{text}");
    env.assert_audited("param_repeated", 400);
}

#[test]
fn bodies_are_not_read_before_the_checks_that_do_not_need_them() {
    // Two 1 MiB bodies fill the body memory; slow bodies would be cut at 30 s.
    let env = Env::start(|c| {
        c.set("listener.request_timeout", "30s")
            .set("limits.max_body_memory", 2_097_152)
    });
    let head = |path: &str, len: u64, auth: bool| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: api.example\r\nContent-Type: application/json\r\n\
             Content-Length: {len}\r\n{}\r\n",
            if auth {
                "Authorization: Bearer x.y.z\r\n"
            } else {
                ""
            }
        )
    };
    let send = |req: String| raw_exchange(env.http, req.as_bytes(), Duration::from_secs(5));
    // Over the size limit: 413 at once, from the declared length.
    let resp = send(head("/api/v1/items", 2_000_000, false));
    assert_eq!(status_of(&resp), 413, "{resp}");
    // No token, a large body announced and never sent: 401 at once, and the connection
    // is closed rather than left to carry a body nobody reads.
    let resp = send(head("/api/v1/items", 500_000, false));
    assert_eq!(status_of(&resp), 401, "{resp}");
    assert!(resp.contains("token_missing"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
    // A bad token is refused before the body too.
    let resp = send(head("/api/v1/items", 500_000, true));
    assert_eq!(status_of(&resp), 401, "{resp}");

    // The body memory: two open requests reserve their declared 1 MiB each and stall;
    // a third is refused with 503 at once, and served again once they are gone.
    let mut holders: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(env.http).unwrap();
            s.write_all(head("/api/v1/open-items", 1_048_576, false).as_bytes())
                .unwrap();
            s.write_all(b"{\"name\":\"").unwrap();
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let resp = send(head("/api/v1/open-items", 1000, false));
    assert_eq!(status_of(&resp), 503, "{resp}");
    assert!(resp.contains("body_memory_full"), "{resp}");
    holders.clear();
    thread::sleep(Duration::from_millis(500));
    let body = br#"{"name":"a"}"#;
    let mut req = head("/api/v1/open-items", body.len() as u64, false).into_bytes();
    req.extend_from_slice(body);
    let resp = raw_exchange(env.http, &req, Duration::from_secs(5));
    assert_eq!(status_of(&resp), 200, "{resp}");
    env.assert_audited("body_memory_full", 503);
}

#[test]
fn idle_connections_are_closed_after_the_header_timeout() {
    let env = Env::start(|c| {
        c.set("listener.max_connections", 20)
            .set("listener.header_timeout", "2s")
            .set("listener.idle_timeout", "60s")
    });
    // Fill every slot with connections that never send a request.
    let mut idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(env.http).unwrap())
        .collect();
    // A TLS client that completes the handshake and then says nothing.
    let mut tls = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(format!("127.0.0.1:{}", env.https))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for s in &mut idle {
        assert!(
            closed_within(s, Duration::from_secs(8)),
            "an idle connection outlived header_timeout"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    let tls_closed = loop {
        if let Ok(Some(_)) = tls.try_wait() {
            break true;
        }
        if Instant::now() > deadline {
            let _ = tls.kill();
            let _ = tls.wait();
            break false;
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert!(tls_closed, "an idle TLS connection outlived header_timeout");
    let (status, text) = env.curl(&[], "/api/v1/health");
    assert_eq!(status, 200, "{text}");
    // Slowloris: a head trickled byte by byte is cut at the same deadline and audited.
    let mut s = TcpStream::connect(env.http).unwrap();
    let started = Instant::now();
    let mut cut = false;
    for b in b"GET /api/v1/health HTTP/1.1\r\nHost: api.example\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).is_err() || started.elapsed() > Duration::from_secs(8) {
            cut = true;
            break;
        }
        thread::sleep(Duration::from_millis(300));
    }
    assert!(
        cut || closed_within(&mut s, Duration::from_secs(4)),
        "slowloris head was never cut"
    );
    env.assert_audited("header_timeout", 408);
}

#[test]
fn framing_refusals_are_audited_and_close_the_connection() {
    let env = Env::start(|c| c);
    let cases: [(&[u8], u16, &str); 9] = [
        // Refused by the HTTP parser itself: no JSON body, but an audit line.
        (b"POST /api/v1/open-items HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400, "bad_transfer_encoding"),
        (b"POST /api/v1/open-items HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "bad_content_length"),
        (b"GET /api/v1/health HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n", 400, "bad_header"),
        (b"POST /api/v1/open-items HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", 431, "bad_content_length"),
        (b"POST /api/v1/open-items HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, "bad_header"),
        // Refused by the gateway with a JSON reason.
        (b"POST /api/v1/open-items HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400, "bad_content_length"),
        (b"POST /api/v1/open-items HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, "bad_transfer_encoding"),
        // CL.TE and TE.CL: the smuggled request must never reach the upstream.
        (b"POST /api/v1/open-items HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/v1/smuggled-clte HTTP/1.1\r\nX: x", 400, "ambiguous_framing"),
        (b"POST /api/v1/open-items HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2c\r\nGET /api/v1/smuggled-tecl HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n", 400, "ambiguous_framing"),
    ];
    for (raw, status, reason) in cases {
        let mut s = TcpStream::connect(env.http).unwrap();
        s.write_all(raw).unwrap();
        // A follow-up request on the same connection is never answered: it is closed.
        let _ = s.write_all(b"GET /api/v1/smuggled-follow-up HTTP/1.1\r\nHost: a\r\n\r\n");
        let resp = read_until_close(&mut s, Duration::from_secs(5));
        assert_eq!(
            status_of(&resp),
            status,
            "{} -> {resp}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(
            resp.matches("HTTP/1.1 ").count(),
            1,
            "more than one response on a connection with bad framing: {resp}"
        );
        env.assert_audited(reason, u64::from(status));
    }
    let paths = env.upstream_paths();
    assert!(!paths.iter().any(|p| p.contains("smuggled")), "{paths:?}");
}

#[test]
fn host_and_target_tricks_are_refused() {
    let env = Env::start(|c| c);
    for host in ["a b", "evil.example/x?y", "a@evil.example"] {
        let req =
            format!("GET /api/v1/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let resp = env.raw(req.as_bytes());
        assert_eq!(status_of(&resp), 400, "{host}: {resp}");
        assert!(resp.contains("bad_host"), "{resp}");
    }
    let resp = env.raw(b"GET ftp://api.example/api/v1/health HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(resp.contains("bad_request_target"), "{resp}");
    // `Connection: host` does not strip Host from what the upstream gets.
    let resp = env.raw(
        b"GET /api/v1/health HTTP/1.1\r\nHost: api.example\r\nConnection: close, host\r\n\r\n",
    );
    assert_eq!(status_of(&resp), 200, "{resp}");
    let last = env
        .seen
        .lock()
        .unwrap()
        .heads
        .last()
        .cloned()
        .unwrap_or_default();
    assert!(
        last.to_ascii_lowercase().contains("host: api.example"),
        "{last}"
    );
    // HTTP/2: a Host that disagrees with :authority, and user info in :authority.
    let mut s = TcpStream::connect(env.http).unwrap();
    let mut out = h2::PREFACE.to_vec();
    out.extend(h2::settings(&[]));
    out.extend(h2::get(
        1,
        "/api/v1/health",
        &[("host", "internal.example")],
    ));
    s.write_all(&out).unwrap();
    env.assert_audited("host_mismatch", 400);
    let mut s2 = TcpStream::connect(env.http).unwrap();
    let mut out = h2::PREFACE.to_vec();
    out.extend(h2::settings(&[]));
    out.extend(h2::frame(
        1,
        0x5,
        1,
        &h2::block(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "u:p@api.example"),
            (":path", "/api/v1/health"),
        ]),
    ));
    s2.write_all(&out).unwrap();
    thread::sleep(Duration::from_millis(500));
    drop((s, s2));
    env.assert_audited("bad_host", 400);
    assert_eq!(
        env.upstream_paths()
            .iter()
            .filter(|p| p.contains("/api/v1/health"))
            .count(),
        1,
        "an HTTP/2 request with a bad authority reached the upstream: {:?}",
        env.upstream_paths()
    );
}

#[test]
fn stalled_http2_streams_only_hold_their_own_share() {
    let env = Env::start(|c| {
        c.set("listener.max_requests_in_flight", 64)
            .set("listener.max_requests_in_flight_per_connection", 16)
            .set("listener.max_requests_in_flight_per_client", 32)
            .set("listener.send_timeout", "3s")
    });
    // Four attacker connections from 127.0.0.2, each with a flow-control window of zero and
    // 64 streams asking for a 404 whose body can never be sent.
    let mut attackers: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = connect_from(Ipv4Addr::new(127, 0, 0, 2), env.http);
            let mut out = h2::PREFACE.to_vec();
            out.extend(h2::settings(&[(0x4, 0)]));
            out.extend(h2::settings_ack());
            for i in 0..64u32 {
                out.extend(h2::get(1 + 2 * i, "/api/v1/nope", &[]));
            }
            s.write_all(&out).unwrap();
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    // The legitimate client is served every time.
    let mut codes = Vec::new();
    for _ in 0..40 {
        codes.push(env.curl(&[], "/api/v1/health").0);
    }
    assert!(
        codes.iter().all(|c| *c == 200),
        "legitimate client refused: {codes:?}"
    );
    // The stalled connections are closed after send_timeout.
    for s in &mut attackers {
        assert!(
            closed_within(s, Duration::from_secs(12)),
            "a stalled connection stayed open"
        );
    }
    let (status, _) = env.curl(&[], "/api/v1/health");
    assert_eq!(status, 200);
}

#[test]
fn http2_floods_end_the_connection_not_the_gateway() {
    let mut env = Env::start(|c| c);
    // Rapid reset: streams opened and cancelled at once.
    let (mut s, mut out) = h2_conn(env.http);
    for i in 0..2000u32 {
        out.extend(h2::get(1 + 2 * i, "/api/v1/health", &[]));
        out.extend(h2::rst(1 + 2 * i));
    }
    let _ = s.write_all(&out);
    assert!(
        closed_within(&mut s, Duration::from_secs(10)),
        "rapid reset: connection kept"
    );
    // CONTINUATION flood: a header block that never ends.
    let (mut s, mut out) = h2_conn(env.http);
    out.extend(h2::frame(
        1,
        0x1,
        1,
        &h2::block(&[(":method", "GET"), (":scheme", "http"), (":path", "/")]),
    ));
    let filler = h2::block(&[("x-filler", &"a".repeat(1000))]);
    let _ = s.write_all(&out);
    for _ in 0..2000 {
        if s.write_all(&h2::frame(9, 0, 1, &filler)).is_err() {
            break;
        }
    }
    assert!(
        closed_within(&mut s, Duration::from_secs(10)),
        "CONTINUATION flood: connection kept"
    );
    // HPACK bomb: one header block far over the header list limit.
    let (mut s, mut out) = h2_conn(env.http);
    let big: Vec<(String, String)> = (0..400)
        .map(|i| (format!("x-h{i}"), "b".repeat(200)))
        .collect();
    let fields: Vec<(&str, &str)> = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/api/v1/health"),
        (":authority", "a"),
    ]
    .into_iter()
    .chain(big.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    .collect();
    let block = h2::block(&fields);
    // Split over frames of at most 16 KiB.
    let chunks: Vec<&[u8]> = block.chunks(16_000).collect();
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let kind = if i == 0 { 1 } else { 9 };
        let flags = if last { 0x4 } else { 0 } | if i == 0 { 0x1 } else { 0 };
        out.extend(h2::frame(kind, flags, 1, c));
    }
    let _ = s.write_all(&out);
    let answer = read_until_close(&mut s, Duration::from_secs(3));
    drop(answer);
    assert!(
        !env.upstream_paths().iter().any(|p| p == "/api/v1/health"),
        "an over-limit header block was forwarded"
    );
    assert!(env.d.alive(), "vigild died: {}", env.d.log());
    let (status, text) = env.curl(&[], "/api/v1/health");
    assert_eq!(status, 200, "{text}");
}

#[test]
fn slow_posts_are_cut_but_a_missing_token_is_answered_at_once() {
    let env = Env::start(|c| c.set("listener.request_timeout", "3s"));
    let head = |path: &str, len: u64| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: api.example\r\nContent-Type: application/json\r\n\
             Content-Length: {len}\r\n\r\n"
        )
    };
    // No token: answered before any body byte.
    let mut s = TcpStream::connect(env.http).unwrap();
    s.write_all(head("/api/v1/items", 100).as_bytes()).unwrap();
    let resp = read_until_close(&mut s, Duration::from_secs(2));
    assert_eq!(status_of(&resp), 401, "{resp}");
    // An open operation whose body trickles in: 408 at request_timeout.
    let mut s = TcpStream::connect(env.http).unwrap();
    s.write_all(head("/api/v1/open-items", 100).as_bytes())
        .unwrap();
    let started = Instant::now();
    let mut resp = String::new();
    while started.elapsed() < Duration::from_secs(8) {
        if s.write_all(b" ").is_err() {
            break;
        }
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 2048];
        if let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            resp.push_str(&String::from_utf8_lossy(&buf[..n]));
            break;
        }
    }
    assert_eq!(status_of(&resp), 408, "{resp}");
    assert!(resp.contains("request_timeout"), "{resp}");
    env.assert_audited("request_timeout", 408);
}
