//! The gateway's part of `status` beyond its addresses: the policy it enforces with, the key it
//! serves from, where it audits, and what keeps it from being ready. Read from the config in
//! force and the files it names; nothing here blocks on the network or the TPM.

use std::path::Path;

use vigil_control::reply::{AuditStatus, GatewayDetails, KeyStatus, PolicyStatus};
use vigil_gateway::{
    Gateway,
    config::{AuditSink, GatewayConfig, PolicyMode, SyslogTransport},
};

use super::to_control;

/// `keys_dir`: the daemon's `[keys]` directory, when the key comes from one.
pub(crate) fn gateway_details(gw: &Gateway, keys_dir: Option<&Path>) -> GatewayDetails {
    let cfg = gw.config();
    GatewayDetails {
        policy: policy(&cfg),
        key: Some(KeyStatus {
            cert_not_after_unix: gw.cert_not_after(),
            ..key(&cfg, keys_dir)
        }),
        audit: Some(audit(&cfg)),
        not_ready: gw.not_ready(),
        unhealthy_upstreams: gw
            .upstream_health()
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| name)
            .collect(),
        patches: Some(patch_count(&gw.patches())),
    }
}

fn patch_count(set: &vigil_patch::PatchSet) -> vigil_control::reply::PatchCount {
    let now = vigil_patch::rule::unix_now();
    let mut c = vigil_control::reply::PatchCount::default();
    for (p, _) in set.patches() {
        c.total += 1;
        c.expired += usize::from(p.expires_unix <= now);
    }
    c
}

fn policy(cfg: &GatewayConfig) -> Option<PolicyStatus> {
    let p = cfg.policy.as_ref()?;
    let sha256 = vigil_files::read(&p.file, vigil_files::FileKind::PolicyDocument)
        .ok()
        .map(|bytes| hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()));
    Some(PolicyStatus {
        file: p.file.clone(),
        mode: match p.mode {
            PolicyMode::Enforce => "enforce",
            PolicyMode::LogOnly => "log-only",
        }
        .to_owned(),
        sha256,
    })
}

fn key(cfg: &GatewayConfig, keys_dir: Option<&Path>) -> KeyStatus {
    let Some(dir) = keys_dir else {
        return KeyStatus {
            mode: Some(to_control(vigil_hw::keys::KeyMode::File)),
            source: cfg.tls.cert.clone(),
            spki_sha256: None,
            subject: None,
            cert_not_after_unix: None,
        };
    };
    let info = vigil_hw::keys::show(dir).ok();
    KeyStatus {
        mode: info.as_ref().map(|i| to_control(i.mode)),
        source: dir.to_path_buf(),
        spki_sha256: info.as_ref().map(|i| i.spki_sha256.clone()),
        subject: info.and_then(|i| i.subject),
        cert_not_after_unix: None,
    }
}

fn audit(cfg: &GatewayConfig) -> AuditStatus {
    let a = &cfg.audit;
    let (sink, destination) = match a.sink {
        AuditSink::Stdout => ("stdout", None),
        AuditSink::File => ("file", Some(a.path.display().to_string())),
        AuditSink::Syslog => {
            let scheme = match a.syslog_transport {
                SyslogTransport::Udp => "udp",
                SyslogTransport::Tcp => "tcp",
            };
            ("syslog", Some(format!("{scheme}://{}", a.syslog_address)))
        }
    };
    AuditStatus {
        sink: sink.to_owned(),
        destination,
        headers: a.headers.clone(),
        redact: a.redact.clone(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_print_as_lowercase_hex() {
        assert_eq!(hex(&[0x00, 0xab, 0x10]), "00ab10");
    }
}
