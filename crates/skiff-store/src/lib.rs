//! skiff-store: Skiff's replicated key-value store.
//!
//! One Raft group (openraft 0.9, v2 storage) replicates a key-value state machine whose log,
//! vote and state all live in one RocksDB database; members talk gRPC over mutual TLS. The
//! store knows keys, bytes, revisions, leases and members — nothing of Kubernetes.
//!
//! Invariants (DESIGN.md §2; each has a test): durability before acknowledgement; one global
//! revision per committed write, assigned in apply; etcd-style transactions; linearizable reads
//! by default; ordered, gap-free watches with progress notifications; replicated compaction
//! with a history window; leases expired by the leader through the log; snapshots from a
//! consistent view, streamed in chunks; membership by stable ids; fencing by term.
//!
//! Entry points: [`node::start`] runs a member and returns a [`Store`]; [`client::Credentials`]
//! connects tools to a member's KV and admin services.

pub mod apply;
mod background;
pub mod backup;
pub mod batch;
pub mod client;
pub mod cluster;
pub mod config;
pub mod db;
pub mod error;
mod grpc;
pub mod identity;
pub mod lease;
pub mod log_store;
pub mod metrics;
mod network;
pub mod node;
pub mod pb;
pub mod peers;
pub mod raft_types;
pub mod range;
mod read_index;
pub mod snapshot;
pub mod state_machine;
#[cfg(test)]
mod storage_suite;
pub mod store;
pub mod tls;
pub mod types;
pub mod watch;

pub use config::Config;
pub use error::{Error, Result};
pub use store::{Leadership, Status, Store};
