//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! into the JSON the rest of Skiff works with.
//!
//! kubectl 1.32+ sends protobuf for every typed-client write (`kubectl create configmap`,
//! `create deployment`, `auth can-i`, ...) and never falls back to JSON. The body is the magic
//! `k8s\0`, then a `runtime.Unknown` envelope naming the object's apiVersion and kind, whose
//! `raw` bytes are the object encoded per k8s.io/api's `generated.proto`.
//!
//! Decoding is generic: the build script derives one table of every Kubernetes message (tag,
//! JSON name, wire type) from the `k8s-pb` and `k8s-openapi` sources, and [`decode`] walks the
//! wire format with it. The JSON is what the JSON API would carry for the same object:
//! camelCase names; `Time` as RFC 3339 seconds and `MicroTime` with 6 decimals (both UTC);
//! `IntOrString` as a number or a string; `Quantity` as its string; `bytes` (Secret data,
//! ConfigMap binaryData) as base64; maps as objects; `RawExtension` and `FieldsV1` as the
//! embedded JSON; `Duration` as Go prints it.
//!
//! Go marshals a struct's non-pointer fields even when they hold their zero value, so presence
//! on the wire does not mean "set". Like Go's `omitempty`, a zero string, number or bool is
//! dropped unless the field is required or is one of the pointer fields where zero means
//! something ([`KEEP_ZERO`], e.g. `replicas: 0`, `automountServiceAccountToken: false`); empty
//! lists and maps are dropped; empty objects are kept (`emptyDir: {}`, `status: {}`); zero
//! times are dropped.
//!
//! Invariants: malformed input (bad magic, truncated varints, lengths past the end, wrong wire
//! types, invalid UTF-8, a kind that differs from the URL's) is an [`Error`], never a panic;
//! message nesting is bounded by [`MAX_DEPTH`]; unknown fields are skipped, as protobuf
//! requires.

use serde_json::{Map, Value};

mod convert;
mod format;
mod schema;
#[cfg(test)]
mod tests;
mod wire;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The first four bytes of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// How deeply messages may nest (custom resource schemas nest the deepest).
pub const MAX_DEPTH: usize = 100;

/// Fields kept even when they hold a zero value: Go pointer fields for which `0`, `false` or
/// `""` differs from "unset" (the API server would default an absent one).
pub const KEEP_ZERO: &[&str] = &[
    "activeDeadlineSeconds",
    "allocateLoadBalancerNodePorts",
    "allowPrivilegeEscalation",
    "allowVolumeExpansion",
    "automountServiceAccountToken",
    "backoffLimit",
    "backoffLimitPerIndex",
    "completions",
    "defaultMode",
    "enableServiceLinks",
    "expirationSeconds",
    "failedJobsHistoryLimit",
    "fsGroup",
    "hostUsers",
    "immutable",
    "leaseTransitions",
    "manualSelector",
    "maxFailedIndexes",
    "mode",
    "optional",
    "parallelism",
    "priority",
    "privileged",
    "progressDeadlineSeconds",
    "readOnlyRootFilesystem",
    "ready",
    "replicas",
    "revisionHistoryLimit",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "serving",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "startingDeadlineSeconds",
    "storageClassName",
    "successfulJobsHistoryLimit",
    "suspend",
    "terminating",
    "terminationGracePeriodSeconds",
    "ttlSecondsAfterFinished",
];

/// Why a protobuf body was refused. All are 400 Bad Request except [`Error::UnknownKind`]
/// (415 Unsupported Media Type: the kind has no protobuf form here); see [`Error::code`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("the body is not a Kubernetes protobuf message: it does not start with \"k8s\\x00\"")]
    BadMagic,
    #[error("malformed protobuf at {path}: {reason}")]
    Malformed { path: String, reason: String },
    #[error("unsupported protobuf content encoding {0:?}")]
    UnsupportedEncoding(String),
    #[error("unsupported content type {0:?} inside the protobuf envelope")]
    UnsupportedContentType(String),
    #[error(
        "the body holds {found_kind} of {found_api_version}, but the request is for {expected_kind} of {expected_api_version}"
    )]
    KindMismatch {
        expected_api_version: String,
        expected_kind: String,
        found_api_version: String,
        found_kind: String,
    },
    #[error("{kind} of {api_version} has no protobuf encoding")]
    UnknownKind { api_version: String, kind: String },
    #[error("invalid value at {path}: {reason}")]
    InvalidValue { path: String, reason: String },
    #[error("the protobuf message nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl Error {
    /// The HTTP status code kube-apiserver uses for this failure.
    pub fn code(&self) -> u16 {
        match self {
            Error::UnknownKind { .. } => 415,
            _ => 400,
        }
    }
}

/// Decodes a protobuf request body that must hold a `kind` object of `api_version` (what the
/// request URL names, e.g. `"v1"`, `"ConfigMap"`), and returns it as JSON with `apiVersion`
/// and `kind` set.
pub fn decode(body: &[u8], api_version: &str, kind: &str) -> Result<Value> {
    let envelope = body.strip_prefix(MAGIC).ok_or(Error::BadMagic)?;
    let unknown = convert::unknown(envelope)?;
    let found_api_version = if unknown.api_version.is_empty() {
        api_version
    } else {
        &unknown.api_version
    };
    let found_kind = if unknown.kind.is_empty() {
        kind
    } else {
        &unknown.kind
    };
    if found_api_version != api_version || found_kind != kind {
        return Err(Error::KindMismatch {
            expected_api_version: api_version.into(),
            expected_kind: kind.into(),
            found_api_version: found_api_version.into(),
            found_kind: found_kind.into(),
        });
    }
    if !unknown.content_encoding.is_empty() {
        return Err(Error::UnsupportedEncoding(unknown.content_encoding));
    }
    let mut object = match unknown.content_type.as_str() {
        "" | "application/vnd.kubernetes.protobuf" => {
            let message = message_for(api_version, kind).ok_or_else(|| Error::UnknownKind {
                api_version: api_version.into(),
                kind: kind.into(),
            })?;
            match convert::message(unknown.raw, message, "", 0)? {
                Some(Value::Object(object)) => object,
                _ => Map::new(),
            }
        }
        "application/json" => match serde_json::from_slice(unknown.raw) {
            Ok(Value::Object(object)) => object,
            Ok(_) | Err(_) => {
                return Err(Error::InvalidValue {
                    path: ".".into(),
                    reason: "the embedded JSON is not an object".into(),
                });
            }
        },
        other => return Err(Error::UnsupportedContentType(other.into())),
    };
    object.insert("apiVersion".into(), Value::String(api_version.into()));
    object.insert("kind".into(), Value::String(kind.into()));
    Ok(Value::Object(object))
}

/// The protobuf message of `kind` in `api_version`, found by the proto package Kubernetes
/// uses for the group (`apps/v1` → `k8s.io.api.apps.v1`).
fn message_for(api_version: &str, kind: &str) -> Option<&'static schema::Message> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let first_label = group.split('.').next().unwrap_or_default();
    let package = match group {
        "" => format!("api.core.{version}"),
        "meta.k8s.io" => format!("apimachinery.pkg.apis.meta.{version}"),
        "apiextensions.k8s.io" => {
            format!("apiextensions_apiserver.pkg.apis.apiextensions.{version}")
        }
        "apiregistration.k8s.io" => format!("kube_aggregator.pkg.apis.apiregistration.{version}"),
        "metrics.k8s.io" => format!("metrics.pkg.apis.metrics.{version}"),
        "rbac.authorization.k8s.io" => format!("api.rbac.{version}"),
        "flowcontrol.apiserver.k8s.io" => format!("api.flowcontrol.{version}"),
        "internal.apiserver.k8s.io" => format!("api.apiserverinternal.{version}"),
        _ => format!("api.{first_label}.{version}"),
    };
    schema::message(&format!("{package}.{}", kind.to_ascii_lowercase()))
}
