//! Network namespaces for tests and benchmarks: created by name, deleted on drop (and by name
//! prefix, to clean up after a run that crashed). Blocking; not used by the proxy itself.

use std::process::{Command, Output, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{command}: {detail}")]
    Command { command: String, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs a command to completion; fails on a non-zero exit with its stderr.
pub fn run(argv: &[&str]) -> Result<Output> {
    let command = argv.join(" ");
    let (program, args) = argv.split_first().ok_or_else(|| Error::Command {
        command: command.clone(),
        detail: "empty command".into(),
    })?;
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(Error::Command {
            command,
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(output)
}

/// A network namespace that is deleted when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `name` (deleting a leftover of the same name first) with loopback up.
    pub fn create(name: &str) -> Result<Netns> {
        let _ = run(&["ip", "netns", "del", name]);
        run(&["ip", "netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
        };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <name>`, to put before a command.
    pub fn prefix(&self) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.name.clone(),
        ]
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> Result<Output> {
        let mut full = vec!["ip", "netns", "exec", self.name.as_str()];
        full.extend_from_slice(argv);
        run(&full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// Deletes every namespace whose name starts with `prefix` (leftovers of crashed runs).
pub fn delete_by_prefix(prefix: &str) {
    let Ok(output) = run(&["ip", "netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some(name) = line.split_whitespace().next()
            && name.starts_with(prefix)
        {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}
