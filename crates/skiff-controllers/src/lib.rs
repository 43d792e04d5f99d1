//! skiff-controllers: the control loops that make workloads heal themselves, and the supervisor
//! that runs them (with the scheduler) only while this member is the Raft leader.
//!
//! Each controller is a module with a pure `plan(desired, observed, now) -> changes` function,
//! unit-tested without I/O, and a thin `shell` that watches the API with kube-rs, waits for its
//! caches to sync, recomputes plans level-triggered from the whole observed state, applies the
//! changes through the fenced client the supervisor hands it, records Events, requeues with
//! back-off, and stops at once on a `FencedOut` conflict.
//!
//! Invariants: cached objects are never mutated (plans clone); every write carries the fence
//! term (the client's default header); at most one member's loops act at a time (the supervisor
//! stops them all before acknowledging the loss of leadership).

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod hash;
pub mod index;
pub mod informers;
pub mod ipam;
pub mod job;
pub mod metrics;
pub mod namespace;
pub mod node_lifecycle;
pub mod pdb;
pub mod pvc;
pub mod replicaset;
pub mod serviceaccount;
pub mod shell;
pub mod statefulset;
pub mod supervisor;
pub mod workload;
