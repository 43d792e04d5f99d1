//! Shared flags for commands that talk to a running member: where it is and which credentials.

use std::path::PathBuf;

use anyhow::Context;
use skiff_store::client::Credentials;

#[derive(clap::Args, Clone, Debug)]
pub struct Target {
    /// Peer addresses of members to try, in order (host:port, comma-separated).
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2380",
        env = "SKIFF_ENDPOINTS"
    )]
    pub endpoints: Vec<String>,
    /// A member's data directory, whose admin certificate authenticates the call.
    #[arg(long, global = true, env = "SKIFF_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
}

impl Target {
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        Credentials::from_data_dir(&self.data_dir).with_context(|| {
            format!(
                "reading the admin certificate from {} (pass --data-dir of a member)",
                self.data_dir.display()
            )
        })
    }
}

/// `/var/lib/skiff` for root, `~/.local/share/skiff` otherwise (DESIGN.md §10).
pub fn default_data_dir() -> PathBuf {
    let is_root = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
    if is_root {
        PathBuf::from("/var/lib/skiff")
    } else {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(".local/share/skiff")
    }
}
