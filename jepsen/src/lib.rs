//! skiff-jepsen: fault injection for Skiff. A run starts `skiff server` members, each in its
//! own network namespace on a private bridge, drives Kubernetes API workloads against them
//! while a nemesis partitions, kills, pauses and restarts members, then checks the recorded
//! history: linearizability of registers, durability of acknowledged creates, and etcd's
//! watch guarantees. See `jepsen/README.md`.

pub mod cluster;
pub mod history;
pub mod lin;
pub mod nemesis;
pub mod net;
pub mod registers;
pub mod run;
pub mod set;
pub mod watch;
pub mod workload;
