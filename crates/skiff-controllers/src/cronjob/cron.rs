//! Cron schedules as the CronJob controller reads them (robfig/cron's standard parser): five
//! fields (minute, hour, day of month, month, day of week) of `*`, `?`, numbers, names
//! (`jan`, `mon`), ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`; macros `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly` and `@every <duration>`.
//! Times are UTC.
//!
//! Invariants: when both day fields are restricted a day matches if either does (cron's rule),
//! otherwise both must; `next` finds the first matching minute strictly after a time within
//! five years, or none.

use k8s_openapi::jiff::civil::{Date, DateTime};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Timestamp, ToSpan};

/// Why a schedule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule {schedule:?}: {reason}")]
pub struct Error {
    pub schedule: String,
    pub reason: String,
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Fields {
        minutes: u64,
        hours: u64,
        days_of_month: u64,
        months: u64,
        days_of_week: u64,
        /// Whether the day-of-month or day-of-week field was `*`/`?`.
        day_star: bool,
    },
    Every(i64),
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                Some(s.parse::<u32>().map_err(|_| format!("bad step {s:?}"))?),
            ),
            None => (part, None),
        };
        if step == Some(0) {
            return Err("step of zero".into());
        }
        let value = |s: &str| -> Result<u32, String> {
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
                return Ok(min + i as u32);
            }
            s.parse::<u32>()
                .map_err(|_| format!("failed to parse int from {s}"))
        };
        let (start, end) = if range == "*" || range == "?" {
            if step.is_none() {
                star = true;
            }
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if step.is_some() { max } else { v })
        };
        if start < min || end > max || start > end {
            return Err(format!("{range} is beyond the range {min}-{max}"));
        }
        let step = step.unwrap_or(1);
        let mut v = start;
        while v <= end {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

fn duration_seconds(text: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = number.parse().ok()?;
        number.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        any = true;
    }
    (any && number.is_empty()).then_some(total as i64)
}

impl Schedule {
    /// Parse a schedule.
    pub fn parse(schedule: &str) -> Result<Self, Error> {
        let error = |reason: String| Error {
            schedule: schedule.to_string(),
            reason,
        };
        let text = schedule.trim();
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => {
                if let Some(duration) = other.strip_prefix("@every ") {
                    let seconds = duration_seconds(duration.trim())
                        .filter(|s| *s > 0)
                        .ok_or_else(|| error(format!("failed to parse duration {duration}")))?;
                    return Ok(Schedule::Every(seconds.max(1)));
                }
                if other.starts_with('@') {
                    return Err(error(format!("unrecognized descriptor: {other}")));
                }
                other
            }
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(error(format!(
                "expected exactly 5 fields, found {}",
                fields.len()
            )));
        }
        let (minutes, _) = field(fields[0], 0, 59, &[]).map_err(error)?;
        let (hours, _) = field(fields[1], 0, 23, &[]).map_err(error)?;
        let (days_of_month, dom_star) = field(fields[2], 1, 31, &[]).map_err(error)?;
        let (months, _) = field(fields[3], 1, 12, &MONTHS).map_err(error)?;
        let (mut days_of_week, dow_star) =
            field(fields[4].replace('7', "0").as_str(), 0, 6, &DAYS).map_err(error)?;
        if fields[4].contains('7') && !fields[4].chars().any(|c| c.is_ascii_alphabetic()) {
            days_of_week |= 1;
        }
        Ok(Schedule::Fields {
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            day_star: dom_star || dow_star,
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let Schedule::Fields {
            days_of_month,
            days_of_week,
            day_star,
            ..
        } = self
        else {
            return true;
        };
        let dom = days_of_month & (1 << date.day()) != 0;
        let dow = days_of_week & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if *day_star { dom && dow } else { dom || dow }
    }

    /// The first activation strictly after `after`.
    pub fn next(&self, after: Timestamp) -> Option<Timestamp> {
        let (minutes, hours, months) = match self {
            Schedule::Every(seconds) => return Some(after + SignedDuration::from_secs(*seconds)),
            Schedule::Fields {
                minutes,
                hours,
                months,
                ..
            } => (*minutes, *hours, *months),
        };
        let utc = TimeZone::UTC;
        let start = after.to_zoned(utc.clone()).datetime();
        let mut t: DateTime = start.checked_add(1.minute()).ok()?;
        t = t.with().second(0).subsec_nanosecond(0).build().ok()?;
        let limit = start.year() + 5;
        while t.year() <= limit {
            if months & (1 << t.month()) == 0 {
                t = t
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .with()
                    .hour(0)
                    .minute(0)
                    .build()
                    .ok()?;
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t
                    .date()
                    .checked_add(1.day())
                    .ok()?
                    .to_datetime(k8s_openapi::jiff::civil::Time::midnight());
                continue;
            }
            if hours & (1 << t.hour()) == 0 {
                t = t
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if minutes & (1 << t.minute()) == 0 {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            return t.to_zoned(utc).ok().map(|z| z.timestamp());
        }
        None
    }

    /// The most recent activation in `(earliest, now]` and how many there were (counting at most
    /// a million).
    pub fn most_recent(&self, earliest: Timestamp, now: Timestamp) -> Option<(Timestamp, usize)> {
        let mut last = None;
        let mut count = 0;
        let mut t = earliest;
        while let Some(next) = self.next(t) {
            if next > now || count >= 1_000_000 {
                break;
            }
            count += 1;
            last = Some(next);
            t = next;
        }
        last.map(|l| (l, count))
    }
}
