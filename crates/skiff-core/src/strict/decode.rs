//! Decoding a request body (JSON or YAML) into a `serde_json::Value` while recording duplicate
//! keys with their paths (`metadata.labels.app`, `spec.containers[0].name`).
//!
//! Invariant: decoding never panics and never silently loses a duplicate: the value keeps the
//! last occurrence (as Go's decoder does) and every earlier repetition is reported once.
//! YAML mapping keys that are not strings (`80: x`, `true: y`) become their string forms, as
//! Kubernetes' YAML-to-JSON conversion does.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Builds a JSON value from any serde deserializer, collecting duplicate-key paths.
pub(super) struct ValueSeed<'a> {
    pub(super) path: String,
    pub(super) duplicates: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{value} is not a finite number")))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = ValueSeed {
                path: format!("{}[{}]", self.path, items.len()),
                duplicates: &mut *self.duplicates,
            };
            match sequence.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        let mut reported = BTreeSet::new();
        while let Some(KeyText(key)) = map.next_key()? {
            let path = child_path(&self.path, &key);
            if object.contains_key(&key) && reported.insert(key.clone()) {
                self.duplicates.push(path.clone());
            }
            let value = map.next_value_seed(ValueSeed {
                path,
                duplicates: &mut *self.duplicates,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// A mapping key as text, whatever scalar YAML used for it.
struct KeyText(String);

impl<'de> de::Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = KeyText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }

    fn visit_str<E>(self, value: &str) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<KeyText, E> {
        Ok(KeyText(value))
    }

    fn visit_bool<E>(self, value: bool) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_i64<E>(self, value: i64) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<KeyText, E> {
        Ok(KeyText(value.to_string()))
    }

    fn visit_unit<E>(self) -> Result<KeyText, E> {
        Ok(KeyText("null".to_string()))
    }
}
