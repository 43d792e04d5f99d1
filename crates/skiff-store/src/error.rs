//! The errors of the store's public API, and their mapping to and from gRPC statuses.
//!
//! Each error says whether the caller may retry: `NoLeader`, `Timeout` (for reads) and
//! `Shutdown` are safe to retry; `OutcomeUnknown` means a write may or may not have committed
//! and must not be retried blindly; the rest are answers about the request itself.

use std::time::Duration;

use crate::types::ApplyError;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "no leader is known: the cluster is electing one or has lost its majority; retry shortly"
    )]
    NoLeader,
    #[error("timed out after {0:?} waiting for the cluster; retry")]
    Timeout(Duration),
    #[error("the outcome of the write is unknown ({0}); read before retrying")]
    OutcomeUnknown(String),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(
        "required revision {requested} has been compacted (compact revision {compact_revision})"
    )]
    Compacted {
        requested: u64,
        compact_revision: u64,
    },
    #[error("required revision {requested} is a future revision (current revision {current})")]
    FutureRevision { requested: u64, current: u64 },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("request too large: {0}")]
    TooLarge(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("membership change failed: {0}")]
    Membership(String),
    #[error("the member is shutting down")]
    Shutdown,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether retrying the same call is safe and may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::NoLeader | Error::Timeout(_) | Error::Shutdown)
    }

    pub fn to_status(&self) -> tonic::Status {
        use tonic::Code;
        let code = match self {
            Error::NoLeader | Error::Shutdown => Code::Unavailable,
            Error::Timeout(_) => Code::DeadlineExceeded,
            Error::OutcomeUnknown(_) => Code::Unknown,
            Error::Apply(ApplyError::Fenced { .. }) => Code::Aborted,
            Error::Apply(ApplyError::LeaseNotFound(_)) | Error::NotFound(_) => Code::NotFound,
            Error::Apply(ApplyError::LeaseExists(_))
            | Error::Apply(ApplyError::MemberNameTaken(_)) => Code::AlreadyExists,
            Error::Apply(_) | Error::Invalid(_) => Code::InvalidArgument,
            Error::Compacted { .. } => Code::OutOfRange,
            Error::FutureRevision { .. } => Code::OutOfRange,
            Error::TooLarge(_) => Code::ResourceExhausted,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::Storage(_) => Code::Internal,
            Error::Membership(_) => Code::FailedPrecondition,
        };
        let detail = postcard::to_stdvec(self).unwrap_or_default();
        tonic::Status::with_details(code, self.to_string(), detail.into())
    }

    /// Recovers the error a member sent (or describes a transport failure).
    pub fn from_status(status: &tonic::Status) -> Error {
        if let Ok(e) = postcard::from_bytes::<Error>(status.details()) {
            return e;
        }
        match status.code() {
            tonic::Code::Unauthenticated => Error::Unauthenticated(status.message().to_string()),
            tonic::Code::PermissionDenied => Error::PermissionDenied(status.message().to_string()),
            tonic::Code::InvalidArgument => Error::Invalid(status.message().to_string()),
            tonic::Code::NotFound => Error::NotFound(status.message().to_string()),
            tonic::Code::ResourceExhausted => Error::TooLarge(status.message().to_string()),
            tonic::Code::Unavailable => Error::NoLeader,
            _ => Error::OutcomeUnknown(format!("{}: {}", status.code(), status.message())),
        }
    }
}

impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        WireError::from(self).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Error {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(WireError::deserialize(d)?.into())
    }
}

/// The encoding of [`Error`] between members (Duration as milliseconds).
#[derive(serde::Serialize, serde::Deserialize)]
enum WireError {
    NoLeader,
    Timeout(u64),
    OutcomeUnknown(String),
    Apply(ApplyError),
    Compacted {
        requested: u64,
        compact_revision: u64,
    },
    FutureRevision {
        requested: u64,
        current: u64,
    },
    Invalid(String),
    TooLarge(String),
    NotFound(String),
    PermissionDenied(String),
    Unauthenticated(String),
    Storage(String),
    Membership(String),
    Shutdown,
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        match e.clone() {
            Error::NoLeader => WireError::NoLeader,
            Error::Timeout(d) => WireError::Timeout(d.as_millis() as u64),
            Error::OutcomeUnknown(s) => WireError::OutcomeUnknown(s),
            Error::Apply(a) => WireError::Apply(a),
            Error::Compacted {
                requested,
                compact_revision,
            } => WireError::Compacted {
                requested,
                compact_revision,
            },
            Error::FutureRevision { requested, current } => {
                WireError::FutureRevision { requested, current }
            }
            Error::Invalid(s) => WireError::Invalid(s),
            Error::TooLarge(s) => WireError::TooLarge(s),
            Error::NotFound(s) => WireError::NotFound(s),
            Error::PermissionDenied(s) => WireError::PermissionDenied(s),
            Error::Unauthenticated(s) => WireError::Unauthenticated(s),
            Error::Storage(s) => WireError::Storage(s),
            Error::Membership(s) => WireError::Membership(s),
            Error::Shutdown => WireError::Shutdown,
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NoLeader => Error::NoLeader,
            WireError::Timeout(ms) => Error::Timeout(Duration::from_millis(ms)),
            WireError::OutcomeUnknown(s) => Error::OutcomeUnknown(s),
            WireError::Apply(a) => Error::Apply(a),
            WireError::Compacted {
                requested,
                compact_revision,
            } => Error::Compacted {
                requested,
                compact_revision,
            },
            WireError::FutureRevision { requested, current } => {
                Error::FutureRevision { requested, current }
            }
            WireError::Invalid(s) => Error::Invalid(s),
            WireError::TooLarge(s) => Error::TooLarge(s),
            WireError::NotFound(s) => Error::NotFound(s),
            WireError::PermissionDenied(s) => Error::PermissionDenied(s),
            WireError::Unauthenticated(s) => Error::Unauthenticated(s),
            WireError::Storage(s) => Error::Storage(s),
            WireError::Membership(s) => Error::Membership(s),
            WireError::Shutdown => Error::Shutdown,
        }
    }
}
