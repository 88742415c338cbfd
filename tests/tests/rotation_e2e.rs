//! `vigilctl keys rotate` under load: no request fails while the key changes, and new
//! handshakes get the new key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use vigil_e2e::upstream::Upstream;
use vigil_testkit::pki::self_signed;
use vigil_testkit::ports::free_port;
use vigil_testkit::vigild::Vigild;

fn curl_ok(port: u16, ca: &std::path::Path) -> bool {
    Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "--max-time", "3", "--cacert"])
        .arg(ca)
        .arg(format!("https://127.0.0.1:{port}/rotate"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn keys_rotate_under_load_loses_no_request() {
    let up = Upstream::start().unwrap();
    let port = free_port().unwrap();
    let mut d = Vigild::new("rotation").unwrap();
    d.configure(d.gateway_config("127.0.0.1", port, up.url()).unwrap())
        .unwrap();
    let old_cert = std::fs::read_to_string(d.ca()).unwrap();
    // The next key, made aside; clients trust both while the key changes.
    let next = self_signed(&["127.0.0.1"]).unwrap();
    let old = d.path("old.pem");
    std::fs::write(&old, &old_cert).unwrap();
    let both = d.path("both.pem");
    std::fs::write(&both, format!("{old_cert}{}", next.cert_pem)).unwrap();
    d.start().unwrap();

    let (stop, ok, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
    );
    let load: Vec<_> = (0..3)
        .map(|_| {
            let (stop, ok, failed, both) = (stop.clone(), ok.clone(), failed.clone(), both.clone());
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                // Bounded: at most 150 requests per thread, and 20 s.
                for _ in 0..150 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let counter = if curl_ok(port, &both) { &ok } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    // Swap the files in place, then rotate: new handshakes get the new key.
    let new_cert = next
        .write(&d.path("next-cert.pem"), &d.path("next-key.pem"))
        .unwrap();
    std::fs::copy(&new_cert.key, d.path("key.pem")).unwrap();
    std::fs::copy(&new_cert.cert, d.path("cert.pem")).unwrap();
    d.ctl(&["keys", "rotate"]).unwrap();
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok >= 10, "too little load to mean anything: {ok}");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during rotation",
        ok + failed
    );
    // New handshakes verify against the new certificate alone, and no longer against the old.
    assert!(
        curl_ok(port, &new_cert.cert),
        "new handshakes still get the old key"
    );
    assert!(
        !curl_ok(port, &old),
        "the old key is still served to new handshakes"
    );
}
