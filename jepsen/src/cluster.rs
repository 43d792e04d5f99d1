//! The members: `skiff server` processes started with `ip netns exec` (which execs, so the
//! child's pid is the server's), one per namespace, with peers on :2380 and the API on :6443
//! of the member's own address. Process faults are signals: SIGKILL, SIGSTOP, SIGCONT.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_store::client::Credentials;
use skiff_store::pb::raft::{MembersRequest, RemoveMemberRequest};

use crate::net::Net;

pub struct Member {
    pub name: String,
    pub ns: String,
    pub peer: String,
    pub api: String,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
    pub paused: bool,
    /// The libfaketime setting this member runs under, if any.
    pub faketime: Option<String>,
}

pub struct Cluster {
    pub net: Net,
    pub dir: PathBuf,
    pub skiff_bin: PathBuf,
    pub flags: Vec<String>,
    pub members: Vec<Member>,
    /// m1's join token and admin credentials, kept so that any member may be wiped.
    token: String,
    creds: Option<Credentials>,
}

/// Who leads, as the members see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub leader: Option<usize>,
    pub voters: usize,
    /// A membership change is half done (the configuration is a joint one).
    pub changing: bool,
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
            token: String::new(),
            creds: None,
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
                faketime: None,
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
        c.token = token.clone();
        c.creds = Some(
            Credentials::from_data_dir(&c.members[0].data_dir)
                .context("reading m1's admin credentials")?,
        );
        for i in 1..c.members.len() {
            let via = c.members[0].peer.clone();
            c.spawn(i, &["--join".into(), via, "--token".into(), token.clone()])?;
            let want = i + 1;
            c.wait_status(Duration::from_secs(90), |s| s.voters == want && !s.changing)
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
            .envs(faketime_env(m.faketime.as_deref()))
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

    /// Whether a started member has exited on its own (and reaps it).
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let child = self.members[i].child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.members[i].child = None;
                Some(status)
            }
            _ => None,
        }
    }

    /// Restarts member `i` under libfaketime (`FAKETIME` syntax), or normally with `None`.
    pub fn restart_with_clock(&mut self, i: usize, faketime: Option<String>) -> anyhow::Result<()> {
        self.kill(i);
        self.members[i].faketime = faketime;
        self.spawn(i, &[])
    }

    /// Removes member `i` from the cluster (asking the running members in turn), kills it and
    /// deletes its data directory.
    pub async fn remove_and_wipe(&mut self, i: usize, limit: Duration) -> anyhow::Result<()> {
        let creds = self.creds.clone().context("no admin credentials")?;
        let name = self.members[i].name.clone();
        let until = Instant::now() + limit;
        let mut last = String::new();
        'done: loop {
            for (j, m) in self.members.iter().enumerate() {
                if j == i || !self.is_running(j) || m.paused {
                    continue;
                }
                let mut admin = creds.admin(&m.peer)?;
                let req = RemoveMemberRequest { name: name.clone() };
                match tokio::time::timeout(Duration::from_secs(10), admin.remove_member(req)).await
                {
                    Ok(Ok(_)) => break 'done,
                    Ok(Err(s))
                        if matches!(
                            skiff_store::Error::from_status(&s),
                            skiff_store::Error::NotFound(_)
                        ) =>
                    {
                        break 'done;
                    }
                    Ok(Err(s)) => last = format!("{}: {}", m.name, s.message()),
                    Err(_) => last = format!("{}: timed out", m.name),
                }
            }
            if Instant::now() > until {
                bail!("removing {name} failed: {last}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.kill(i);
        let dir = &self.members[i].data_dir;
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("deleting {}", dir.display()))?;
        }
        Ok(())
    }

    /// Starts a wiped member `i` again as a new member joining through a running one.
    pub fn join_fresh(&mut self, i: usize) -> anyhow::Result<()> {
        let via = (0..self.members.len())
            .find(|&j| j != i && self.is_running(j) && !self.members[j].paused)
            .context("no running member to join through")?;
        let args = [
            "--join".to_string(),
            self.members[via].peer.clone(),
            "--token".to_string(),
            self.token.clone(),
        ];
        self.members[i].faketime = None;
        self.spawn(i, &args)
    }

    /// How far member `i`'s clock is from the harness's, in seconds, judged by the timestamp
    /// of its newest log line written after byte `from` of its log.
    pub fn log_clock_offset(&self, i: usize, from: usize) -> Option<i64> {
        let text = std::fs::read(self.log_path(i)).ok()?;
        let text = String::from_utf8_lossy(text.get(from..)?);
        let stamp = text.lines().rev().find_map(log_timestamp)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs() as i64;
        Some(stamp - now)
    }

    pub fn log_len(&self, i: usize) -> usize {
        std::fs::metadata(self.log_path(i)).map_or(0, |m| m.len() as usize)
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
        let creds = match &self.creds {
            Some(c) => c.clone(),
            None => Credentials::from_data_dir(&self.members[0].data_dir).ok()?,
        };
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
                    changing: r.changing,
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

/// Seconds since the epoch of the first `YYYY-MM-DDTHH:MM:SS` (UTC) in `line`.
pub fn log_timestamp(line: &str) -> Option<i64> {
    let b = line.as_bytes();
    (0..b.len().saturating_sub(18)).find_map(|i| {
        let t = &b[i..i + 19];
        let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
        let shape = digits.iter().all(|&d| t[d].is_ascii_digit())
            && t[4] == b'-'
            && t[7] == b'-'
            && t[10] == b'T'
            && t[13] == b':'
            && t[16] == b':';
        if !shape {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> i64 {
            std::str::from_utf8(&t[r])
                .ok()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0)
        };
        let (y, m, d) = (num(0..4), num(5..7), num(8..10));
        // Days from the civil date (Howard Hinnant's algorithm).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(days * 86_400 + num(11..13) * 3600 + num(14..16) * 60 + num(17..19))
    })
}

/// Where Debian's libfaketime is (package `faketime`), in its variant for threaded programs.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

fn faketime_env(faketime: Option<&str>) -> Vec<(&'static str, String)> {
    match faketime {
        Some(f) => vec![
            ("LD_PRELOAD", LIBFAKETIME.to_string()),
            ("FAKETIME", f.to_string()),
        ],
        None => Vec::new(),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_timestamps_parse_through_colour_codes() {
        let line = "\u{1b}[2m2026-11-28T13:45:01.123456Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x";
        assert_eq!(super::log_timestamp(line), Some(1_795_873_501));
        assert_eq!(super::log_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            super::log_timestamp("2000-03-01T00:00:01Z"),
            Some(951_868_801)
        );
        assert_eq!(super::log_timestamp("no time here"), None);
    }
}
