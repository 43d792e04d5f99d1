//! The members: `skiff server` processes started with `ip netns exec` (which execs, so the
//! child's pid is the server's), one per namespace, with peers on :2380 and the API on :6443
//! of the member's own address. Process faults are signals: SIGKILL, SIGSTOP, SIGCONT.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_store::client::Credentials;
use skiff_store::pb::raft::MembersRequest;

use crate::net::Net;

pub struct Member {
    pub name: String,
    pub ns: String,
    pub peer: String,
    pub api: String,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
    pub paused: bool,
}

pub struct Cluster {
    pub net: Net,
    pub dir: PathBuf,
    pub skiff_bin: PathBuf,
    pub flags: Vec<String>,
    pub members: Vec<Member>,
}

/// Who leads, as the members see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub leader: Option<usize>,
    pub voters: usize,
}

impl Cluster {
    /// Starts `n` members: m1 creates the cluster, the others join through it one by one.
    pub async fn start(
        net: Net,
        dir: &Path,
        skiff_bin: &Path,
        flags: Vec<String>,
    ) -> anyhow::Result<Cluster> {
        let mut c = Cluster {
            dir: dir.to_path_buf(),
            skiff_bin: skiff_bin.to_path_buf(),
            flags,
            members: Vec::new(),
            net,
        };
        for i in 0..c.net.members.len() {
            let name = format!("m{}", i + 1);
            c.members.push(Member {
                data_dir: dir.join(&name),
                ns: c.net.members[i].clone(),
                peer: format!("{}:2380", c.net.ip(i)),
                api: format!("{}:6443", c.net.ip(i)),
                name,
                child: None,
                paused: false,
            });
        }
        c.spawn(0, &["--init".to_string()])?;
        c.wait_status(Duration::from_secs(60), |s| s.leader.is_some())
            .await
            .context("waiting for m1 to lead")?;
        let token = std::fs::read_to_string(c.members[0].data_dir.join("token"))
            .context("reading m1's join token")?
            .trim()
            .to_string();
        for i in 1..c.members.len() {
            let via = c.members[0].peer.clone();
            c.spawn(i, &["--join".into(), via, "--token".into(), token.clone()])?;
            let want = i + 1;
            c.wait_status(Duration::from_secs(90), |s| s.voters == want)
                .await
                .with_context(|| format!("waiting for {want} voters"))?;
        }
        for i in 0..c.members.len() {
            c.wait_file(&c.kubeconfig(i), Duration::from_secs(30))
                .await?;
        }
        Ok(c)
    }

    async fn wait_file(&self, p: &Path, limit: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + limit;
        while !p.exists() {
            if Instant::now() > until {
                bail!("{} did not appear\n{}", p.display(), self.log_tails());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    pub fn kubeconfig(&self, i: usize) -> PathBuf {
        self.members[i].data_dir.join("admin.kubeconfig")
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.members[i].name))
    }

    /// The last lines of every member's log.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for i in 0..self.members.len() {
            let text = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(10)..].join("\n");
            out.push_str(&format!("--- {} ---\n{tail}\n", self.members[i].name));
        }
        out
    }

    fn spawn(&mut self, i: usize, extra: &[String]) -> anyhow::Result<()> {
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &m.ns])
            .arg(&self.skiff_bin)
            .arg("server")
            .args(extra)
            .args([
                "--name",
                &m.name,
                "--peer-listen",
                &m.peer,
                "--api-listen",
                &m.api,
            ])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(&self.flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("SKIFF_LOG", "info,openraft=warn")
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} in {} (build it: cargo build -p skiff)",
                    self.skiff_bin.display(),
                    m.ns
                )
            })?;
        self.members[i].child = Some(child);
        self.members[i].paused = false;
        Ok(())
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// SIGKILL (continuing a paused process is not needed: SIGKILL works on stopped ones).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.members[i].paused = false;
    }

    /// Starts a stopped member again from its data directory.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if self.is_running(i) {
            return Ok(());
        }
        self.spawn(i, &[])
    }

    fn signal(&self, i: usize, sig: &str) -> anyhow::Result<()> {
        if let Some(child) = &self.members[i].child {
            let ok = Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status()?
                .success();
            if !ok {
                bail!("kill {sig} {} failed", child.id());
            }
        }
        Ok(())
    }

    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, "-STOP")?;
        self.members[i].paused = self.is_running(i);
        Ok(())
    }

    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, "-CONT")?;
        self.members[i].paused = false;
        Ok(())
    }

    /// Ends every fault: heals the network, continues paused members, restarts dead ones.
    pub fn heal_all(&mut self) -> anyhow::Result<()> {
        self.net.heal()?;
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.resume(i)?;
            }
            self.restart(i)?;
        }
        Ok(())
    }

    /// Asks running, unpaused members who leads and how many voters there are; the first
    /// member that answers with a leader wins.
    pub async fn status(&self) -> Option<Status> {
        let creds = Credentials::from_data_dir(&self.members[0].data_dir).ok()?;
        for (i, m) in self.members.iter().enumerate() {
            if !self.is_running(i) || m.paused {
                continue;
            }
            let Ok(mut admin) = creds.admin(&m.peer) else {
                continue;
            };
            let Ok(Ok(r)) =
                tokio::time::timeout(Duration::from_secs(2), admin.members(MembersRequest {}))
                    .await
            else {
                continue;
            };
            let r = r.into_inner();
            let leader = r
                .members
                .iter()
                .find(|x| x.id == r.leader_id && r.leader_id != 0)
                .and_then(|l| self.members.iter().position(|m| m.name == l.name));
            if leader.is_some() {
                return Some(Status {
                    leader,
                    voters: r.members.iter().filter(|x| x.voter).count(),
                });
            }
        }
        None
    }

    pub async fn wait_status(
        &self,
        limit: Duration,
        ok: impl Fn(&Status) -> bool,
    ) -> anyhow::Result<Status> {
        let until = Instant::now() + limit;
        loop {
            if let Some(s) = self.status().await
                && ok(&s)
            {
                return Ok(s);
            }
            if Instant::now() > until {
                bail!(
                    "the cluster did not reach the expected state within {limit:?} (last: {:?})\n{}",
                    self.status().await,
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
