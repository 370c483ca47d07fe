//! Time as the database stores it: integer milliseconds since the Unix epoch, UTC.
//!
//! Also formats a compact UTC stamp (`20250131T235959Z`) for file names and exports, without a
//! date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. A clock set before 1970 reads as 0.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `(year, month, day)` of the proleptic Gregorian calendar for a count of days since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Splits milliseconds since the epoch into calendar fields (UTC).
fn fields(ms: i64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    (
        y,
        mo,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// `20250131T235959Z`: safe in file names on every OS.
pub(crate) fn compact_utc(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = fields(ms);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// `2025-01-31 23:59 UTC`: for people.
pub(crate) fn readable_utc(ms: i64) -> String {
    let (y, mo, d, h, mi, _) = fields(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(compact_utc(0), "19700101T000000Z");
        // 2024-02-29T12:34:56Z, a leap day.
        assert_eq!(compact_utc(1_709_210_096_000), "20240229T123456Z");
        assert_eq!(readable_utc(1_709_210_096_999), "2024-02-29 12:34 UTC");
        // 2000-03-01, right after a century leap day.
        assert_eq!(compact_utc(951_868_800_000), "20000301T000000Z");
    }
}
