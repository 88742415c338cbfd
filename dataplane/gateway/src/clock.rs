//! Wall-clock formatting for audit lines and syslog, without a calendar crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// RFC 3339 UTC timestamp with microseconds, e.g. `2026-11-23T14:41:10.123456Z`.
pub fn rfc3339_now() -> String {
    rfc3339(SystemTime::now())
}

/// RFC 3339 UTC timestamp of `t` with microseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    if !(0..=9999).contains(&y) {
        return format!(
            "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60,
            d.subsec_micros()
        );
    }
    // Written digit by digit: this runs for every request's audit line, and the formatting
    // machinery costs more than the digits. Years past 9999 take the general path above.
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let fields: [(usize, u64, usize); 7] = [
        (0, y as u64, 4),
        (5, u64::from(m), 2),
        (8, u64::from(day), 2),
        (11, rem / 3600, 2),
        (14, (rem / 60) % 60, 2),
        (17, rem % 60, 2),
        (20, u64::from(d.subsec_micros()), 6),
    ];
    for (at, mut v, width) in fields {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    // Digits and ASCII punctuation only: always UTF-8.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(1_709_251_199_000_001);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.000001Z");
        let t = UNIX_EPOCH + Duration::from_micros(253_402_300_799_999_999);
        assert_eq!(rfc3339(t), "9999-12-31T23:59:59.999999Z");
        let t = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert_eq!(rfc3339(t), "10000-01-01T00:00:00.000000Z");
    }
}
