//! A local Skiff cluster of real `skiff server` processes on loopback, for benches.
//!
//! Each member has its own data directory under one temporary directory and its own port. The
//! guard kills every process it started (SIGKILL) and removes the directory when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_store::client::Credentials;
use skiff_store::pb::kv::StatusRequest;
use skiff_store::pb::raft::MembersRequest;

pub struct Member {
    pub name: String,
    pub addr: String,
    pub api: String,
    /// The plain-HTTP metrics endpoint (`--metrics-listen`).
    pub metrics: String,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
}

pub struct LocalCluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<Member>,
    pub extra_args: Vec<String>,
}

/// A port on loopback that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl LocalCluster {
    /// Starts `n` members (the first creates the cluster, the others join it) and waits until
    /// all are voters.
    pub async fn start(n: usize, extra_args: &[&str]) -> anyhow::Result<LocalCluster> {
        let dir = tempfile::Builder::new().prefix("skiff-bench-").tempdir()?;
        let mut cluster = LocalCluster {
            dir,
            members: Vec::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n {
            let name = format!("m{}", i + 1);
            let addr = format!("127.0.0.1:{}", free_port()?);
            let data_dir = cluster.dir.path().join(&name);
            let api = format!("127.0.0.1:{}", free_port()?);
            let metrics = format!("127.0.0.1:{}", free_port()?);
            cluster.members.push(Member {
                name,
                addr,
                api,
                metrics,
                data_dir,
                child: None,
            });
        }
        cluster.spawn(0, &["--init"])?;
        cluster.wait_ready(0, Duration::from_secs(30)).await?;
        let token = std::fs::read_to_string(cluster.members[0].data_dir.join("token"))?
            .trim()
            .to_string();
        let first = cluster.members[0].addr.clone();
        for i in 1..n {
            cluster.spawn(i, &["--join", &first, "--token", &token])?;
        }
        cluster.wait_voters(n, Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[i].name))
    }

    /// Starts member `i`'s process with extra flags.
    pub fn spawn(&mut self, i: usize, flags: &[&str]) -> anyhow::Result<()> {
        let exe = std::env::current_exe()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))?;
        let m = &self.members[i];
        let mut cmd = Command::new(exe);
        cmd.arg("server")
            .args(flags)
            .args([
                "--name",
                &m.name,
                "--peer-listen",
                &m.addr,
                "--api-listen",
                &m.api,
                "--metrics-listen",
                &m.metrics,
            ])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // `SKIFF_BENCH_MEMBER_LOG` gives the members another filter (e.g. openraft=info to
            // follow elections); their logs are in the cluster's temporary directory.
            .env(
                "SKIFF_LOG",
                std::env::var("SKIFF_BENCH_MEMBER_LOG")
                    .unwrap_or_else(|_| "info,openraft=warn".to_owned()),
            );
        let child = cmd.spawn().context("starting skiff server")?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// SIGKILLs member `i` and waits for it to be gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.spawn(i, &[])
    }

    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        Ok(Credentials::from_data_dir(&self.members[0].data_dir)?)
    }

    pub fn addrs(&self) -> Vec<String> {
        self.members.iter().map(|m| m.addr.clone()).collect()
    }

    /// Waits until member `i` answers and knows a leader.
    pub async fn wait_ready(&self, i: usize, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if let Ok(creds) = Credentials::from_data_dir(&self.members[i].data_dir)
                && let Ok(mut kv) = creds.kv(&self.members[i].addr)
            {
                match tokio::time::timeout(Duration::from_secs(1), kv.status(StatusRequest {}))
                    .await
                {
                    Ok(Ok(s)) if s.get_ref().leader_id != 0 => {
                        return Ok(s.get_ref().leader_id);
                    }
                    Ok(Ok(_)) => last = "no leader yet".into(),
                    Ok(Err(e)) => last = e.message().to_string(),
                    Err(_) => last = "timed out".into(),
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "member {} not ready after {timeout:?} ({last}); log: {}",
            self.members[i].name,
            self.log_path(i).display()
        )
    }

    /// Waits until `n` members are voters.
    pub async fn wait_voters(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let creds = self.credentials()?;
        while Instant::now() < deadline {
            for m in &self.members {
                if let Ok(mut admin) = creds.admin(&m.addr)
                    && let Ok(Ok(r)) = tokio::time::timeout(
                        Duration::from_secs(1),
                        admin.members(MembersRequest {}),
                    )
                    .await
                    && r.get_ref().members.iter().filter(|m| m.voter).count() >= n
                {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the cluster did not reach {n} voters in {timeout:?}; logs in {}",
            self.dir.path().display()
        )
    }

    /// The index of the member that currently leads, asking any live member.
    pub async fn leader_index(&self) -> Option<usize> {
        let creds = self.credentials().ok()?;
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            let Ok(mut admin) = creds.admin(&m.addr) else {
                continue;
            };
            if let Ok(Ok(r)) =
                tokio::time::timeout(Duration::from_millis(500), admin.members(MembersRequest {}))
                    .await
            {
                let r = r.into_inner();
                let Some(leader) = r
                    .members
                    .iter()
                    .find(|x| x.id == r.leader_id && r.leader_id != 0)
                else {
                    continue;
                };
                return self.members.iter().position(|x| x.name == leader.name);
            }
        }
        None
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
