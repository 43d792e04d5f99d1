//! Events the controllers record about what they do (`ScalingReplicaSet`, `SuccessfulCreate`,
//! ...), as plain data a plan returns, and their core/v1 `Event` objects.
//!
//! Invariants: reasons and messages are Kubernetes' words; an Event object's name is the
//! involved object's name plus a unique hex suffix, like client-go's recorder.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

/// An event a plan wants recorded on the object it reconciles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

impl Record {
    /// A Normal event.
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Self {
            warning: false,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// A Warning event.
    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Self {
            warning: true,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// The core/v1 Event for a record about `object`, from `component`, at `now`.
pub fn event(record: &Record, object: &ObjectReference, component: &str, now: Timestamp) -> Event {
    let name = format!(
        "{}.{:x}",
        object.name.as_deref().unwrap_or("object"),
        now.as_nanosecond()
    );
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(
                object
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_string()),
            ),
            ..Default::default()
        },
        involved_object: object.clone(),
        reason: Some(record.reason.clone()),
        message: Some(record.message.clone()),
        type_: Some(if record.warning { "Warning" } else { "Normal" }.to_string()),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: None,
        }),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(component.to_string()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    }
}

/// An object reference for an object's metadata.
pub fn reference(api_version: &str, kind: &str, meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.to_string()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}
