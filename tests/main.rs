//! Skiff's integration tests, one binary, modules by area and tier (t00 basics … t90 regressions).
//! They start real `skiff` processes (build it first: `cargo build -p skiff`; `ops/test` does).

mod t00_tidy;
mod t10_store;
mod t20_failover;
mod t30_restart;
mod t40_membership;
mod t45_backup;
mod t46_quorum;
mod t47_agent_failover;
mod t50_watch;
mod t60_fencing;
mod t70_kubectl;
mod t71_api_cluster;
mod t72_clients;
mod t80_pods;
mod t81_workloads;
mod t82_gc;
mod t90_network;
mod t95_observability;
