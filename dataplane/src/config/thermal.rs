//! `[thermal]` as vigild reads it: vigil-hw's section, with `poll_interval` in the duration
//! grammar beside its older spelling `poll_interval_ms`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error};
use vigil_control::duration::{self, Spellings, Unit};
use vigil_hw::thermal::{ThermalConfig, ThermalConfigError};

/// Every key of [`ThermalConfig`], each optional (its default applies), plus `poll_interval`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThermalToml {
    reduced_c: Option<f64>,
    minimal_c: Option<f64>,
    shed_c: Option<f64>,
    hysteresis_c: Option<f64>,
    #[serde(default, with = "duration::option")]
    poll_interval: Option<Duration>,
    poll_interval_ms: Option<u64>,
    sensors: Option<Vec<String>>,
}

const POLL: Spellings = Spellings {
    key: "thermal.poll_interval",
    legacy_key: "thermal.poll_interval_ms",
    unit: Unit::Millis,
};

/// serde `deserialize_with` for `Config::thermal`.
pub(super) fn de<'de, D: Deserializer<'de>>(d: D) -> Result<ThermalConfig, D::Error> {
    let t = ThermalToml::deserialize(d)?;
    let defaults = ThermalConfig::default();
    let poll_interval_ms = match POLL
        .resolve(t.poll_interval, t.poll_interval_ms)
        .map_err(D::Error::custom)?
    {
        None => defaults.poll_interval_ms,
        Some(p) if t.poll_interval.is_some() => {
            // The old key's range, in the new key's words (vigil-hw's message names the old).
            if !(Duration::from_millis(50)..=Duration::from_secs(60)).contains(&p) {
                return Err(D::Error::custom(format!(
                    "thermal.poll_interval = \"{}\" must be between 50ms and 60s",
                    duration::format(p)
                )));
            }
            POLL.whole(p).map_err(D::Error::custom)?
        }
        Some(p) => POLL.whole(p).map_err(D::Error::custom)?,
    };
    Ok(ThermalConfig {
        reduced_c: t.reduced_c.unwrap_or(defaults.reduced_c),
        minimal_c: t.minimal_c.unwrap_or(defaults.minimal_c),
        shed_c: t.shed_c.unwrap_or(defaults.shed_c),
        hysteresis_c: t.hysteresis_c.unwrap_or(defaults.hysteresis_c),
        poll_interval_ms,
        sensors: t.sensors.unwrap_or(defaults.sensors),
    })
}

/// The key a threshold error is about; `thermal` when it is about how they relate.
pub(super) fn key_of(e: &ThermalConfigError) -> String {
    match e {
        ThermalConfigError::NotFinite { key, .. } => format!("thermal.{key}"),
        ThermalConfigError::Hysteresis { .. } => "thermal.hysteresis_c".to_owned(),
        ThermalConfigError::PollInterval { .. } => "thermal.poll_interval".to_owned(),
        _ => "thermal".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        #[serde(default, deserialize_with = "de")]
        thermal: ThermalConfig,
    }

    fn parse(text: &str) -> Result<ThermalConfig, String> {
        toml::from_str::<Doc>(text)
            .map(|d| d.thermal)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_key_of_the_section_is_read() {
        // A key vigil-hw adds must be added to ThermalToml too (building the section above
        // fails to compile until it is).
        let all = ThermalConfig {
            reduced_c: 70.0,
            minimal_c: 80.0,
            shed_c: 85.0,
            hysteresis_c: 3.0,
            poll_interval_ms: 250,
            sensors: vec!["coretemp".into()],
        };
        let text = format!("[thermal]\n{}", toml::to_string(&all).unwrap());
        assert_eq!(parse(&text), Ok(all));
        assert_eq!(parse(""), Ok(ThermalConfig::default()));
    }

    #[test]
    fn poll_interval_in_either_spelling_but_not_both() {
        let ms = |text: &str| parse(text).map(|t| t.poll_interval_ms);
        assert_eq!(ms("[thermal]\npoll_interval = \"200ms\""), Ok(200));
        assert_eq!(ms("[thermal]\npoll_interval = \"1.5s\""), Ok(1500));
        assert_eq!(ms("[thermal]\npoll_interval_ms = 100"), Ok(100));
        let e = ms("[thermal]\npoll_interval = \"200ms\"\npoll_interval_ms = 100").unwrap_err();
        assert!(
            e.contains(
                "thermal.poll_interval and thermal.poll_interval_ms are both set: keep \
                 thermal.poll_interval = \"200ms\" and remove thermal.poll_interval_ms"
            ),
            "{e}"
        );
        let e = ms("[thermal]\npoll_interval = \"10ms\"").unwrap_err();
        assert!(e.contains("must be between 50ms and 60s"), "{e}");
        let e = ms("[thermal]\npoll_interval = \"100500us\"").unwrap_err();
        assert!(e.contains("not a whole number of milliseconds"), "{e}");
        let e = ms("[thermal]\npoll_interval = 100").unwrap_err();
        assert!(e.contains("100 is a number, not a duration"), "{e}");
        let e = ms("[thermal]\nshed = 99.0").unwrap_err();
        assert!(e.contains("unknown field `shed`"), "{e}");
    }
}
