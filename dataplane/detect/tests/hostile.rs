//! No input makes the detector panic: hostile byte strings through every decoder and detector.
//!
//! `VIGIL_DETECT_FUZZ_ROUNDS` runs a longer campaign and `VIGIL_DETECT_FUZZ_SEED` another sequence.

mod common;

use common::{Rng, hostile_value};
use vigil_detect::{Config, Detector, Limits, detect};

#[test]
fn hostile_bytes_never_panic() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let mut rng = Rng(env("VIGIL_DETECT_FUZZ_SEED").map_or(0x9E37_79B9_7F4A_7C15, |s| s | 1));
    // Tiny limits put the head/tail split and the round cap in play on short values too.
    let small = Detector::new(Config {
        limits: Limits {
            max_len: 64,
            max_rounds: 5,
        },
        ..Config::default()
    });
    for _ in 0..env("VIGIL_DETECT_FUZZ_ROUNDS").unwrap_or(20_000) {
        let v = hostile_value(&mut rng, 24, true);
        let cut = (rng.next() as usize) % (v.len() + 1);
        let _ = detect(&v);
        let _ = detect(&v[..cut]);
        let _ = small.detect(&v);
    }
}
