//! Kubernetes `Status` errors: every failure the API reports, with its HTTP code, reason, message
//! and details, and the `Status` JSON it serialises to.
//!
//! Invariants: the code and the reason always agree (a constructor sets both); messages have the
//! exact shape kube-apiserver uses (`pods "x" not found`, `Deployment.apps "x" is invalid: ...`)
//! because clients and users match on them; `details.kind` of resource errors is the plural
//! resource name, as in Kubernetes, while `Invalid` carries the Kind.

use serde_json::{Map, Value, json};

use crate::field;

mod reason;

pub use reason::Reason;

/// One cause in `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ... (empty when there is none).
    pub reason: String,
    pub message: String,
    /// The field path (`spec.replicas`); empty when the cause is not about one field.
    pub field: String,
}

impl Cause {
    /// The cause for one field error.
    pub fn from_field_error(error: &field::Error) -> Self {
        Self {
            reason: error.error_type.cause_reason().to_string(),
            message: error.body(),
            field: error.path.to_string(),
        }
    }
}

/// `details` of a Status: what the failure was about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pub name: String,
    pub group: String,
    /// The resource (plural) for resource errors; the Kind for `Invalid`.
    pub kind: String,
    pub uid: String,
    pub causes: Vec<Cause>,
    pub retry_after_seconds: Option<u32>,
}

impl Details {
    fn about(group: &str, kind: &str, name: &str) -> Self {
        Self {
            name: name.to_string(),
            group: group.to_string(),
            kind: kind.to_string(),
            ..Self::default()
        }
    }

    fn to_json(&self) -> Value {
        let mut details = Map::new();
        for (key, value) in [
            ("name", &self.name),
            ("group", &self.group),
            ("kind", &self.kind),
            ("uid", &self.uid),
        ] {
            if !value.is_empty() {
                details.insert(key.to_string(), json!(value));
            }
        }
        if !self.causes.is_empty() {
            let causes = self.causes.iter().map(cause_json).collect();
            details.insert("causes".to_string(), Value::Array(causes));
        }
        if let Some(seconds) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".to_string(), json!(seconds));
        }
        Value::Object(details)
    }
}

fn cause_json(cause: &Cause) -> Value {
    let mut object = Map::new();
    for (key, value) in [
        ("reason", &cause.reason),
        ("message", &cause.message),
        ("field", &cause.field),
    ] {
        if !value.is_empty() {
            object.insert(key.to_string(), json!(value));
        }
    }
    Value::Object(object)
}

/// A failed API request, as a Kubernetes `Status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub reason: Reason,
    pub message: String,
    /// Boxed so that `Result<T, Error>` stays small.
    pub details: Option<Box<Details>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `pods`, or `deployments.apps`: how Kubernetes names a resource in messages.
pub fn qualified_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// `Pod`, or `Deployment.apps`: how Kubernetes names a kind in messages.
pub fn qualified_kind(group: &str, kind: &str) -> String {
    qualified_resource(group, kind)
}

impl Error {
    fn plain(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(reason: Reason, message: String, details: Details) -> Self {
        Self {
            reason,
            message,
            details: Some(Box::new(details)),
        }
    }

    /// The same error with these causes added to its details (server-side apply conflicts,
    /// exec exit codes).
    pub fn with_causes(mut self, causes: Vec<Cause>) -> Self {
        let details = self.details.get_or_insert_with(Box::default);
        details.causes.extend(causes);
        self
    }

    /// The HTTP status code.
    /// Replaces the message (keeping reason, code and details).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn code(&self) -> u16 {
        self.reason.code()
    }

    /// Whether a client may retry the same request later and expect it to succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.reason,
            Reason::TooManyRequests
                | Reason::ServiceUnavailable
                | Reason::Timeout
                | Reason::Conflict
        )
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::plain(Reason::BadRequest, message)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        let message = message.into();
        let message = if message.is_empty() {
            "Unauthorized".to_string()
        } else {
            message
        };
        Self::plain(Reason::Unauthorized, message)
    }

    /// 403: `pods "x" is forbidden: <why>` (or `pods is forbidden: <why>` without a name).
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let qualified = qualified_resource(group, resource);
        let message = if name.is_empty() {
            format!("{qualified} is forbidden: {why}")
        } else {
            format!("{qualified} {} is forbidden: {why}", field::quote(name))
        };
        Self::with_details(
            Reason::Forbidden,
            message,
            Details::about(group, resource, name),
        )
    }

    /// 404: `pods "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let message = format!(
            "{} {} not found",
            qualified_resource(group, resource),
            field::quote(name)
        );
        Self::with_details(
            Reason::NotFound,
            message,
            Details::about(group, resource, name),
        )
    }

    /// 404 for a path that names no resource at all.
    pub fn path_not_found() -> Self {
        Self::plain(
            Reason::NotFound,
            "the server could not find the requested resource",
        )
    }

    /// 409: `configmaps "x" already exists`.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let message = format!(
            "{} {} already exists",
            qualified_resource(group, resource),
            field::quote(name)
        );
        Self::with_details(
            Reason::AlreadyExists,
            message,
            Details::about(group, resource, name),
        )
    }

    /// 409: `Operation cannot be fulfilled on configmaps "x": <why>`.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} {}: {why}",
            qualified_resource(group, resource),
            field::quote(name)
        );
        Self::with_details(
            Reason::Conflict,
            message,
            Details::about(group, resource, name),
        )
    }

    /// 409 for a stale `resourceVersion` precondition.
    pub fn conflict_modified(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 410 `Gone`.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::plain(Reason::Gone, message)
    }

    /// 410 `Expired`: a watch or continue token from a compacted revision.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::plain(Reason::Expired, message)
    }

    /// 413: `Request entity too large: <why>`.
    pub fn request_entity_too_large(why: &str) -> Self {
        Self::plain(
            Reason::RequestEntityTooLarge,
            format!("Request entity too large: {why}"),
        )
    }

    /// 415: the body's media type is not one the server decodes.
    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        let message = format!(
            "the body of the request was in an unknown format ({content_type}) - accepted media types include: {}",
            accepted.join(", ")
        );
        Self::plain(Reason::UnsupportedMediaType, message)
    }

    /// 406: no acceptable response media type.
    pub fn not_acceptable(accepted: &[&str]) -> Self {
        let message = format!(
            "only the following media types are accepted: {}",
            accepted.join(", ")
        );
        Self::plain(Reason::NotAcceptable, message)
    }

    /// 405: the verb is not supported on this resource.
    pub fn method_not_allowed() -> Self {
        Self::plain(
            Reason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
        )
    }

    /// 422: `Deployment.apps "x" is invalid: <errors>` with one cause per field error.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[field::Error]) -> Self {
        let aggregate = match errors {
            [] => String::new(),
            [single] => single.to_string(),
            many => {
                let lines: Vec<String> = many.iter().map(ToString::to_string).collect();
                format!("[{}]", lines.join(", "))
            }
        };
        let message = format!(
            "{} {} is invalid: {aggregate}",
            qualified_kind(group, kind),
            field::quote(name)
        );
        let mut details = Details::about(group, kind, name);
        details.causes = errors.iter().map(Cause::from_field_error).collect();
        Self::with_details(Reason::Invalid, message, details)
    }

    /// 429: try again after `retry_after_seconds`.
    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: u32) -> Self {
        let details = Details {
            retry_after_seconds: Some(retry_after_seconds),
            ..Details::default()
        };
        Self::with_details(Reason::TooManyRequests, message.into(), details)
    }

    /// 500: `Internal error occurred: <why>`.
    pub fn internal(why: &str) -> Self {
        let details = Details {
            causes: vec![Cause {
                reason: String::new(),
                message: why.to_string(),
                field: String::new(),
            }],
            ..Details::default()
        };
        Self::with_details(
            Reason::InternalError,
            format!("Internal error occurred: {why}"),
            details,
        )
    }

    /// 503.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::plain(Reason::ServiceUnavailable, message)
    }

    /// 504: `Timeout: <why>`.
    pub fn timeout(why: &str, retry_after_seconds: u32) -> Self {
        let details = Details {
            retry_after_seconds: Some(retry_after_seconds),
            ..Details::default()
        };
        Self::with_details(Reason::Timeout, format!("Timeout: {why}"), details)
    }

    /// The `Status` object, ready to serialise as the response body.
    pub fn to_json(&self) -> Value {
        let mut status = status_skeleton("Failure");
        if !self.message.is_empty() {
            status.insert("message".to_string(), json!(self.message));
        }
        status.insert("reason".to_string(), json!(self.reason.as_str()));
        if let Some(details) = &self.details {
            status.insert("details".to_string(), details.to_json());
        }
        status.insert("code".to_string(), json!(self.code()));
        Value::Object(status)
    }
}

fn status_skeleton(outcome: &str) -> Map<String, Value> {
    let mut status = Map::new();
    status.insert("kind".to_string(), json!("Status"));
    status.insert("apiVersion".to_string(), json!("v1"));
    status.insert("metadata".to_string(), json!({}));
    status.insert("status".to_string(), json!(outcome));
    status
}

/// A `Success` status (the body of a DELETE that removed the object at once, an eviction, ...).
pub fn success(details: Option<&Details>) -> Value {
    let mut status = status_skeleton("Success");
    if let Some(details) = details {
        status.insert("details".to_string(), details.to_json());
    }
    status.insert("code".to_string(), json!(200));
    Value::Object(status)
}

#[cfg(test)]
mod tests;
