//! Driving real kubectl binaries (pinned versions) and a `skiff up` all-in-one cluster.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cluster::free_port;

/// The versioned kubectl binaries the machine's dispatcher ships (KUBE-API.md §0).
pub fn kubectl_versions() -> Vec<(String, PathBuf)> {
    let dir = std::env::var_os("SKIFF_KUBECTL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/google-cloud-sdk/bin"));
    ["1.32", "1.33"]
        .iter()
        .map(|v| (v.to_string(), dir.join(format!("kubectl.{v}"))))
        .filter(|(_, p)| p.exists())
        .collect()
}

/// A kubectl of one version with its own kubeconfig and discovery cache.
pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    pub cache: tempfile::TempDir,
    pub server: Option<String>,
}

/// A finished kubectl run.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub fn new(bin: PathBuf, kubeconfig: PathBuf) -> anyhow::Result<Kubectl> {
        Ok(Kubectl {
            bin,
            kubeconfig,
            cache: tempfile::tempdir()?,
            server: None,
        })
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path());
        if let Some(s) = &self.server {
            cmd.arg("--server").arg(s);
        }
        cmd.args(args).env_remove("KUBECONFIG");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> anyhow::Result<Out> {
        self.run_with(args, None, &[])
    }

    pub fn run_with(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Out> {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        Ok(Out {
            ok: out.status.success(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs and fails the test with kubectl's output if it failed.
    pub fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args)?;
        anyhow::ensure!(
            out.ok,
            "kubectl {} failed ({}):\n{}{}",
            args.join(" "),
            out.code,
            out.stdout,
            out.stderr
        );
        Ok(out.stdout)
    }

    pub fn apply_stdin(&self, yaml: &str, extra: &[&str]) -> anyhow::Result<Out> {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.run_with(&args, Some(yaml), &[])
    }
}

/// A `skiff up` all-in-one cluster, stopped when dropped.
pub struct Up {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    /// The node agent's name, if one runs (its containers are removed on drop).
    pub node: Option<String>,
    pub api: String,
    pub output: PathBuf,
}

impl Up {
    /// A control plane only (no node agent): for API-level tests.
    pub async fn start() -> anyhow::Result<Up> {
        Up::start_with(None).await
    }

    /// With a node agent named `node` (unique on this machine) on a free node-API port; without
    /// the service proxy and the ingress (host-global nftables rules, DNS address and ports).
    pub async fn start_with_agent(node: &str) -> anyhow::Result<Up> {
        Up::start_with_args(Some(node), &["--no-proxy".into(), "--no-ingress".into()]).await
    }

    /// With a node agent and extra `skiff up` flags (still without the proxy and the ingress).
    pub async fn start_with_agent_args(node: &str, extra: &[&str]) -> anyhow::Result<Up> {
        let mut args: Vec<String> = vec!["--no-proxy".into(), "--no-ingress".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Up::start_with_args(Some(node), &args).await
    }

    async fn start_with(node: Option<&str>) -> anyhow::Result<Up> {
        Up::start_with_args(node, &[]).await
    }

    /// Like [`Up::start_with_agent`] (or [`Up::start`] without a node) with more `skiff up`
    /// flags: the networking tests turn the proxy and ingress on with unique values.
    pub async fn start_with_args(node: Option<&str>, extra: &[String]) -> anyhow::Result<Up> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-up-test-")
            .tempdir()?;
        let api_port = free_port();
        let peer_port = free_port();
        let output = dir.path().join("up.log");
        let log = std::fs::File::create(&output)?;
        let mut args = vec![
            "up".to_string(),
            "--api-port".into(),
            api_port.to_string(),
            "--peer-port".into(),
            peer_port.to_string(),
        ];
        match node {
            Some(n) => args.extend([
                "--name".into(),
                n.to_string(),
                "--node-api-port".into(),
                free_port().to_string(),
            ]),
            None => args.extend([
                "--name".into(),
                format!("api-only-{api_port}"),
                "--no-agent".into(),
            ]),
        }
        args.extend(extra.iter().cloned());
        let child = Command::new(crate::skiff_bin())
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let up = Up {
            dir,
            child: Some(child),
            node: node.map(str::to_string),
            api: format!("127.0.0.1:{api_port}"),
            output,
        };
        crate::wait::until(
            "skiff up to print its KUBECONFIG line",
            Duration::from_secs(60),
            || async {
                let text = std::fs::read_to_string(&up.output).unwrap_or_default();
                if text.lines().any(|l| l.starts_with("error:")) {
                    anyhow::bail!("skiff up failed:\n{text}");
                }
                Ok(text.contains("export KUBECONFIG=").then_some(()))
            },
        )
        .await?;
        Ok(up)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("data/admin.kubeconfig")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// The node join token `skiff up` printed (for a second `skiff agent`).
    pub fn node_token(&self) -> anyhow::Result<String> {
        let log = self.log();
        log.lines()
            .find_map(|l| {
                let rest = l.split_once("--token ")?.1;
                rest.split_whitespace().next().map(str::to_string)
            })
            .ok_or_else(|| anyhow::anyhow!("no node token in skiff up's output:\n{log}"))
    }
}

/// Removes every container and network a test node left in Docker (by its node label).
pub fn remove_node_containers(node: &str) {
    let label = format!("label=io.skiff.node={node}");
    if let Ok(out) = Command::new("docker")
        .args(["ps", "-aq", "--filter", &label])
        .output()
    {
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .output();
        }
    }
    if let Ok(out) = Command::new("docker")
        .args(["network", "ls", "-q", "--filter", &label])
        .output()
    {
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["network", "rm"])
                .args(&ids)
                .output();
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(node) = &self.node {
            remove_node_containers(node);
        }
        // The agent's secret and memory volumes are tmpfs mounts under the data directory.
        unmount_under(self.dir.path());
    }
}

/// Unmounts (lazily) every mount point under `dir`, deepest first, so the directory can be
/// removed: a killed agent leaves its tmpfs volumes mounted.
pub fn unmount_under(dir: &std::path::Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        // mountinfo escapes space, tab, newline and backslash as octal.
        .map(|p| {
            PathBuf::from(
                p.replace("\\040", " ")
                    .replace("\\011", "\t")
                    .replace("\\012", "\n")
                    .replace("\\134", "\\"),
            )
        })
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(&p).output();
    }
}

/// Writes the CA, client certificate and key of a kubeconfig to files in `dir` (for curl).
pub fn credentials_from_kubeconfig(
    kubeconfig: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    use base64::Engine;
    let text = std::fs::read_to_string(kubeconfig)?;
    let field = |name: &str| -> anyhow::Result<Vec<u8>> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name}:")))
            .ok_or_else(|| anyhow::anyhow!("{name} not in kubeconfig"))?;
        let value = line.split_once(':').map(|(_, v)| v.trim()).unwrap_or("");
        Ok(base64::engine::general_purpose::STANDARD.decode(value)?)
    };
    let paths = (
        dir.join("ca.crt"),
        dir.join("client.crt"),
        dir.join("client.key"),
    );
    std::fs::write(&paths.0, field("certificate-authority-data")?)?;
    std::fs::write(&paths.1, field("client-certificate-data")?)?;
    std::fs::write(&paths.2, field("client-key-data")?)?;
    Ok(paths)
}
