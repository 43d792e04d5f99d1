//! Integration tests of the agent against the machine's real Docker Engine: pods run through
//! the same pod workers the API shell uses (fed pod objects directly), and the node API is
//! exercised over real mutual TLS with WebSocket and SPDY clients written here.
//!
//! Every test runs under its own node name (`t<pid>x<n>`), so everything it creates carries
//! `io.skiff.node=<that name>`; the harness removes all of it when the test ends, also on
//! failure.

mod client;
mod harness;
mod t10_pods;
mod t20_logs_exec;
mod t30_port_forward;
mod t40_probes;
mod t50_volumes;
mod t60_resilience;
mod t70_bootstrap;
mod t75_failover;
