//! A `skiff agent` process of its own (so a test can stop it and start it again, against the
//! same or another cluster) and what its pods look like in Docker. Dropping an [`Agent`] kills
//! its process and removes every container and network labelled with its node, and the tmpfs
//! mounts under its data directory, also when the test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cluster::free_port;
use crate::kubectl::{remove_node_containers, unmount_under};

pub struct Agent {
    pub node: String,
    /// Its data directory: the node's identity (`tls/`) and pod volumes.
    pub data_dir: PathBuf,
    pub node_api_port: u16,
    /// Where its plain-HTTP `/metrics` listens (127.0.0.1), if it serves them.
    pub metrics_port: Option<u16>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The node join token in a `skiff server`/`skiff up` output (the `skiff agent ... --token`
/// line), if printed yet.
pub fn node_token_in(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let rest = l.split_once("skiff agent ")?.1.split_once("--token ")?.1;
        rest.split_whitespace().next().map(str::to_string)
    })
}

impl Agent {
    /// Starts `skiff agent` for `node` against `server` (`https://host:port`, or several
    /// comma-separated) with `token`.
    pub fn start(server: &str, token: &str, node: &str) -> anyhow::Result<Agent> {
        Self::start_with(server, token, node, false)
    }

    /// Like [`Agent::start`], serving its metrics on [`Agent::metrics_port`] when `metrics`.
    pub fn start_with(
        server: &str,
        token: &str,
        node: &str,
        metrics: bool,
    ) -> anyhow::Result<Agent> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-agent-test-")
            .tempdir()?;
        let mut agent = Agent {
            node: node.to_string(),
            data_dir: dir.path().join("data"),
            node_api_port: free_port(),
            metrics_port: metrics.then(free_port),
            dir,
            child: None,
        };
        agent.spawn(server, token)?;
        Ok(agent)
    }

    /// The agent's metrics in the text format (`curl`), if it serves them.
    pub fn metrics(&self) -> anyhow::Result<String> {
        let port = self
            .metrics_port
            .context("this agent was started without metrics (Agent::start_with)")?;
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5"])
            .arg(format!("http://127.0.0.1:{port}/metrics"))
            .output()
            .context("running curl")?;
        anyhow::ensure!(
            out.status.success(),
            "curl of the agent's metrics failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the process (again) with the same node name, data directory and node API port.
    pub fn spawn(&mut self, server: &str, token: &str) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "the agent is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(crate::skiff_bin())
            .args(["agent", "--server", server, "--name", &self.node])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--node-ip", "127.0.0.1", "--metrics-listen"])
            .arg(match self.metrics_port {
                Some(port) => format!("127.0.0.1:{port}"),
                None => "off".to_string(),
            })
            .arg("--node-api-listen")
            .arg(format!("127.0.0.1:{}", self.node_api_port))
            .env("SKIFF_NODE_TOKEN", token)
            .env("SKIFF_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", crate::skiff_bin().display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGTERM, as `systemctl stop` does (the agent leaves its containers running), and waits
    /// for the process to end; SIGKILL after 20 s.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!(
            "the agent did not stop within 20 s of SIGTERM:\n{}",
            self.log()
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_node_containers(&self.node);
        unmount_under(self.dir.path());
    }
}

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A node name unique on this machine whose derived pod network (10.42.<hash>.0/24, used until
/// the cluster assigns one) overlaps no Docker network that exists now.
pub fn unique_node_name(tag: &str) -> String {
    let in_use = docker(&["network", "ls", "-q"])
        .and_then(|ids| {
            let mut args = vec![
                "network",
                "inspect",
                "-f",
                "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
            ];
            args.extend(ids.split_whitespace());
            docker(&args)
        })
        .unwrap_or_default();
    let candidate = |k: u32| format!("{tag}-{}-{k}", std::process::id());
    (0..64)
        .map(candidate)
        .find(|name| {
            !in_use
                .split_whitespace()
                .any(|subnet| subnet == derived_pod_cidr(name))
        })
        .unwrap_or_else(|| candidate(0))
}

/// skiff-agent's `config::derived_pod_cidr` (FNV-1a of the name).
fn derived_pod_cidr(node: &str) -> String {
    let hash = node.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    format!("10.42.{}.0/24", 1 + hash % 254)
}

/// Every container (any state) of pod `pod` on `node`, as `id startedAt status` lines, sorted.
pub fn pod_containers(node: &str, pod: &str) -> anyhow::Result<Vec<String>> {
    // A container removed between listing and inspecting makes inspect fail: ask again.
    pod_containers_once(node, pod)
        .or_else(|_| pod_containers_once(node, pod))
        .or_else(|_| pod_containers_once(node, pod))
}

fn pod_containers_once(node: &str, pod: &str) -> anyhow::Result<Vec<String>> {
    let ids = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=io.skiff.node={node}"),
        "--filter",
        &format!("label=io.skiff.pod.name={pod}"),
    ])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec![
        "inspect",
        "-f",
        "{{.Id}} {{.State.StartedAt}} {{.State.Status}}",
    ];
    args.extend(ids);
    let mut lines: Vec<String> = docker(&args)?.lines().map(str::to_string).collect();
    lines.sort();
    Ok(lines)
}

/// The ids of the running app containers (not the sandbox) of pod `pod` on `node`.
pub fn running_app_containers(node: &str, pod: &str) -> anyhow::Result<Vec<String>> {
    let ids = docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=io.skiff.node={node}"),
        "--filter",
        &format!("label=io.skiff.pod.name={pod}"),
        "--filter",
        "label=io.skiff.kind=container",
    ])?;
    Ok(ids.split_whitespace().map(str::to_string).collect())
}
