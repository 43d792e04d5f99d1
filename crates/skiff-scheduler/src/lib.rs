//! skiff-scheduler: places pods on nodes like kube-scheduler's default profile.
//!
//! The core is pure and unit-tested without I/O: a `Snapshot` of nodes and assigned pods kept
//! incrementally, a per-pod `Cycle` (pre-filter state), `filter::filter(cycle, node) -> Status`,
//! `score::score(...)`, `schedule::Algorithm::schedule` that picks a node or returns the
//! aggregate `FitError` ("0/3 nodes are available: ..."), and `preemption::preempt`. The shell
//! (`runner`) watches the API with kube-rs, keeps the snapshot, schedules pending pods in priority
//! order, binds them through `pods/binding` and reports failures on the pod's `PodScheduled`
//! condition and as Events. `bench` drives the core (or the API) to measure pods per second.
//!
//! Invariants: cached objects are never mutated (the snapshot holds `Arc`s; an assumed pod is a
//! copy); the core never panics on input; every failure says whether it is unschedulable,
//! unresolvable or an error.

pub mod bench;
pub mod cycle;
pub mod filter;
pub mod metrics;
pub mod preemption;
pub mod queue;
pub mod resources;
pub mod runner;
pub mod schedule;
pub mod score;
pub mod snapshot;
pub mod status;
pub mod terms;

#[cfg(test)]
mod testing;
