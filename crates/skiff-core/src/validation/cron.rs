//! Cron schedule syntax for CronJobs: five fields (minute, hour, day of month, month, day of
//! week) of `*`, `?`, numbers, names, ranges, steps and lists, or a macro (`@daily`, `@every 5m`).
//!
//! Invariant: a schedule accepted here is one the CronJob controller's parser also accepts;
//! time zones belong in `spec.timeZone`, never in the schedule.

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    question_mark: bool,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        question_mark: false,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        question_mark: false,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        question_mark: true,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
        question_mark: false,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 6,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
        question_mark: true,
    },
];

const MACROS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Check a schedule; the error says what is wrong with it.
pub(super) fn check_schedule(schedule: &str) -> Result<(), String> {
    let schedule = schedule.trim();
    if schedule.starts_with("TZ=") || schedule.starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    if let Some(duration) = schedule.strip_prefix("@every ") {
        return check_duration(duration.trim());
    }
    if schedule.starts_with('@') {
        return if MACROS.contains(&schedule) {
            Ok(())
        } else {
            Err(format!("unrecognized descriptor: {schedule}"))
        };
    }
    let parts: Vec<&str> = schedule.split_whitespace().collect();
    if parts.len() != FIELDS.len() {
        return Err(format!(
            "expected exactly 5 fields, found {}: {schedule}",
            parts.len()
        ));
    }
    for (part, field) in parts.iter().zip(FIELDS.iter()) {
        check_field(part, field)?;
    }
    Ok(())
}

fn check_duration(text: &str) -> Result<(), String> {
    let invalid = || format!("failed to parse duration @every {text}");
    let mut rest = text;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let after_number = rest.get(digits..).ok_or_else(invalid)?;
        let unit = ["ns", "us", "\u{b5}s", "ms", "s", "m", "h"]
            .into_iter()
            .find(|unit| after_number.starts_with(unit))
            .ok_or_else(invalid)?;
        rest = after_number.get(unit.len()..).ok_or_else(invalid)?;
    }
    Ok(())
}

fn value_of(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(position) = field.names.iter().position(|name| *name == lower) {
        let offset = u32::try_from(position).unwrap_or(0);
        return Ok(field.min + offset);
    }
    let number: u32 = text
        .parse()
        .map_err(|_| format!("failed to parse int from {text}: invalid {}", field.name))?;
    if number < field.min || number > field.max {
        return Err(format!(
            "{} value {number} out of range ({}-{})",
            field.name, field.min, field.max
        ));
    }
    Ok(number)
}

fn check_field(text: &str, field: &Field) -> Result<(), String> {
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            let step: u32 = step
                .parse()
                .map_err(|_| format!("failed to parse step {step} in {}", field.name))?;
            if step == 0 {
                return Err(format!("step of range should be a positive number: {item}"));
            }
        }
        match range {
            "*" => {}
            "?" if field.question_mark => {}
            _ => match range.split_once('-') {
                Some((low, high)) => {
                    let (low, high) = (value_of(low, field)?, value_of(high, field)?);
                    if low > high {
                        return Err(format!(
                            "beginning of range ({low}) beyond end of range ({high}): {range}"
                        ));
                    }
                }
                None => {
                    value_of(range, field)?;
                }
            },
        }
    }
    Ok(())
}
