//! Value checks shared by the validators: reading typed values out of JSON, ranges, ports and
//! port names, IP addresses and CIDRs, resource quantities, and enum membership.
//!
//! Invariant: every check appends field errors and never panics; a value of the wrong JSON type
//! reads as absent (strict decoding rejects wrong types before validation runs).

use std::net::IpAddr;

use serde_json::Value;

use crate::field::{Error, Path};

/// The string at `key`, if it is one.
pub(super) fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// The string at `key`, or `""`.
pub(super) fn text_or_empty<'a>(value: &'a Value, key: &str) -> &'a str {
    text(value, key).unwrap_or_default()
}

/// The integer at `key`, if it is one.
pub(super) fn int(value: &Value, key: &str) -> Option<i64> {
    value.get(key).and_then(Value::as_i64)
}

/// The list at `key`, or an empty slice.
pub(super) fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Whether `key` holds something other than null.
pub(super) fn present(value: &Value, key: &str) -> bool {
    value.get(key).is_some_and(|found| !found.is_null())
}

/// `must be greater than or equal to 0` when negative.
pub(super) fn non_negative(errors: &mut Vec<Error>, path: &Path, value: Option<i64>) {
    if let Some(number) = value.filter(|number| *number < 0) {
        errors.push(Error::invalid(
            path,
            number,
            "must be greater than or equal to 0",
        ));
    }
}

/// `must be greater than or equal to 1` when below one.
pub(super) fn positive(errors: &mut Vec<Error>, path: &Path, value: Option<i64>) {
    if let Some(number) = value.filter(|number| *number < 1) {
        errors.push(Error::invalid(
            path,
            number,
            "must be greater than or equal to 1",
        ));
    }
}

/// `Unsupported value` unless `value` is one of `supported`.
pub(super) fn one_of(
    errors: &mut Vec<Error>,
    path: &Path,
    value: Option<&str>,
    supported: &[&str],
) {
    if let Some(value) = value.filter(|value| !supported.contains(value)) {
        errors.push(Error::not_supported(path, value, supported));
    }
}

/// A port number in 1..=65535.
pub(super) fn port_number(errors: &mut Vec<Error>, path: &Path, port: i64) {
    if !(1..=65535).contains(&port) {
        errors.push(Error::invalid(
            path,
            port,
            "must be between 1 and 65535, inclusive",
        ));
    }
}

/// Reasons `name` is not an IANA service name (a named port): at most 15 lower-case letters,
/// digits and single hyphens, with at least one letter, not starting or ending with a hyphen.
pub(super) fn iana_service_name(name: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    if name.len() > 15 {
        reasons.push("must be no more than 15 characters".to_string());
    }
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
    {
        reasons
            .push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if name.contains("--") {
        reasons.push("must not contain consecutive hyphens".to_string());
    }
    if !name.bytes().any(|byte| byte.is_ascii_lowercase()) {
        reasons.push("must contain at least one letter (a-z)".to_string());
    }
    if name.starts_with('-') || name.ends_with('-') {
        reasons.push("must not begin or end with a hyphen".to_string());
    }
    reasons
}

/// An int-or-string port (`targetPort`, probe ports): a number in range or a named port.
pub(super) fn port_or_name(errors: &mut Vec<Error>, path: &Path, value: &Value) {
    match value {
        Value::Number(number) => port_number(errors, path, number.as_i64().unwrap_or(0)),
        Value::String(name) => {
            for reason in iana_service_name(name) {
                errors.push(Error::invalid(path, name.as_str(), &reason));
            }
        }
        _ => {}
    }
}

/// A valid IPv4 or IPv6 address.
pub(super) fn ip_address(errors: &mut Vec<Error>, path: &Path, address: &str) {
    if address.parse::<IpAddr>().is_err() {
        errors.push(Error::invalid(
            path,
            address,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
}

/// A valid CIDR (`10.0.0.0/8`, `2001:db8::/32`).
pub(super) fn cidr(errors: &mut Vec<Error>, path: &Path, text: &str) {
    let valid = text.split_once('/').is_some_and(|(address, bits)| {
        let bits: Option<u8> = bits.parse().ok();
        match (address.parse::<IpAddr>(), bits) {
            (Ok(IpAddr::V4(_)), Some(bits)) => bits <= 32,
            (Ok(IpAddr::V6(_)), Some(bits)) => bits <= 128,
            _ => false,
        }
    });
    if !valid {
        errors.push(Error::invalid(
            path,
            text,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
    }
}

/// The value of a resource quantity (`500m`, `1Gi`, `1e3`) as a float, `None` if malformed.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let base: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let power: i32 = digits.parse().ok()?;
            10f64.powi(power)
        }
    };
    let value = base * multiplier;
    value.is_finite().then_some(value)
}

/// A quantity that parses and is not negative.
pub(super) fn quantity(errors: &mut Vec<Error>, path: &Path, value: &Value) {
    let parsed = match value {
        Value::String(text) => parse_quantity(text),
        Value::Number(number) => number.as_f64(),
        _ => None,
    };
    match parsed {
        None => errors.push(Error::invalid(
            path,
            value.clone(),
            "must be a valid quantity, e.g. '500m', '1.5', '128Mi' or '2Gi'",
        )),
        Some(amount) if amount < 0.0 => {
            errors.push(Error::invalid(
                path,
                value.clone(),
                "must be greater than or equal to 0",
            ));
        }
        Some(_) => {}
    }
}

/// The amount of a quantity JSON value (a string or a number).
pub(super) fn quantity_amount(value: &Value) -> Option<f64> {
    match value {
        Value::String(text) => parse_quantity(text),
        Value::Number(number) => number.as_f64(),
        _ => None,
    }
}
