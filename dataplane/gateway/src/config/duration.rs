//! Durations in the config file are strings such as `"250ms"`, `"10s"`, `"2m"` or `"1h"`: easier
//! to read in a TOML file than integer milliseconds, and the unit is never ambiguous.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses `"<integer><unit>"` with unit `ms`, `s`, `m` or `h`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
        format!("\"{text}\" has no unit; write e.g. \"500ms\", \"10s\" or \"2m\"")
    })?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("\"{text}\" does not start with a whole number"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "\"{text}\" has unknown unit \"{unit}\"; use ms, s, m or h"
            ));
        }
    };
    Ok(d)
}

/// Formats a duration the way [`parse`] reads it.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

/// serde `deserialize_with` for duration keys.
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

/// serde `serialize_with` for duration keys.
pub fn ser<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_round_trips() {
        for (text, d) in [
            ("250ms", Duration::from_millis(250)),
            ("10s", Duration::from_secs(10)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
        ] {
            assert_eq!(parse(text), Ok(d));
            assert_eq!(format(d), text);
        }
    }

    #[test]
    fn rejects_missing_or_unknown_unit() {
        assert!(parse("10").is_err());
        assert!(parse("10days").is_err());
        assert!(parse("s").is_err());
    }
}
