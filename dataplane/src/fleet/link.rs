//! The connection to the fleet's Redis: address, ACL user, password (from a file), TLS.
//!
//! `fleet.redis` is `host:port` or `redis://host:port` for plain TCP, `rediss://host:port` for
//! TLS (server certificate checked against `fleet.ca_file`, or the system's CAs without it;
//! `fleet.client_cert` + `fleet.client_key` when Redis asks for client certificates). A password
//! is never written in the config: `fleet.password_file` holds it, and a URL carrying one is
//! refused. The password never appears in errors, logs or `status`.

use std::{path::Path, time::Duration};

use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, IntoConnectionInfo, TlsCertificates,
    aio::{MultiplexedConnection, PubSub},
};
use vigil_files::FileKind;

use super::FleetConfig;

/// A connection that takes longer than this to open (TCP, TLS, AUTH) fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What opens connections to the fleet's Redis. Cheap to clone.
#[derive(Clone)]
pub struct Link {
    client: Client,
    /// `redis://host:port` or `rediss://host:port`, for logs and status (never a secret).
    shown: String,
    tls: bool,
    user: Option<String>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("redis", &self.shown)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// `fleet.redis` split into scheme and `host:port`, refusing what the link cannot use.
pub fn parse_address(redis: &str) -> Result<(bool, &str), String> {
    let (tls, rest) = if let Some(r) = redis.strip_prefix("rediss://") {
        (true, r)
    } else if let Some(r) = redis.strip_prefix("redis://") {
        (false, r)
    } else if redis.contains("://") {
        return Err(format!(
            "{redis:?}: the scheme must be redis:// (plain) or rediss:// (TLS)"
        ));
    } else {
        (false, redis)
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err(
            "a password or user in the address would end up in logs and status: set \
                    fleet.username and fleet.password_file instead"
                .into(),
        );
    }
    if rest.contains('/') || rest.contains('?') {
        return Err(format!(
            "{redis:?}: only host:port may follow the scheme (the fleet uses database 0)"
        ));
    }
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(format!(
            "{redis:?}: must be host:port, redis://host:port or rediss://host:port"
        ));
    };
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!(
            "{redis:?}: must be host:port with a port from 1 to 65535, e.g. 127.0.0.1:6379"
        ));
    }
    Ok((tls, rest))
}

fn read_file(path: &Path, kind: FileKind, key: &str) -> Result<Vec<u8>, (String, String)> {
    vigil_files::read(path, kind).map_err(|e| (key.to_owned(), e.to_string()))
}

impl Link {
    /// Reads the password and TLS files and builds the client; the error names the key.
    pub fn from_config(cfg: &FleetConfig) -> Result<Link, (String, String)> {
        let key = |k: &str| format!("fleet.{k}");
        let (tls, hostport) = parse_address(&cfg.redis).map_err(|e| (key("redis"), e))?;
        let shown = format!("{}://{hostport}", if tls { "rediss" } else { "redis" });
        let mut info = shown
            .as_str()
            .into_connection_info()
            .map_err(|e| (key("redis"), e.to_string()))?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &cfg.username {
            if user.is_empty() || user.contains(char::is_whitespace) {
                return Err((
                    key("username"),
                    "must be an ACL user name without spaces".into(),
                ));
            }
            settings = settings.set_username(user);
        }
        if let Some(path) = &cfg.password_file {
            let raw = read_file(path, FileKind::Password, "fleet.password_file")?;
            let text = String::from_utf8(raw).map_err(|_| {
                (
                    key("password_file"),
                    format!("{} is not UTF-8 text", path.display()),
                )
            })?;
            // The first line, so `echo secret > file` works; the rest of the file is ignored.
            let pw = text.lines().next().unwrap_or("").trim_end_matches('\r');
            if pw.is_empty() {
                return Err((
                    key("password_file"),
                    format!(
                        "{} is empty: write the password of the Redis ACL user on its first line",
                        path.display()
                    ),
                ));
            }
            settings = settings.set_password(pw);
        } else if cfg.username.is_some() {
            return Err((
                key("password_file"),
                "fleet.username needs fleet.password_file (the user's password, on its first line)"
                    .into(),
            ));
        }
        info = info.set_redis_settings(settings);
        let tls_files = cfg.ca_file.is_some() || cfg.client_cert.is_some();
        if !tls && (tls_files || cfg.client_key.is_some()) {
            return Err((
                key("redis"),
                "fleet.ca_file, client_cert and client_key need a rediss:// address (TLS)".into(),
            ));
        }
        let client = if tls {
            let root_cert = match &cfg.ca_file {
                Some(p) => Some(read_file(p, FileKind::CaCertificates, "fleet.ca_file")?),
                None => None,
            };
            let client_tls = match (&cfg.client_cert, &cfg.client_key) {
                (Some(c), Some(k)) => Some(ClientTlsConfig {
                    client_cert: read_file(c, FileKind::Certificate, "fleet.client_cert")?,
                    client_key: read_file(k, FileKind::PrivateKey, "fleet.client_key")?,
                }),
                (None, None) => None,
                _ => {
                    return Err((
                        key("client_cert"),
                        "fleet.client_cert and fleet.client_key go together".into(),
                    ));
                }
            };
            Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls,
                    root_cert,
                },
            )
            .map_err(|e| (key("ca_file"), format!("TLS settings refused: {e}")))?
        } else {
            Client::open(info).map_err(|e| (key("redis"), e.to_string()))?
        };
        Ok(Link {
            client,
            shown,
            tls,
            user: cfg.username.clone(),
        })
    }

    /// A link to `address` without credentials (TLS with the system's CAs for `rediss://`),
    /// for tools and benchmarks that share vigild's store code.
    pub fn open(address: &str) -> Result<Link, String> {
        let (tls, hostport) = parse_address(address)?;
        let shown = format!("{}://{hostport}", if tls { "rediss" } else { "redis" });
        let client = Client::open(shown.as_str()).map_err(|e| e.to_string())?;
        Ok(Link {
            client,
            shown,
            tls,
            user: None,
        })
    }

    /// `redis://host:port` or `rediss://host:port`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub fn tls(&self) -> bool {
        self.tls
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// A pipelined connection: concurrent commands share it, replies come back in order.
    /// Commands carry no deadline of their own: callers bound them.
    pub async fn multiplexed(&self) -> redis::RedisResult<MultiplexedConnection> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        self.client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
    }

    /// A connection in subscriber mode.
    pub async fn pubsub(&self) -> redis::RedisResult<PubSub> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub()).await {
            Ok(r) => r,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting took more than {CONNECT_TIMEOUT:?}"),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn addresses_take_three_spellings_and_refuse_secrets() {
        assert_eq!(
            parse_address("127.0.0.1:6379").unwrap(),
            (false, "127.0.0.1:6379")
        );
        assert_eq!(
            parse_address("redis://r.lan:6379").unwrap(),
            (false, "r.lan:6379")
        );
        assert_eq!(
            parse_address("rediss://r.lan:6380/").unwrap(),
            (true, "r.lan:6380")
        );
        let e = parse_address("redis://box:hunter2@r.lan:6379").unwrap_err();
        assert!(e.contains("password_file") && !e.contains("hunter2"), "{e}");
        assert!(parse_address("http://r:1").unwrap_err().contains("scheme"));
        assert!(
            parse_address("redis://r:1/3")
                .unwrap_err()
                .contains("database 0")
        );
        assert!(parse_address("r.lan").unwrap_err().contains("host:port"));
        assert!(parse_address("r.lan:0").unwrap_err().contains("1 to 65535"));
    }
}
