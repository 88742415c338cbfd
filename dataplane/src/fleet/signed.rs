//! Signed fleet messages: every event and every blocklist entry carries the Ed25519 signature of
//! the box that made it, and a box applies only what a box of `[fleet.boxes]` signed.
//!
//! On the wire (the channel and the blocklist hash alike) a message is
//! `{"signed": "<JSON text>", "sig": "<base64>"}`. The signature covers
//! `vigil-fleet-v1\n` followed by the exact bytes of `signed`, which holds the fleet's prefix
//! (a message of another fleet sharing the Redis is refused), the signing box, the time in
//! milliseconds, a random nonce and the event. Signing the text as sent means no
//! canonicalisation can differ between boxes.
//!
//! Events on the channel must be fresh: their time within `fleet.replay_window` of this box's
//! clock (either way), and their nonce not seen before within that window, so a captured event
//! published again is refused. Blocklist entries read at catch-up are state rather than news:
//! they need a valid signature from a trusted box and their own CIDR as field, not freshness.
//! Someone who can write to Redis can therefore delete entries or put back an entry a trusted
//! box once signed (until it expires), but never make a box block an address no trusted box
//! blocked.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use vigil_control::fleet_key::{PublicKey, SIGNATURE_LEN, SigningKey};

use super::Event;

/// Domain separation: a fleet signature can never be mistaken for any other signed text.
const CONTEXT: &[u8] = b"vigil-fleet-v1\n";
/// Larger messages are refused before any parsing.
pub const MAX_MESSAGE: usize = 8 << 10;
/// Nonces remembered at most; a trusted box would have to send this many events within two
/// replay windows to fill it, and past it fresh events are refused rather than replays let in.
const MAX_NONCES: usize = 100_000;

/// Why a message was not applied. `as_str` is the metric label and the log's `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not JSON, or over [`MAX_MESSAGE`].
    Malformed,
    /// JSON without a signature (e.g. a hand-written PUBLISH).
    Unsigned,
    /// Signed by a box `[fleet.boxes]` does not list.
    UnknownBox,
    /// The signature does not match the text and the box's key.
    BadSignature,
    /// Signed for another fleet prefix.
    WrongFleet,
    /// Time outside the replay window.
    Stale,
    /// Nonce already seen within the window.
    Replayed,
    /// A blocklist entry stored under a field other than its CIDR, or a removal in the hash.
    Misplaced,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::Malformed,
        Refusal::Unsigned,
        Refusal::UnknownBox,
        Refusal::BadSignature,
        Refusal::WrongFleet,
        Refusal::Stale,
        Refusal::Replayed,
        Refusal::Misplaced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Unsigned => "unsigned",
            Refusal::UnknownBox => "unknown_box",
            Refusal::BadSignature => "bad_signature",
            Refusal::WrongFleet => "wrong_fleet",
            Refusal::Stale => "stale",
            Refusal::Replayed => "replayed",
            Refusal::Misplaced => "misplaced",
        }
    }

    pub fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// The signed part of a message.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Signed {
    v: u8,
    fleet: String,
    #[serde(rename = "box")]
    box_id: String,
    ts_ms: u64,
    nonce: String,
    event: Event,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    signed: String,
    sig: String,
}

/// A message that passed every check.
#[derive(Debug, PartialEq)]
pub struct Verified {
    pub box_id: String,
    pub event: Event,
}

/// Signs this box's events.
#[derive(Debug)]
pub struct Sealer {
    key: SigningKey,
    box_id: String,
    fleet: String,
    rng: SystemRandom,
}

impl Sealer {
    pub fn new(key: SigningKey, box_id: String, fleet: String) -> Sealer {
        Sealer {
            key,
            box_id,
            fleet,
            rng: SystemRandom::new(),
        }
    }

    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    pub fn box_id(&self) -> &str {
        &self.box_id
    }

    /// The message for `event`, made at `now_ms`.
    pub fn seal(&self, event: &Event, now_ms: u64) -> Vec<u8> {
        let mut nonce = [0u8; 16];
        // SystemRandom reads getrandom(2); if it ever failed the time still differs per event
        // and a zero nonce only makes two events of one millisecond look like a replay.
        let _ = self.rng.fill(&mut nonce);
        let signed = Signed {
            v: 1,
            fleet: self.fleet.clone(),
            box_id: self.box_id.clone(),
            ts_ms: now_ms,
            nonce: nonce.iter().map(|b| format!("{b:02x}")).collect(),
            event: event.clone(),
        };
        // Serialising plain strings and integers cannot fail.
        let text = serde_json::to_string(&signed).unwrap_or_default();
        let sig = self.key.sign(&message(text.as_bytes()));
        let env = Envelope {
            signed: text,
            sig: STANDARD.encode(sig),
        };
        serde_json::to_vec(&env).unwrap_or_default()
    }
}

fn message(signed: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + signed.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(signed);
    m
}

/// Checks messages against the fleet's public keys.
#[derive(Debug)]
pub struct Verifier {
    fleet: String,
    trust: HashMap<String, PublicKey>,
    window_ms: u64,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// `(box, nonce)` -> the event's time; pruned once older than the window.
    set: HashMap<(String, String), u64>,
    order: VecDeque<(u64, String, String)>,
}

impl Verifier {
    pub fn new(fleet: String, trust: HashMap<String, PublicKey>, window: Duration) -> Verifier {
        Verifier {
            fleet,
            trust,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            seen: Mutex::new(Seen::default()),
        }
    }

    pub fn trusted(&self) -> usize {
        self.trust.len()
    }

    /// Signature, box and fleet: what every message must pass.
    fn open(&self, payload: &[u8]) -> Result<Signed, Refusal> {
        if payload.len() > MAX_MESSAGE {
            return Err(Refusal::Malformed);
        }
        let env: Envelope = match serde_json::from_slice(payload) {
            Ok(env) => env,
            Err(_) if serde_json::from_slice::<serde_json::Value>(payload).is_ok() => {
                return Err(Refusal::Unsigned);
            }
            Err(_) => return Err(Refusal::Malformed),
        };
        let signed: Signed = serde_json::from_str(&env.signed).map_err(|_| Refusal::Malformed)?;
        let key = self.trust.get(&signed.box_id).ok_or(Refusal::UnknownBox)?;
        let sig = STANDARD
            .decode(env.sig.as_bytes())
            .map_err(|_| Refusal::BadSignature)?;
        if sig.len() != SIGNATURE_LEN || !key.verify(&message(env.signed.as_bytes()), &sig) {
            return Err(Refusal::BadSignature);
        }
        if signed.v != 1 || signed.fleet != self.fleet {
            return Err(Refusal::WrongFleet);
        }
        Ok(signed)
    }

    /// An event from the channel, received at `now_ms`.
    pub fn event(&self, payload: &[u8], now_ms: u64) -> Result<Verified, Refusal> {
        let s = self.open(payload)?;
        if s.ts_ms.abs_diff(now_ms) > self.window_ms {
            return Err(Refusal::Stale);
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let horizon = now_ms.saturating_sub(self.window_ms);
        while let Some((ts, _, _)) = seen.order.front() {
            if *ts >= horizon && seen.order.len() < MAX_NONCES {
                break;
            }
            if let Some((_, b, n)) = seen.order.pop_front() {
                seen.set.remove(&(b, n));
            }
        }
        // Entries leave `order` above only when older than the window, or when it is full: in
        // the second case a replay of the dropped nonce is still stale soon, and meanwhile the
        // bound keeps memory fixed.
        let id = (s.box_id.clone(), s.nonce.clone());
        if seen.set.contains_key(&id) {
            return Err(Refusal::Replayed);
        }
        seen.set.insert(id, s.ts_ms);
        seen.order
            .push_back((s.ts_ms.max(horizon), s.box_id.clone(), s.nonce));
        Ok(Verified {
            box_id: s.box_id,
            event: s.event,
        })
    }

    /// A blocklist entry read at catch-up from field `field` of the hash.
    pub fn entry(&self, field: &[u8], payload: &[u8]) -> Result<Verified, Refusal> {
        let s = self.open(payload)?;
        match &s.event {
            Event::Add { block } if block.cidr.as_bytes() == field => Ok(Verified {
                box_id: s.box_id,
                event: s.event,
            }),
            _ => Err(Refusal::Misplaced),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::fleet::Block;

    fn add(cidr: &str) -> Event {
        Event::Add {
            block: Block {
                cidr: cidr.into(),
                reason: "test".into(),
                expires_unix: None,
                auto: false,
            },
        }
    }

    fn fleet_of(names: &[&str]) -> (Vec<Sealer>, Verifier) {
        let sealers: Vec<Sealer> = names
            .iter()
            .map(|n| Sealer::new(SigningKey::generate().unwrap().0, (*n).into(), "f".into()))
            .collect();
        let trust = sealers
            .iter()
            .map(|s| (s.box_id.clone(), s.public()))
            .collect();
        (
            sealers,
            Verifier::new("f".into(), trust, Duration::from_secs(60)),
        )
    }

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn a_trusted_box_s_event_is_applied_once() {
        let (s, v) = fleet_of(&["a", "b"]);
        let msg = s[0].seal(&add("198.18.0.2/32"), NOW);
        let got = v.event(&msg, NOW + 500).unwrap();
        assert_eq!(got.box_id, "a");
        assert_eq!(got.event, add("198.18.0.2/32"));
        assert_eq!(v.event(&msg, NOW + 900), Err(Refusal::Replayed));
        // A second event of the same box is not a replay.
        let other = s[0].seal(&add("198.18.0.2/32"), NOW);
        assert!(v.event(&other, NOW + 900).is_ok());
    }

    #[test]
    fn forged_unsigned_and_foreign_messages_are_refused() {
        let (s, v) = fleet_of(&["a"]);
        let forged = br#"{"op":"add","from":"attacker","block":{"cidr":"198.18.0.2/32","reason":"x","expires_unix":null,"auto":false}}"#;
        assert_eq!(v.event(forged, NOW), Err(Refusal::Unsigned));
        assert_eq!(v.event(b"\x00garbage", NOW), Err(Refusal::Malformed));
        assert_eq!(
            v.event(&vec![b' '; MAX_MESSAGE + 1], NOW),
            Err(Refusal::Malformed)
        );
        // A box outside [fleet.boxes], even with a valid signature of its own.
        let stranger = Sealer::new(SigningKey::generate().unwrap().0, "x".into(), "f".into());
        let msg = stranger.seal(&add("198.18.0.2/32"), NOW);
        assert_eq!(v.event(&msg, NOW), Err(Refusal::UnknownBox));
        // A stranger claiming a trusted box's name signs with the wrong key.
        let liar = Sealer::new(SigningKey::generate().unwrap().0, "a".into(), "f".into());
        let msg = liar.seal(&add("198.18.0.2/32"), NOW);
        assert_eq!(v.event(&msg, NOW), Err(Refusal::BadSignature));
        // Another fleet's message, signed by the same key.
        let elsewhere = Sealer::new(SigningKey::generate().unwrap().0, "a".into(), "g".into());
        let v2 = Verifier::new(
            "f".into(),
            HashMap::from([("a".to_owned(), elsewhere.public())]),
            Duration::from_secs(60),
        );
        assert_eq!(
            v2.event(&elsewhere.seal(&add("198.18.0.2/32"), NOW), NOW),
            Err(Refusal::WrongFleet)
        );
        let _ = s;
    }

    #[test]
    fn any_change_to_a_signed_message_breaks_it() {
        let (s, v) = fleet_of(&["a"]);
        let msg = String::from_utf8(s[0].seal(&add("198.18.0.2/32"), NOW)).unwrap();
        let env: Envelope = serde_json::from_str(&msg).unwrap();
        let tampered = Envelope {
            signed: env.signed.replace("198.18.0.2/32", "198.18.0.0/15"),
            sig: env.sig.clone(),
        };
        let bytes = serde_json::to_vec(&tampered).unwrap();
        assert_eq!(v.event(&bytes, NOW), Err(Refusal::BadSignature));
        let chopped = Envelope {
            signed: env.signed,
            sig: env.sig[..20].to_owned(),
        };
        let bytes = serde_json::to_vec(&chopped).unwrap();
        assert_eq!(v.event(&bytes, NOW), Err(Refusal::BadSignature));
    }

    #[test]
    fn events_outside_the_window_are_stale_either_way() {
        let (s, v) = fleet_of(&["a"]);
        let msg = s[0].seal(&add("198.18.0.2/32"), NOW);
        assert_eq!(v.event(&msg, NOW + 60_001), Err(Refusal::Stale));
        assert_eq!(v.event(&msg, NOW - 60_001), Err(Refusal::Stale));
        assert!(v.event(&msg, NOW + 60_000).is_ok());
    }

    #[test]
    fn catch_up_entries_need_a_signature_and_their_own_field() {
        let (s, v) = fleet_of(&["a"]);
        let msg = s[0].seal(&add("198.18.0.2/32"), NOW);
        // Old state is fine: no freshness for entries.
        assert!(v.entry(b"198.18.0.2/32", &msg).is_ok());
        assert_eq!(v.entry(b"198.18.0.9/32", &msg), Err(Refusal::Misplaced));
        let del = s[0].seal(
            &Event::Del {
                cidr: "198.18.0.2/32".into(),
            },
            NOW,
        );
        assert_eq!(v.entry(b"198.18.0.2/32", &del), Err(Refusal::Misplaced));
        let legacy = br#"{"cidr":"198.18.0.2/32","reason":"x","expires_unix":null,"auto":false}"#;
        assert_eq!(v.entry(b"198.18.0.2/32", legacy), Err(Refusal::Unsigned));
    }
}
