//! TLS 1.3 handshake rate with file, TPM-sealed and TPM-resident keys, against openssl
//! s_server with the file key as the reference peer, plus signature latencies. Starts its own
//! swtpm; writes perf/results/hw.json and prints a table.
//!
//! Usage: `vigil-perf-hw --help`.

mod bench;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use vigil_hw::keys::{self, CERT_FILE, KEY_FILE, KeyMode};
use vigil_testkit::machine::{nproc, write_report};
use vigil_testkit::swtpm::Swtpm;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-perf-hw",
    about = "TLS 1.3 handshake rate and signature latency by key mode (file, TPM-sealed, \
             TPM-resident) against openssl s_server, on a private swtpm"
)]
struct Args {
    /// Most handshakes per key mode.
    #[arg(long, default_value_t = 1000)]
    handshakes: u64,
    /// Most seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Signatures timed per key mode.
    #[arg(long, default_value_t = 500)]
    signatures: usize,
    /// Where the JSON goes.
    #[arg(long, default_value_os_t = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/hw.json"))]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let limit = Duration::from_secs(args.seconds);
    let tpm = Swtpm::start()?;
    let tcti = tpm.tcti();
    let work = tempfile::tempdir()?;

    let mut runs = Vec::new();
    let mut latencies = Vec::new();
    let mut file_key = None;
    for mode in [KeyMode::File, KeyMode::TpmSealed, KeyMode::TpmResident] {
        let name = mode_name(mode);
        let dir = work.path().join(name);
        keys::init(mode, &dir, &tcti, bench::NAME).with_context(|| format!("init {name} key"))?;
        let provider = keys::provider(&dir, &tcti)?;
        let ck = provider
            .load()
            .with_context(|| format!("load {name} key"))?;
        let trust = CertificateDer::from_pem_file(dir.join(CERT_FILE))?;
        let client = bench::client_config(trust)?;
        eprintln!("{name}: handshakes...");
        runs.push(bench::rustls_handshakes(
            name,
            std::sync::Arc::clone(&ck),
            &client,
            args.handshakes,
            limit,
        )?);
        let sign_what = format!("ecdsa-p256 sign, {name} key");
        latencies.push(bench::latency(&sign_what, args.signatures, limit, || {
            bench::sign_once(&ck, b"bench")
        })?);
        if mode == KeyMode::TpmSealed {
            // Unseal cost is paid at start and at each rotation, not per handshake.
            latencies.push(bench::latency("load (unseal)", 20, limit, || {
                provider.load().map(|_| ()).map_err(Into::into)
            })?);
        }
        if mode == KeyMode::File {
            file_key = Some((dir.join(CERT_FILE), dir.join(KEY_FILE), client));
        }
    }
    if let Some((cert, key, client)) = &file_key {
        eprintln!("openssl s_server: handshakes...");
        runs.push(bench::openssl_handshakes(
            cert,
            key,
            client,
            args.handshakes,
            limit,
        )?);
    }
    drop(tpm);

    let rate = |server: &str, mode: &str| {
        runs.iter()
            .find(|r| r.server == server && r.key_mode == mode)
            .map_or(0.0, |r| r.per_second)
    };
    let file = rate("vigil-rustls", "file");
    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
    let ratios = serde_json::json!({
        "sealed_vs_file": ratio(rate("vigil-rustls", "tpm-sealed"), file),
        "resident_vs_file": ratio(rate("vigil-rustls", "tpm-resident"), file),
        "vigil_file_vs_openssl": ratio(file, rate("openssl-s_server", "file")),
    });
    let report = serde_json::json!({
        "benchmark": "hw",
        "what": "TLS 1.3 full handshakes/s over loopback (rustls client, no resumption) by key \
            mode; openssl s_server with the file key is the reference peer; the TPM is swtpm",
        "host": vigil_hw::HostFacts::collect(&vigil_hw::thermal::SysfsRoot::new("/sys")).cpu,
        "logical_cpus": nproc(),
        "handshakes": runs,
        "latency": latencies,
        "ratios": ratios,
    });
    write_report(&args.out, &report)?;

    println!(
        "{:<18} {:<13} {:>10} {:>8} {:>12}",
        "server", "key", "handshakes", "seconds", "per second"
    );
    for r in &runs {
        println!(
            "{:<18} {:<13} {:>10} {:>8.2} {:>12.0}",
            r.server, r.key_mode, r.handshakes, r.seconds, r.per_second
        );
    }
    println!();
    println!(
        "{:<34} {:>8} {:>9} {:>9}",
        "latency", "samples", "p50 ms", "p99 ms"
    );
    for l in &latencies {
        println!(
            "{:<34} {:>8} {:>9.3} {:>9.3}",
            l.what, l.samples, l.p50_ms, l.p99_ms
        );
    }
    println!();
    println!("ratios: {ratios}");
    println!("wrote {}", args.out.display());
    Ok(())
}

fn mode_name(mode: KeyMode) -> &'static str {
    match mode {
        KeyMode::File => "file",
        KeyMode::TpmSealed => "tpm-sealed",
        KeyMode::TpmResident => "tpm-resident",
    }
}
