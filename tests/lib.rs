//! The integration test harness: real `skiff` processes on loopback with their own data
//! directories, talked to over real gRPC with TLS.
//!
//! A [`cluster::Cluster`] owns its processes and temporary directory; dropping it (also when a
//! test panics) kills every process it started and removes the directory. Waits are
//! conditions with deadlines that report what was last seen, never bare sleeps.

pub mod agent;
pub mod cluster;
pub mod http;
pub mod kubectl;
pub mod kv;
pub mod load;
pub mod wait;

use std::path::PathBuf;

/// The `skiff` binary under test: `$SKIFF_BIN`, else the one next to this test binary's
/// target directory (`ops/test` builds it first).
pub fn skiff_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SKIFF_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/integration-<hash> -> target/<profile>/skiff
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    profile_dir.join("skiff")
}
