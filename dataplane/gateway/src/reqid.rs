//! Request ids: UUIDv7-shaped (time-ordered, 128 bits), unique across boxes without
//! coordination because 30 bits come from a random per-process node id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};

/// Generates request ids.
#[derive(Debug)]
pub struct IdGen {
    node: u64,
    counter: AtomicU64,
}

impl IdGen {
    /// A generator with a fresh random node id and counter start.
    pub fn new() -> Self {
        let mut seed = [0u8; 16];
        // If the OS RNG fails the id stays unique per box through time and counter; it only
        // loses cross-box uniqueness, so fall back to time-derived bits rather than fail.
        if SystemRandom::new().fill(&mut seed).is_err() {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            seed = nanos.to_le_bytes();
        }
        let [a, b] = [&seed[..8], &seed[8..]].map(|s| {
            let mut w = [0u8; 8];
            w.copy_from_slice(s);
            u64::from_le_bytes(w)
        });
        Self {
            node: a & 0x3fff_ffff,
            counter: AtomicU64::new(b),
        }
    }

    /// The next id, formatted as `xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx`.
    pub fn next_id(&self) -> String {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64
            & 0xffff_ffff_ffff;
        let c = self.counter.fetch_add(1, Ordering::Relaxed);
        let hi = (ms << 16) | 0x7000 | ((c >> 32) & 0x0fff);
        let lo = (0b10 << 62) | (self.node << 32) | (c & 0xffff_ffff);
        text(hi, lo)
    }
}

/// `{:08x}-{:04x}-{:04x}-{:04x}-{:012x}` of hi:lo, written digit by digit: one id is made per
/// request, and the formatting machinery costs more than the digits.
fn text(hi: u64, lo: u64) -> String {
    let mut out = String::with_capacity(36);
    for (i, (v, digits)) in [
        (hi >> 32, 8),
        (hi >> 16, 4),
        (hi, 4),
        (lo >> 48, 4),
        (lo, 12),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push('-');
        }
        crate::hex::push(&mut out, v, digits);
    }
    out
}

impl Default for IdGen {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_text_is_the_formatted_words() {
        for (hi, lo) in [
            (0, 0),
            (u64::MAX, u64::MAX),
            (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210),
        ] {
            let formatted = format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                hi >> 32,
                (hi >> 16) & 0xffff,
                hi & 0xffff,
                lo >> 48,
                lo & 0xffff_ffff_ffff
            );
            assert_eq!(text(hi, lo), formatted);
        }
    }

    #[test]
    fn ids_are_uuid_v7_shaped_and_distinct_across_generators() {
        let (a, b) = (IdGen::new(), IdGen::new());
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            for id in [a.next_id(), b.next_id()] {
                assert_eq!(id.len(), 36);
                assert_eq!(id.as_bytes()[14], b'7', "version nibble in {id}");
                assert!(
                    matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
                    "{id}"
                );
                assert!(seen.insert(id));
            }
        }
    }
}
