//! Fetching a JWKS over HTTPS: one GET per fetch on a fresh connection (fetches are minutes
//! apart, so a kept-alive connection would only be a socket to babysit).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt as _, Empty, LengthLimitError, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

use crate::MAX_JWKS_BYTES;
use crate::error::JwksError;

/// The CA bundle used when the configuration names none (Debian's ca-certificates).
pub(crate) const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A parsed https:// URL with the TLS client configuration to reach it.
pub(crate) struct HttpsSource {
    url: String,
    /// Host name or IP address, without the brackets of an IPv6 literal.
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority.
    authority: String,
    path: String,
    server_name: ServerName<'static>,
    tls: Arc<ClientConfig>,
}

/// A successful fetch.
pub(crate) struct Fetched {
    pub(crate) body: Bytes,
    /// Cache-Control max-age, when the server sent one.
    pub(crate) max_age: Option<Duration>,
}

impl HttpsSource {
    /// Parses `url` (https only, no credentials) and loads the CA roots: from `ca_file` (PEM) or
    /// else the system bundle.
    pub(crate) fn new(url: &str, ca_file: Option<&Path>) -> Result<HttpsSource, JwksError> {
        let bad = |reason: &str| JwksError::Url {
            reason: format!("{url:?}: {reason}"),
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("not a valid URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad(
                "must start with https:// (keys are never fetched in the clear)",
            ));
        }
        let auth = uri.authority().ok_or_else(|| bad("no host"))?;
        if auth.as_str().contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let host = auth
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let server_name = ServerName::try_from(host.clone()).map_err(|_| bad("invalid host"))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let roots = match ca_file {
            Some(path) => roots_from(path, false)?,
            None => roots_from(Path::new(SYSTEM_CA_BUNDLE), true)?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| JwksError::Tls {
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpsSource {
            url: url.to_owned(),
            port: auth.port_u16().unwrap_or(443),
            authority: auth.as_str().to_owned(),
            host,
            path,
            server_name,
            tls: Arc::new(tls),
        })
    }

    /// GETs the document: status 200 and at most 1 MiB, all within `timeout`.
    pub(crate) async fn fetch(&self, timeout: Duration) -> Result<Fetched, JwksError> {
        match tokio::time::timeout(timeout, self.fetch_inner()).await {
            Ok(r) => r,
            Err(_) => Err(JwksError::Fetch {
                reason: format!("{}: no complete answer within {timeout:?}", self.url),
            }),
        }
    }

    async fn fetch_inner(&self) -> Result<Fetched, JwksError> {
        let fetch_err = |what: &str, e: &dyn std::fmt::Display| JwksError::Fetch {
            reason: format!("{}: {what}: {e}", self.url),
        };
        let tcp = self.connect().await?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls));
        let tls = connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| JwksError::Tls {
                reason: format!("{}: {e}", self.url),
            })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
                .await
                .map_err(|e| fetch_err("HTTP", &e))?;
        let request = http::Request::get(self.path.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "vigil-identity")
            .body(Empty::new())
            .map_err(|e| fetch_err("request", &e))?;
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| fetch_err("HTTP", &e))?;
            if response.status() != http::StatusCode::OK {
                return Err(JwksError::Fetch {
                    reason: format!(
                        "{} answered HTTP {}, expected 200",
                        self.url,
                        response.status()
                    ),
                });
            }
            let declared = response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
                return Err(JwksError::TooLarge);
            }
            let max_age = response
                .headers()
                .get_all(header::CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(max_age);
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<LengthLimitError>().is_some() {
                        JwksError::TooLarge
                    } else {
                        fetch_err("reading the body", &e)
                    }
                })?
                .to_bytes();
            Ok(Fetched { body, max_age })
        };
        // The connection future does the I/O for the exchange, so both are polled together; it
        // may finish first (the server closed after answering) while the body is still queued.
        tokio::pin!(conn, exchange);
        let mut conn_done = false;
        loop {
            tokio::select! {
                r = &mut exchange => return r,
                c = &mut conn, if !conn_done => {
                    c.map_err(|e| fetch_err("HTTP", &e))?;
                    conn_done = true;
                }
            }
        }
    }

    async fn connect(&self) -> Result<TcpStream, JwksError> {
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| JwksError::Fetch {
                reason: format!("{}: resolving {}: {e}", self.url, self.host),
            })?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    // One small request; do not let Nagle hold it back.
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        Err(JwksError::Fetch {
            reason: format!(
                "{}: cannot connect ({})",
                self.url,
                last.as_deref().unwrap_or("no address")
            ),
        })
    }
}

/// CA roots from a PEM file. The system bundle may hold certificates webpki cannot parse; those
/// are skipped there, while a configured CA file must be entirely usable.
fn roots_from(path: &Path, lenient: bool) -> Result<RootCertStore, JwksError> {
    let pem = vigil_files::read(path, vigil_files::FileKind::CaCertificates)?;
    let tls_err = |what: String| JwksError::Tls {
        reason: format!("{}: {what}", path.display()),
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(format!("not a PEM certificate file: {e}")))?;
    let mut roots = RootCertStore::empty();
    if lenient {
        roots.add_parsable_certificates(certs);
    } else {
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| tls_err(format!("unusable CA certificate: {e}")))?;
        }
    }
    if roots.is_empty() {
        return Err(tls_err("no CA certificate in the file".into()));
    }
    Ok(roots)
}

/// The `max-age` of a Cache-Control header value, if any.
pub(crate) fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, arg) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        arg.trim()
            .trim_matches('"')
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(max_age("max-age=600"), Some(Duration::from_secs(600)));
        assert_eq!(
            max_age("public, Max-Age = \"90\", must-revalidate"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            max_age("s-maxage=5, max-age=7"),
            Some(Duration::from_secs(7))
        );
        assert_eq!(max_age("no-store"), None);
        assert_eq!(max_age("max-age=-1"), None);
        assert_eq!(max_age(""), None);
    }

    #[test]
    fn urls() {
        let ca = Path::new("/nonexistent/ca.pem");
        for bad in [
            "http://idp/jwks",
            "ftp://x/",
            "https://user:pw@idp/jwks",
            "not a url",
            "/jwks",
        ] {
            assert!(
                matches!(HttpsSource::new(bad, Some(ca)), Err(JwksError::Url { .. })),
                "{bad}"
            );
        }
        // A good URL gets as far as the CA file, which names its path.
        let e = HttpsSource::new("https://[::1]:8443/.well-known/jwks.json?x=1", Some(ca)).err();
        assert!(
            matches!(&e, Some(JwksError::Unreadable { source }) if source.path() == ca),
            "{e:?}"
        );
    }
}
