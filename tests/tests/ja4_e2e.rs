//! JA4 TLS fingerprints through vigild: real clients (curl, openssl s_client, a rustls client)
//! connect, and each audit line carries the fingerprint computed from the ClientHello bytes as
//! they arrived, checked against the fingerprints published for those clients; a rate limit
//! keyed on `ja4` counts one client's connections together.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    thread::sleep,
    time::Duration,
};

use vigil_e2e::{curl, upstream::Upstream};
use vigil_patch::rule::{format_time, unix_now};
use vigil_testkit::{
    config::{RateLimit, table},
    pki::self_signed,
    ports::free_port,
    vigild::Vigild,
};

/// curl with OpenSSL 3 offering h2 and http/1.1, to a name: the fingerprint JA4 databases and
/// other JA4 implementations (an nginx module's test results, Zeek detection scripts, TLS
/// impersonation libraries) publish for curl.
const CURL_OPENSSL3: &str = "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6";
/// `openssl s_client` (OpenSSL 3) with SNI and no ALPN, as published in another JA4
/// implementation's test fixtures.
const OPENSSL3_S_CLIENT: &str = "t13d311000_e8f1e7e78f70_1f22a2ca17c4";
/// rustls 0.23 with ring offering http/1.1 (reqwest's default client), as published by
/// projects that fingerprint their own clients.
const RUSTLS_023_RING_H1: &str = "t13d1011h1_61a7ad8aa9b6_3fcd1a44f3e3";

fn audit_ja4(d: &Vigild, path: &str) -> Vec<String> {
    for _ in 0..50 {
        let text = std::fs::read_to_string(d.path("audit.log")).unwrap_or_default();
        let found: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["path"].as_str().is_some_and(|p| p.starts_with(path)))
            .filter_map(|l| l["ja4"].as_str().map(str::to_owned))
            .collect();
        if !found.is_empty() {
            return found;
        }
        sleep(Duration::from_millis(100));
    }
    panic!("no audit line with a ja4 for {path}");
}

fn curl_get(port: u16, ca: &Path, extra: &[&str], path: &str) -> u16 {
    let mut a: Vec<std::ffi::OsString> = vec![
        "--cacert".into(),
        ca.into(),
        "--resolve".into(),
        format!("localhost:{port}:127.0.0.1").into(),
    ];
    a.extend(extra.iter().map(Into::into));
    a.push(format!("https://localhost:{port}{path}").into());
    curl(None, &a).0
}

/// One GET by `openssl s_client` (no ALPN, SNI `localhost`); the response's status line.
fn openssl_get(port: u16, ca: &Path, path: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-servername", "localhost"])
        .arg("-CAfile")
        .arg(ca)
        .args(["-connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.as_bytes())
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    out.lines().next().unwrap_or_default().to_owned()
}

/// One GET by a rustls client (ALPN http/1.1, SNI `localhost`).
fn rustls_get(port: u16, ca: &Path, path: &str) {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls_pemfile_certs(&pem) {
        roots.add(cert).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "rustls: {out}");
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(Result::unwrap)
        .collect()
}

#[test]
fn each_client_gets_its_fingerprint_in_the_audit_line_and_rate_limits_can_key_on_it() {
    let up = Upstream::start().unwrap();
    let port = free_port().unwrap();
    let mut d = Vigild::new("ja4").unwrap();
    let cfg = d
        .gateway_config("127.0.0.1", port, up.url())
        .unwrap()
        .audit_file(&d.path("audit.log"))
        .rate_limit(RateLimit::new("per-fingerprint", "ja4", 1, 3))
        // A virtual patch on a fingerprint: openssl s_client may not reach /admin.
        .push(
            "patch",
            table([
                ("id", "no-scripted-admin".into()),
                (
                    "note",
                    "scripted clients stay out of the admin pages".into(),
                ),
                ("expires", format_time(unix_now() + 86400).into()),
                ("action", "block".into()),
                (
                    "when",
                    toml::Value::Array(vec![
                        toml::Value::Table(table([
                            ("field", "ja4".into()),
                            ("equals", OPENSSL3_S_CLIENT.into()),
                        ])),
                        toml::Value::Table(table([
                            ("field", "path".into()),
                            ("prefix", "/admin".into()),
                        ])),
                    ]),
                ),
            ]),
        );
    // The certificate names `localhost` too: the clients send it as SNI.
    self_signed(&["localhost", "127.0.0.1"])
        .unwrap()
        .write_in(d.dir())
        .unwrap();
    d.configure(cfg).unwrap();
    d.start().unwrap();
    let ca = d.ca();

    assert_eq!(curl_get(port, &ca, &[], "/curl-h2"), 200);
    assert_eq!(curl_get(port, &ca, &["--http1.1"], "/curl-h1"), 200);
    assert!(openssl_get(port, &ca, "/openssl").starts_with("HTTP/1.1 200"));
    rustls_get(port, &ca, "/rustls");

    let curl_h2 = &audit_ja4(&d, "/curl-h2")[0];
    let curl_h1 = &audit_ja4(&d, "/curl-h1")[0];
    let openssl = &audit_ja4(&d, "/openssl")[0];
    let rustls = &audit_ja4(&d, "/rustls")[0];
    println!("curl {curl_h2} / {curl_h1}\nopenssl s_client {openssl}\nrustls {rustls}");
    assert_eq!(curl_h2, CURL_OPENSSL3, "curl's published fingerprint");
    assert_eq!(
        openssl, OPENSSL3_S_CLIENT,
        "s_client's published fingerprint"
    );
    assert_eq!(rustls, RUSTLS_023_RING_H1, "rustls' published fingerprint");
    // curl --http1.1 offers only http/1.1: only the ALPN characters change.
    assert_eq!(curl_h1, &CURL_OPENSSL3.replace("h2_", "h1_"));

    // One bucket per fingerprint: curl's 4th request within the burst of 3 is refused, while
    // rustls (another fingerprint) still gets through.
    let codes: Vec<u16> = (0..3)
        .map(|i| curl_get(port, &ca, &[], &format!("/burst-{i}")))
        .collect();
    assert!(
        codes.contains(&429),
        "curl over its fingerprint's burst: {codes:?}"
    );
    rustls_get(port, &ca, "/rustls-after");

    // The patch: s_client is refused on /admin, curl is not.
    let status = openssl_get(port, &ca, "/admin/users");
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    let named = (0..50).any(|_| {
        let text = std::fs::read_to_string(d.path("audit.log")).unwrap_or_default();
        let found = text
            .lines()
            .any(|l| l.contains("/admin/users") && l.contains("no-scripted-admin"));
        if !found {
            sleep(Duration::from_millis(100));
        }
        found
    });
    assert!(named, "no audit line names the patch");
    assert_eq!(curl_get(port, &ca, &["--http1.1"], "/admin/users"), 200);

    // The busiest fingerprint: curl's h2 (its request, then three in a burst, one refused).
    let top = d.ctl_json(&["clients", "top", "--limit", "2"]).unwrap();
    let rows = top["clients"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{top}");
    assert_eq!(rows[0]["ja4"], CURL_OPENSSL3, "{top}");
    assert_eq!(rows[0]["requests"], 4, "{top}");
    assert!(rows[0]["rejected"].as_u64().unwrap() >= 1, "{top}");
    assert_eq!(
        top["tracked"], 4,
        "curl h2, curl h1, s_client, rustls: {top}"
    );
    let table = d.ctl(&["clients", "top"]).unwrap();
    assert!(
        table.contains("REQUESTS") && table.contains(RUSTLS_023_RING_H1),
        "{table}"
    );
}
