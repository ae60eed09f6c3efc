//! Times in the audit log, with `jiff`: a record's RFC 3339 time and day, the daily files' days,
//! and the one parser of `--since` / `--until`.

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;

/// (RFC 3339 time, unix ms, `YYYY-MM-DD`)
pub fn now() -> (String, i64, String) {
    let ms = Timestamp::now().as_millisecond();
    let (time, day) = format_ms(ms);
    (time, ms, day)
}

/// (RFC 3339 time with milliseconds, `YYYY-MM-DD`) of a unix time in ms, UTC
pub fn format_ms(ms: i64) -> (String, String) {
    // outside jiff's range (years -9999 to 9999): the epoch, as the old code's `0` fallback
    let t = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let time = format!("{t:.3}");
    let day = time.get(..10).unwrap_or_default().to_string();
    (time, day)
}

/// Milliseconds, rounded to the microsecond
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Days since 1970-01-01 of a valid `YYYY-MM-DD` (`2026-02-31` is not one)
pub fn day_number(day: &str) -> Option<i64> {
    if day.len() != 10 {
        return None;
    }
    let date: Date = day.parse().ok()?;
    Some(date.duration_since(Date::constant(1970, 1, 1)).as_secs() / 86_400)
}

/// A time for `--since` / `--until`: `2026-11-30`, `2026-11-30T14:05:00Z` (UTC; a fraction of a
/// second is dropped), or a span before now: `90s`, `15m`, `2h`, `7d`. The one parser of these
/// flags, for the files and the database alike.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "invalid time `{s}`: expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or a span such as 15m, 2h, 7d"
        )
    };
    if let Some(unit) = s.chars().last().filter(|c| "smhd".contains(*c))
        && let Ok(n) = s[..s.len() - 1].parse::<i64>()
    {
        let per = match unit {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            _ => 86_400_000,
        };
        return n.checked_mul(per).map(|d| now_ms - d).ok_or_else(bad);
    }
    match s.split_once('T') {
        None => day_number(s).map(|d| d * 86_400_000).ok_or_else(bad),
        // UTC only, with hours, minutes and seconds
        Some((date, time)) if date.len() == 10 && time.len() >= 9 && time.ends_with('Z') => {
            let t: Timestamp = s.parse().map_err(|_| bad())?;
            Ok(t.as_second() * 1000)
        }
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_times() {
        assert_eq!(format_ms(0).0, "1970-01-01T00:00:00.000Z");
        let (time, day) = format_ms(1_796_083_199_999);
        assert_eq!(time, "2026-11-30T23:59:59.999Z");
        assert_eq!(day, "2026-11-30");
        assert_eq!(format_ms(1_796_000_000_042).0, "2026-11-30T00:53:20.042Z");
        assert_eq!(format_ms(-1).0, "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn dates() {
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(day_number("1969-12-31"), Some(-1));
        assert_eq!(day_number("2026-11-23"), Some(20_780));
        assert_eq!(day_number("2024-02-29"), Some(19_782));
        for bad in ["2026-02-31", "2025-02-29", "2026-13-01", "2026-1-01", "x"] {
            assert_eq!(day_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn times_for_since_and_until() {
        let now = day_number("2026-11-30").unwrap() * 86_400_000 + 3_600_000;
        assert_eq!(parse_time("2026-11-30", now), Ok(now - 3_600_000));
        assert_eq!(parse_time("2026-11-30T01:00:00Z", now), Ok(now));
        assert_eq!(parse_time("2026-11-30T01:00:00.250Z", now), Ok(now));
        assert_eq!(parse_time("15m", now), Ok(now - 900_000));
        assert_eq!(parse_time("7d", now), Ok(now - 7 * 86_400_000));
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-02-31",
            "2026-02-31T00:00:00Z",
            "2026-11-30T25:00:00Z",
            "2026-11-30T01:00",
            "2026-11-30T01:00Z",
            "2026-11-30T01:00:00+01:00",
            "5w",
            "",
        ] {
            let e = parse_time(bad, now).unwrap_err();
            assert!(e.starts_with(&format!("invalid time `{bad}`")), "{e}");
        }
    }
}
