//! The thin shell around the `nft` program: applies a transaction from [`crate::script`], lists
//! our table, removes it, and clears conntrack entries of removed UDP endpoints.
//!
//! [`Nft`] keeps the last rule set it applied successfully, so the next sync is incremental;
//! after any failure it forgets it and the next sync is a full one (which lists the table and
//! removes whatever is stale). The command prefix is configurable so tests and benchmarks run
//! the same code inside a network namespace (`ip netns exec <ns> nft`).

use std::collections::BTreeSet;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::rules::{RuleSet, TABLE};
use crate::script;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("nft failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
    #[error("the nft command prefix is empty")]
    NoCommand,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `nft` (possibly behind a prefix such as `ip netns exec <ns>`).
#[derive(Debug)]
pub struct Nft {
    command: Vec<String>,
    table: String,
    applied: Option<RuleSet>,
    conntrack: Option<Vec<String>>,
}

impl Nft {
    /// `command` is the argv that runs nft, e.g. `["nft"]` or `["ip","netns","exec","n1","nft"]`.
    /// `conntrack` likewise for the conntrack tool (optional: without it, stale UDP flows of
    /// removed endpoints are left to expire).
    pub fn new(command: Vec<String>, conntrack: Option<Vec<String>>) -> Nft {
        Nft {
            command,
            table: TABLE.to_string(),
            applied: None,
            conntrack,
        }
    }

    /// Owns `table ip <table>` instead of the default `table ip skiff`.
    pub fn with_table(mut self, table: &str) -> Nft {
        self.table = table.to_string();
        self
    }

    /// The rule set in effect after the last successful sync.
    pub fn applied(&self) -> Option<&RuleSet> {
        self.applied.as_ref()
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let (program, prefix) = self.command.split_first().ok_or(Error::NoCommand)?;
        let mut command = Command::new(program);
        command
            .args(prefix)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| Error::Spawn {
            program: program.clone(),
            source,
        })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .await
                .map_err(|source| Error::Spawn {
                    program: program.clone(),
                    source,
                })?;
            drop(pipe);
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|source| Error::Spawn {
                program: program.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(Error::Failed {
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Applies one transaction from a script.
    pub async fn apply_script(&self, script: &str) -> Result<()> {
        self.run(&["-f", "-"], Some(script)).await.map(|_| ())
    }

    /// Names of the objects in our table (empty when it does not exist).
    pub async fn existing(&self) -> Result<script::Existing> {
        match self
            .run(&["-t", "list", "table", "ip", &self.table], None)
            .await
        {
            Ok(text) => Ok(script::parse_listing(&text)),
            // "No such file or directory": the table does not exist yet.
            Err(Error::Failed { stderr, .. }) if stderr.contains("No such file") => {
                Ok(script::Existing::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Makes `desired` the content of our table in one transaction (kept, without a copy, as
    /// the base of the next incremental sync).
    pub async fn sync(&mut self, desired: RuleSet) -> Result<()> {
        let previous = self.applied.take();
        let text = match &previous {
            Some(previous) => script::render_in(
                &self.table,
                Some(previous),
                &desired,
                &script::Existing::default(),
            ),
            None => script::render_in(&self.table, None, &desired, &self.existing().await?),
        };
        self.apply_script(&text).await?;
        if let Some(previous) = &previous {
            self.clear_stale_udp(previous, &desired).await;
        }
        self.applied = Some(desired);
        Ok(())
    }

    /// Removes our table, and only it.
    pub async fn cleanup(&mut self) -> Result<()> {
        self.applied = None;
        self.apply_script(&script::cleanup_in(&self.table)).await
    }

    async fn clear_stale_udp(&self, previous: &RuleSet, desired: &RuleSet) {
        let Some(command) = &self.conntrack else {
            return;
        };
        for ip in stale_udp_endpoints(previous, desired) {
            let Some((program, prefix)) = command.split_first() else {
                return;
            };
            let result = Command::new(program)
                .args(prefix)
                .args(["-D", "-p", "udp", "--reply-src", &ip])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, endpoint = %ip, "cannot clear conntrack entries");
            }
        }
    }
}

/// Endpoint addresses that some UDP endpoint chain DNATed to before and no longer does: their
/// conntrack entries would keep sending datagrams to a dead backend (UDP has no reset).
pub fn stale_udp_endpoints(previous: &RuleSet, desired: &RuleSet) -> BTreeSet<String> {
    let targets = |set: &RuleSet| -> BTreeSet<String> {
        set.chains
            .values()
            .flat_map(|c| c.rules.iter())
            .filter_map(|r| r.strip_prefix("meta l4proto udp dnat to "))
            .filter_map(|t| t.split(':').next())
            .map(str::to_string)
            .collect()
    };
    let now = targets(desired);
    targets(previous)
        .into_iter()
        .filter(|ip| !now.contains(ip))
        .collect()
}
