//! UTC timestamps without a date crate, for SBOM headers (seconds) and the
//! agent's records and alerts (nanoseconds): one calendar conversion for
//! both, so the two can never disagree on a date.

/// Formats Unix seconds as RFC 3339 UTC (`2026-01-02T03:04:05Z`).
pub fn rfc3339(secs: i64) -> String {
    let (date, time) = civil(secs);
    format!("{date}T{time}Z")
}

/// Formats Unix nanoseconds as RFC 3339 UTC with nanoseconds
/// (`2026-01-02T03:04:05.123456789Z`), as the agent's records carry.
pub fn rfc3339_ns(unix_ns: i128) -> String {
    let secs = i64::try_from(unix_ns.div_euclid(1_000_000_000)).unwrap_or(i64::MAX);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let (date, time) = civil(secs);
    format!("{date}T{time}.{nanos:09}Z")
}

/// `YYYY-MM-DD` and `HH:MM:SS` of Unix seconds.
fn civil(secs: i64) -> (String, String) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (format!("{y:04}-{m:02}-{d:02}"), format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60))
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
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
    #[test]
    fn formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn formats_nanoseconds() {
        assert_eq!(super::rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(super::rfc3339_ns(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(super::rfc3339_ns(1_795_394_096_123_456_789), "2026-11-23T00:34:56.123456789Z");
        assert_eq!(super::rfc3339_ns(-1), "1969-12-31T23:59:59.999999999Z");
    }
}
