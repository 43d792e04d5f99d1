//! skiff-core: the Kubernetes API machinery Skiff needs, with no I/O and no async.
//!
//! Everything here is a plain function over data (`serde_json::Value` objects and the
//! `k8s-openapi` types), so it is unit-tested without sockets, tokio or a store.

pub mod apply;
pub mod defaults;
pub mod field;
pub mod managed_fields;
pub mod names;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod resolv_conf;
pub mod selector;
pub mod status;
pub mod strict;
pub mod table;
pub mod validation;
