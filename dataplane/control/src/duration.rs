//! The one duration grammar of Vigil, for every duration in the config file and on the
//! command line: humantime's.
//!
//! A duration is one or more `<number><unit>` terms, summed, with or without spaces between
//! them: `500ms`, `30s`, `10m`, `1h 30m`, `1m30s`, `1d`, `1.5h`. Units: `ns`, `us`, `ms`,
//! `s` (`sec`, `secs`, `second`, `seconds`), `m` (`min`, `mins`, `minute`, `minutes`),
//! `h` (`hr`, `hrs`, `hour`, `hours`), `d` (`day`, `days`), `w` (`wk`, `wks`, `week`, `weeks`),
//! `M` (`month`, `months`: 30.44 days) and `y` (`yr`, `yrs`, `year`, `years`: 365.25 days).
//! A number without a unit is refused (except `0`): `90` could mean seconds or milliseconds.
//! Each key still bounds its own value (a ttl of at most 365 days, a timeout above zero).

use std::time::Duration;

use serde::{Deserializer, Serializer, de};

/// A string that is not a duration. The message quotes it and says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a duration: {why}")]
pub struct DurationError {
    /// What was given.
    pub input: String,
    /// What is wrong with it and what to write instead.
    pub why: String,
}

const EXAMPLES: &str = "write e.g. \"500ms\", \"30s\", \"10m\", \"1h 30m\" or \"1d\"";

/// Parses a duration written in the grammar described at the top of this module.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = |why: String| DurationError {
        input: input.to_owned(),
        why,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err(format!("it is empty; {EXAMPLES}")));
    }
    if s != "0" && s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!(
            "a number needs a unit: write \"{s}s\" for seconds or \"{s}ms\" for milliseconds"
        )));
    }
    humantime::parse_duration(s).map_err(|e| {
        err(match e {
            humantime::DurationError::UnknownUnit { unit, value, .. } if unit.is_empty() => {
                format!("{value} has no unit; write e.g. \"{value}s\" or \"{value}ms\"")
            }
            humantime::DurationError::UnknownUnit { unit, .. } => {
                format!("unknown unit {unit:?}; use ms, s, m, h, d or w, e.g. \"1h 30m\"")
            }
            humantime::DurationError::InvalidCharacter(at) => {
                let c = s.get(at..).and_then(|r| r.chars().next()).unwrap_or('?');
                format!("unexpected {c:?}; {EXAMPLES}")
            }
            humantime::DurationError::NumberExpected(_) => {
                format!("expected a number before each unit; {EXAMPLES}")
            }
            humantime::DurationError::NumberOverflow => {
                "too large, or finer than a nanosecond".to_owned()
            }
            humantime::DurationError::Empty => format!("it is empty; {EXAMPLES}"),
        })
    })
}

/// Formats a duration so that [`parse`] reads it back: `250ms`, `10s`, `2m`, `1h`, and
/// humantime's `1h 30m` form for values that are not a whole number of one unit.
pub fn format(d: Duration) -> String {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return humantime::format_duration(d).to_string();
    }
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_owned()
    } else if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if ms.is_multiple_of(86_400_000) {
        format!("{}d", ms / 86_400_000)
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms < 60_000 {
        format!("{}s", ms / 1000)
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// Formats seconds compactly for tables: `9m58s`, `2h0m`, `3d4h`.
pub fn format_secs(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Reads a duration key: a string in the grammar above. A bare TOML integer is refused with
/// what to write instead.
struct Visitor;

impl de::Visitor<'_> for Visitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration string such as \"30s\", \"500ms\" or \"1h 30m\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "{v} is a number, not a duration: write it in quotes with a unit, e.g. \"{v}s\" or \
             \"{v}ms\""
        )))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        self.visit_u64(v.unsigned_abs())
    }
}

/// serde `deserialize_with` for duration keys.
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(Visitor)
}

/// serde `serialize_with` for duration keys: [`format`].
pub fn ser<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// serde `with` for optional duration keys (use with `#[serde(default)]`).
pub mod option {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    /// Deserializes a present key with [`super::de`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::de(d).map(Some)
    }

    /// Serializes with [`super::format`]; `None` as unit (skip it with
    /// `skip_serializing_if = "Option::is_none"`).
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::ser(d, s),
            None => s.serialize_none(),
        }
    }
}

/// The unit of a key's old integer spelling (`sweep_interval_ms`, `retry_after_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `*_ms`.
    Millis,
    /// `*_secs`.
    Secs,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Millis => "milliseconds",
            Unit::Secs => "seconds",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Unit::Millis => "ms",
            Unit::Secs => "s",
        }
    }
}

/// A duration key that also has an old integer spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spellings {
    /// Path of the duration key, e.g. `listener.retry_after`.
    pub key: &'static str,
    /// Path of the old integer key, e.g. `listener.retry_after_secs`.
    pub legacy_key: &'static str,
    /// What the old key counts.
    pub unit: Unit,
}

/// A duration key and its old spelling that cannot be reconciled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpellingError {
    /// Both spellings are set.
    #[error(
        "{key} and {legacy_key} are both set: keep {key} = \"{value}\" and remove {legacy_key}"
    )]
    BothSet {
        /// The duration key.
        key: &'static str,
        /// The old integer key.
        legacy_key: &'static str,
        /// The duration key's value.
        value: String,
    },
    /// The value has a finer part than the key counts.
    #[error("{key} = \"{value}\" is not a whole number of {unit}: write e.g. \"{example}\"")]
    NotWhole {
        /// The duration key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What the key counts.
        unit: &'static str,
        /// The value rounded up, in that unit.
        example: String,
    },
    /// The value does not fit the key.
    #[error("{key} = \"{value}\" is too large")]
    TooLarge {
        /// The duration key.
        key: &'static str,
        /// Its value.
        value: String,
    },
}

impl Spellings {
    /// The duration set by either spelling (`None` when neither is set).
    pub fn resolve(
        &self,
        new: Option<Duration>,
        legacy: Option<u64>,
    ) -> Result<Option<Duration>, SpellingError> {
        match (new, legacy) {
            (Some(d), Some(_)) => Err(SpellingError::BothSet {
                key: self.key,
                legacy_key: self.legacy_key,
                value: format(d),
            }),
            (Some(d), None) => Ok(Some(d)),
            (None, Some(n)) => Ok(Some(match self.unit {
                Unit::Millis => Duration::from_millis(n),
                Unit::Secs => Duration::from_secs(n),
            })),
            (None, None) => Ok(None),
        }
    }

    /// `d` counted in the old key's unit, refusing a finer remainder (a `Retry-After` header
    /// carries whole seconds: `1500ms` there is a mistake, not something to round silently).
    pub fn whole(&self, d: Duration) -> Result<u64, SpellingError> {
        let (n, rest) = match self.unit {
            Unit::Millis => (d.as_millis(), d.subsec_nanos() % 1_000_000),
            Unit::Secs => (u128::from(d.as_secs()), d.subsec_nanos()),
        };
        if rest != 0 {
            return Err(SpellingError::NotWhole {
                key: self.key,
                value: format(d),
                unit: self.unit.name(),
                example: format!("{}{}", n + 1, self.unit.suffix()),
            });
        }
        u64::try_from(n).map_err(|_| SpellingError::TooLarge {
            key: self.key,
            value: format(d),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn accepted_spellings() {
        let s = Duration::from_secs;
        for (text, want) in [
            ("500ms", Duration::from_millis(500)),
            ("30s", s(30)),
            ("10m", s(600)),
            ("1m30s", s(90)),
            ("1h 30m", s(5400)),
            ("1h30m", s(5400)),
            ("2h 37min", s(9420)),
            ("1d", s(86_400)),
            ("2w", s(14 * 86_400)),
            ("1.5h", s(5400)),
            ("4.2s", Duration::from_millis(4200)),
            ("250us", Duration::from_micros(250)),
            ("10 seconds", s(10)),
            ("3 hours", s(10_800)),
            ("1y", s(31_557_600)),
            ("  10s ", s(10)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn refused_spellings_say_what_to_write() {
        for (text, message) in [
            (
                "",
                "\"\" is not a duration: it is empty; write e.g. \"500ms\", \"30s\", \"10m\", \
                 \"1h 30m\" or \"1d\"",
            ),
            (
                "90",
                "\"90\" is not a duration: a number needs a unit: write \"90s\" for seconds or \
                 \"90ms\" for milliseconds",
            ),
            (
                "10x",
                "\"10x\" is not a duration: unknown unit \"x\"; use ms, s, m, h, d or w, e.g. \
                 \"1h 30m\"",
            ),
            (
                "10days5",
                "\"10days5\" is not a duration: 5 has no unit; write e.g. \"5s\" or \"5ms\"",
            ),
            (
                "1h30",
                "\"1h30\" is not a duration: 30 has no unit; write e.g. \"30s\" or \"30ms\"",
            ),
            (
                "-5s",
                "\"-5s\" is not a duration: expected a number before each unit; write e.g. \
                 \"500ms\", \"30s\", \"10m\", \"1h 30m\" or \"1d\"",
            ),
            (
                "soon",
                "\"soon\" is not a duration: expected a number before each unit; write e.g. \
                 \"500ms\", \"30s\", \"10m\", \"1h 30m\" or \"1d\"",
            ),
            (
                "5s,",
                "\"5s,\" is not a duration: unexpected ','; write e.g. \"500ms\", \"30s\", \
                 \"10m\", \"1h 30m\" or \"1d\"",
            ),
            (
                "99999999999999999999s",
                "\"99999999999999999999s\" is not a duration: too large, or finer than a \
                 nanosecond",
            ),
        ] {
            assert_eq!(
                parse(text).map_err(|e| e.to_string()),
                Err(message.to_owned()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn formats_what_parse_reads_back() {
        for (d, text) in [
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_secs(90), "1m 30s"),
            (Duration::ZERO, "0s"),
            (Duration::from_micros(1500), "1ms 500us"),
        ] {
            assert_eq!(format(d), text);
            assert_eq!(parse(text), Ok(d), "{text}");
        }
    }

    #[test]
    fn formats_seconds_compactly() {
        assert_eq!(format_secs(59), "59s");
        assert_eq!(format_secs(598), "9m58s");
        assert_eq!(format_secs(7200), "2h0m");
        assert_eq!(format_secs(90_000), "1d1h");
    }

    const SWEEP: Spellings = Spellings {
        key: "xdp.sweep_interval",
        legacy_key: "xdp.sweep_interval_ms",
        unit: Unit::Millis,
    };
    const RETRY: Spellings = Spellings {
        key: "listener.retry_after",
        legacy_key: "listener.retry_after_secs",
        unit: Unit::Secs,
    };

    #[test]
    fn either_spelling_but_not_both() {
        let ms = Duration::from_millis;
        assert_eq!(SWEEP.resolve(Some(ms(200)), None), Ok(Some(ms(200))));
        assert_eq!(SWEEP.resolve(None, Some(200)), Ok(Some(ms(200))));
        assert_eq!(
            RETRY.resolve(None, Some(3)),
            Ok(Some(Duration::from_secs(3)))
        );
        assert_eq!(SWEEP.resolve(None, None), Ok(None));
        assert_eq!(
            SWEEP
                .resolve(Some(ms(200)), Some(200))
                .map_err(|e| e.to_string()),
            Err(
                "xdp.sweep_interval and xdp.sweep_interval_ms are both set: keep \
                 xdp.sweep_interval = \"200ms\" and remove xdp.sweep_interval_ms"
                    .to_owned()
            )
        );
    }

    #[test]
    fn whole_units_only() {
        assert_eq!(RETRY.whole(Duration::from_secs(120)), Ok(120));
        assert_eq!(SWEEP.whole(Duration::from_secs(2)), Ok(2000));
        assert_eq!(
            RETRY
                .whole(Duration::from_millis(1500))
                .map_err(|e| e.to_string()),
            Err(
                "listener.retry_after = \"1500ms\" is not a whole number of seconds: write \
                 e.g. \"2s\""
                    .to_owned()
            )
        );
        assert!(SWEEP.whole(Duration::from_micros(100_500)).is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    struct Section {
        #[serde(deserialize_with = "de")]
        timeout: Duration,
        #[serde(default, with = "option")]
        interval: Option<Duration>,
    }

    #[test]
    fn toml_keys_take_strings_not_numbers() {
        let s: Section = toml::from_str("timeout = \"1m30s\"").unwrap();
        assert_eq!(s.timeout, Duration::from_secs(90));
        assert_eq!(s.interval, None);
        let s: Section = toml::from_str("timeout = \"1d\"\ninterval = \"200ms\"").unwrap();
        assert_eq!(s.timeout, Duration::from_secs(86_400));
        assert_eq!(s.interval, Some(Duration::from_millis(200)));
        let e = toml::from_str::<Section>("timeout = 30").unwrap_err();
        assert!(
            e.to_string()
                .contains("30 is a number, not a duration: write it in quotes with a unit"),
            "{e}"
        );
        let e = toml::from_str::<Section>("timeout = \"30\"").unwrap_err();
        assert!(e.to_string().contains("a number needs a unit"), "{e}");
    }
}
