//! Template hashes: the `pod-template-hash` of a Deployment's ReplicaSets and the
//! `controller-revision-hash` of StatefulSet and DaemonSet revisions.
//!
//! Like Kubernetes' `controller.ComputeHash`, the hash is FNV-32a over a deterministic rendering
//! of the template, extended with the collision count (4 bytes, little endian) when there is one,
//! printed in decimal and "safe-encoded" (each character mapped into `bcdfghjklmnpqrstvwxz2456789`,
//! so it never spells words). The rendering is canonical JSON (keys sorted, absent fields
//! omitted), not Go's `spew` dump of the Go struct; see ARCHITECTURE.md for why the values
//! therefore differ from kube-controller-manager's for the same template.
//!
//! Invariants: equal templates hash equally; the collision count changes the hash; the output
//! is a valid label value.

use k8s_openapi::api::core::v1::PodTemplateSpec;

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-32a of some bytes, continuing from `state`.
pub fn fnv32a(state: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(state, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// Kubernetes' `rand.SafeEncodeString`.
pub fn safe_encode(text: &str) -> String {
    text.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// The hash of any serialisable value with an optional collision count.
pub fn compute<T: serde::Serialize>(value: &T, collision_count: Option<i32>) -> String {
    let rendered = serde_json::to_vec(&canonical(serde_json::to_value(value).unwrap_or_default()))
        .unwrap_or_default();
    let mut hash = fnv32a(FNV_OFFSET, &rendered);
    if let Some(count) = collision_count {
        hash = fnv32a(hash, &(count as u32).to_le_bytes());
    }
    safe_encode(&hash.to_string())
}

/// The `pod-template-hash` of a template.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    compute(template, collision_count)
}

/// JSON with object keys sorted and nulls dropped, so that `"x": null` and an absent field hash the same).
fn canonical(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: std::collections::BTreeMap<String, serde_json::Value> = map
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, canonical(v)))
                .collect();
            serde_json::Value::Object(sorted.into_iter().collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(canonical).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
