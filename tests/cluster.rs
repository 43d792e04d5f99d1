//! A cluster of real `skiff server` processes for tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use skiff_store::client::Credentials;
use skiff_store::pb::kv::kv_client::KvClient;
use skiff_store::pb::kv::{StatusRequest, StatusResponse};
use skiff_store::pb::raft::admin_client::AdminClient;
use skiff_store::pb::raft::{MembersRequest, MembersResponse};
use tonic::transport::Channel;

use crate::wait;

pub struct Member {
    pub name: String,
    pub addr: String,
    /// host:port of the member's Kubernetes API.
    pub api: String,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<Member>,
    /// Flags every member is started with (timeouts, snapshot thresholds, ...).
    pub flags: Vec<String>,
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl Cluster {
    /// An empty cluster description (no process started yet).
    pub fn new(flags: &[&str]) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("skiff-test-").tempdir()?;
        Ok(Cluster {
            dir,
            members: Vec::new(),
            flags: flags.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// Starts `n` members (m1 creates the cluster, the rest join) and waits for `n` voters.
    pub async fn start(n: usize, flags: &[&str]) -> anyhow::Result<Cluster> {
        let mut c = Cluster::new(flags)?;
        let first = c.add_slot();
        c.spawn(first, &["--init"])?;
        c.wait_ready(first).await?;
        for _ in 1..n {
            c.join_new_member()?;
        }
        c.wait_voters(n).await?;
        Ok(c)
    }

    /// Reserves a name, address and data dir for a new member; returns its index.
    pub fn add_slot(&mut self) -> usize {
        let i = self.members.len();
        let name = format!("m{}", i + 1);
        let data_dir = self.dir.path().join(&name);
        self.members.push(Member {
            name,
            addr: format!("127.0.0.1:{}", free_port()),
            api: format!("127.0.0.1:{}", free_port()),
            data_dir,
            child: None,
        });
        i
    }

    pub fn token(&self) -> anyhow::Result<String> {
        Ok(
            std::fs::read_to_string(self.members[0].data_dir.join("token"))?
                .trim()
                .to_string(),
        )
    }

    /// Starts a new member that joins through m1; returns its index.
    pub fn join_new_member(&mut self) -> anyhow::Result<usize> {
        let i = self.add_slot();
        let token = self.token()?;
        let via = self.members[0].addr.clone();
        self.spawn(i, &["--join", &via, "--token", &token])?;
        Ok(i)
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[i].name))
    }

    /// The last lines of every member's log (for failure messages).
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for i in 0..self.members.len() {
            let text = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            out.push_str(&format!("--- {} ---\n{tail}\n", self.members[i].name));
        }
        out
    }

    /// The command that starts member `i` (with the cluster's flags and `extra`).
    pub fn command(&self, i: usize, extra: &[&str]) -> anyhow::Result<Command> {
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))?;
        let mut cmd = Command::new(crate::skiff_bin());
        cmd.arg("server")
            .args(extra)
            .args([
                "--name",
                &m.name,
                "--peer-listen",
                &m.addr,
                "--api-listen",
                &m.api,
            ])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(&self.flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("SKIFF_LOG", "info,openraft=warn");
        Ok(cmd)
    }

    pub fn spawn(&mut self, i: usize, extra: &[&str]) -> anyhow::Result<()> {
        let child = self.command(i, extra)?.spawn().with_context(|| {
            format!(
                "starting {} (build it first: cargo build -p skiff)",
                crate::skiff_bin().display()
            )
        })?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal (`"STOP"`, `"CONT"`, ...) to member `i`'s process.
    pub fn signal(&self, i: usize, sig: &str) -> anyhow::Result<()> {
        let pid = self.members[i]
            .child
            .as_ref()
            .map(|c| c.id())
            .ok_or_else(|| anyhow::anyhow!("{} is not running", self.members[i].name))?;
        signal(pid, sig)
    }

    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.spawn(i, &[])
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        Ok(Credentials::from_data_dir(&self.members[0].data_dir)?)
    }

    pub fn kv(&self, i: usize) -> anyhow::Result<KvClient<Channel>> {
        Ok(self.credentials()?.kv(&self.members[i].addr)?)
    }

    pub fn admin(&self, i: usize) -> anyhow::Result<AdminClient<Channel>> {
        Ok(self.credentials()?.admin(&self.members[i].addr)?)
    }

    pub async fn status(&self, i: usize) -> anyhow::Result<StatusResponse> {
        let mut kv = self.kv(i)?;
        let r = tokio::time::timeout(Duration::from_secs(2), kv.status(StatusRequest {})).await??;
        Ok(r.into_inner())
    }

    pub async fn members_of(&self, i: usize) -> anyhow::Result<MembersResponse> {
        let mut admin = self.admin(i)?;
        let r = tokio::time::timeout(Duration::from_secs(3), admin.members(MembersRequest {}))
            .await??;
        Ok(r.into_inner())
    }

    /// Waits until member `i` answers and knows a leader.
    pub async fn wait_ready(&self, i: usize) -> anyhow::Result<()> {
        let what = format!(
            "{} to know a leader\n{}",
            self.members[i].name,
            self.log_tails()
        );
        wait::until(&what, Duration::from_secs(30), || async {
            Ok((self.status(i).await?.leader_id != 0).then_some(()))
        })
        .await
    }

    /// Waits until the configuration has `n` voters (asking any running member).
    pub async fn wait_voters(&self, n: usize) -> anyhow::Result<()> {
        // The members' logs are read when the wait fails, not before it starts.
        wait::until(&format!("{n} voters"), Duration::from_secs(60), || async {
            for i in (0..self.members.len()).filter(|i| self.is_running(*i)) {
                if let Ok(r) = self.members_of(i).await {
                    let voters = r.members.iter().filter(|m| m.voter).count();
                    return Ok((voters == n).then_some(()));
                }
            }
            anyhow::bail!("no member answered")
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", self.log_tails()))
    }

    /// The index of the current leader, as any running member reports it.
    pub async fn leader(&self) -> anyhow::Result<usize> {
        wait::until("a leader", Duration::from_secs(30), || async {
            for i in (0..self.members.len()).filter(|i| self.is_running(*i)) {
                if let Ok(r) = self.members_of(i).await
                    && let Some(l) = r
                        .members
                        .iter()
                        .find(|m| m.id == r.leader_id && r.leader_id != 0)
                    && let Some(idx) = self.members.iter().position(|m| m.name == l.name)
                    && self.is_running(idx)
                {
                    return Ok(Some(idx));
                }
            }
            Ok(None)
        })
        .await
    }

    /// A kube-rs client with the admin kubeconfig, talking to member `i`'s API.
    pub async fn kube_client(&self, i: usize) -> anyhow::Result<kube::Client> {
        Ok(kube::Client::try_from(self.kube_config(i).await?)?)
    }

    /// The admin kubeconfig's client settings, pointed at member `i`'s API.
    pub async fn kube_config(&self, i: usize) -> anyhow::Result<kube::Config> {
        let text = std::fs::read_to_string(self.members[0].data_dir.join("admin.kubeconfig"))?;
        let mut kubeconfig = kube::config::Kubeconfig::from_yaml(&text)?;
        for c in &mut kubeconfig.clusters {
            if let Some(info) = c.cluster.as_mut() {
                info.server = Some(format!("https://{}", self.members[i].api));
            }
        }
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        Ok(config)
    }

    /// Runs the `skiff` binary with these arguments; returns (success, stdout, stderr).
    pub fn run_cli(&self, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
        let out = Command::new(crate::skiff_bin()).args(args).output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        ))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// Sends a signal (`"STOP"`, `"CONT"`, ...) to a process with `kill`.
pub fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{sig} {pid} failed");
    Ok(())
}
