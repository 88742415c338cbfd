//! `thermal` output: the level in force, why, and what would change it.

use vigil_control::{Thermal, duration::format_secs};

fn celsius(c: f64) -> String {
    format!("{c:.1} °C")
}

/// The status table of vigild's reply to `thermal`, `thermal override` and `thermal clear`.
/// `headline` (e.g. "override cleared") goes first when given.
pub fn status(r: &Thermal, headline: Option<&str>) -> String {
    let st = &r.status;
    let mut out = String::new();
    if let Some(h) = headline {
        out.push_str(h);
        out.push('\n');
    }
    let why = match st.override_level {
        Some(_) => format!(
            "forced by operator; temperature alone gives {}",
            st.thermal_level
        ),
        None => "from temperature".to_owned(),
    };
    out.push_str(&format!("level:         {}  ({why})\n", st.level));
    match st.temperature_c {
        Some(t) => out.push_str(&format!(
            "temperature:   {}  (hottest of {} sensor{})\n",
            celsius(t),
            st.sensors,
            if st.sensors == 1 { "" } else { "s" }
        )),
        None => out.push_str("temperature:   unknown\n"),
    }
    match (st.override_level, st.override_remaining_ms) {
        (Some(l), Some(ms)) => out.push_str(&format!(
            "override:      {l} for {} more, then back to {}\n",
            format_secs((ms.saturating_add(500) / 1000).max(1)),
            st.thermal_level
        )),
        (Some(l), None) => out.push_str(&format!("override:      {l}\n")),
        (None, _) => out.push_str("override:      none\n"),
    }
    let t = &r.thresholds;
    out.push_str(&format!(
        "thresholds:    reduced {}, minimal {}, shed {}; leave a level {} below its threshold\n",
        celsius(t.reduced_c),
        celsius(t.minimal_c),
        celsius(t.shed_c),
        celsius(t.hysteresis_c)
    ));
    out.push_str(&format!(
        "polling:       every {} ms{}; {} level change{} since vigild started\n",
        t.poll_interval_ms,
        if t.sensors.is_empty() {
            String::new()
        } else {
            format!(", watching {}", t.sensors.join(", "))
        },
        r.transitions,
        if r.transitions == 1 { "" } else { "s" }
    ));
    if r.sensors.readings.is_empty() && r.sensors.errors.is_empty() {
        out.push_str("sensors:       no sensors: staying at full depth\n");
        return out;
    }
    if !r.sensors.readings.is_empty() {
        out.push_str(&format!(
            "\n{:<16} {:<28} {:>9} {:>9}\n",
            "SENSOR", "NAME", "°C", "CRIT °C"
        ));
        for s in &r.sensors.readings {
            let crit = s
                .crit_celsius
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.1}"));
            out.push_str(&format!(
                "{:<16} {:<28} {:>9.1} {:>9}\n",
                s.id, s.name, s.celsius, crit
            ));
        }
    }
    for e in &r.sensors.errors {
        out.push_str(&format!("unreadable:    {e}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::{Value, json};

    use super::*;

    fn reply(status: Value, readings: Value) -> Thermal {
        serde_json::from_value(json!({
            "status": status,
            "thresholds": {
                "reduced_c": 80.0, "minimal_c": 90.0, "shed_c": 95.0, "hysteresis_c": 5.0,
                "poll_interval_ms": 500, "sensors": []
            },
            "sensors": { "readings": readings, "errors": [] },
            "transitions": 1
        }))
        .unwrap()
    }

    #[test]
    fn no_sensors_says_full_depth() {
        let v = reply(
            json!({
                "level": "full", "thermal_level": "full", "temperature_c": null, "sensors": 0,
                "sensor_errors": [], "override_level": null, "override_remaining_ms": null,
                "message": "no temperature sensors found; level stays full"
            }),
            json!([]),
        );
        let out = status(&v, None);
        assert!(out.contains("no sensors: staying at full depth"), "{out}");
        assert!(out.contains("level:         full"), "{out}");
    }

    #[test]
    fn override_shows_remaining_time_and_sensors_are_listed() {
        let v = reply(
            json!({
                "level": "minimal", "thermal_level": "reduced", "temperature_c": 85.0,
                "sensors": 1, "sensor_errors": [], "override_level": "minimal",
                "override_remaining_ms": 89_500, "message": "level minimal forced by operator"
            }),
            json!([{
                "id": "hwmon1/temp1", "name": "coretemp/Package id 0", "chip": "coretemp",
                "kind": "hwmon", "celsius": 85.0, "crit_celsius": 100.0
            }]),
        );
        let out = status(&v, Some("pinned"));
        assert!(out.starts_with("pinned\n"), "{out}");
        assert!(
            out.contains("override:      minimal for 1m30s more"),
            "{out}"
        );
        assert!(out.contains("coretemp/Package id 0"), "{out}");
        assert!(out.contains("100.0"), "{out}");
        assert!(out.contains("85.0 °C"), "{out}");
    }

    #[test]
    fn huge_remaining_time_does_not_overflow() {
        let v = reply(
            json!({
                "level": "shed", "thermal_level": "full", "temperature_c": 40.0,
                "sensors": 1, "sensor_errors": [], "override_level": "shed",
                "override_remaining_ms": u64::MAX, "message": "level shed forced by operator"
            }),
            json!([]),
        );
        assert!(status(&v, None).contains("override:      shed for "));
    }
}
