//! Text forms of Kubernetes time values: `metav1.Time` and `metav1.MicroTime` as RFC 3339 in
//! UTC, and `metav1.Duration` as Go's `time.Duration.String` prints it.
//!
//! Invariants: pure integer arithmetic (no clock, no time zone database); years outside
//! 0000–9999, which RFC 3339 cannot express, give `None`.

/// `seconds` since the Unix epoch as `2006-01-02T15:04:05Z`, or with `micro` as
/// `2006-01-02T15:04:05.000000Z` (the nanoseconds truncated to microseconds).
pub(super) fn time(seconds: i64, nanos: i64, micro: bool) -> Option<String> {
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (hour, minute, second) = (
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    );
    let date = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    Some(if micro {
        format!("{date}.{:06}Z", nanos.clamp(0, 999_999_999) / 1000)
    } else {
        format!("{date}Z")
    })
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A duration in nanoseconds as Go prints it: `0s`, `1.5s`, `2m0s`, `1h0m0s`, `300ms`, `10µs`.
pub(super) fn go_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    if magnitude == 0 {
        return "0s".into();
    }
    if magnitude < 1_000_000_000 {
        let (precision, unit) = match magnitude {
            m if m < 1_000 => (0, "ns"),
            m if m < 1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (whole, fraction) = split(magnitude, precision);
        return format!("{sign}{whole}{fraction}{unit}");
    }
    let (seconds, fraction) = split(magnitude, 9);
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}{fraction}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}{fraction}s")
    } else {
        format!("{sign}{seconds}{fraction}s")
    }
}

/// `value / 10^precision` and the fraction as `.digits` without trailing zeros (or nothing).
fn split(value: u64, precision: u32) -> (u64, String) {
    let scale = 10u64.pow(precision);
    let (whole, rest) = (value / scale, value % scale);
    if rest == 0 {
        return (whole, String::new());
    }
    let digits = format!("{rest:0width$}", width = precision as usize);
    (whole, format!(".{}", digits.trim_end_matches('0')))
}
