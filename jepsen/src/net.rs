//! The test network: one network namespace per member, all attached to a bridge that lives in
//! a hub namespace of its own, plus a veth from the harness' (root) namespace to the bridge so
//! clients reach every member. Bridged traffic is filtered only by the hub namespace's (empty)
//! tables, never by the host's firewall. Names and the /24 are unique per run.
//!
//! Partitions are nftables rules in the members' namespaces: a member drops what arrives from
//! the members it must not hear. Clients (the host address) are never cut off.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// What each member drops: `drops[i]` lists the members whose packets member `i` discards.
pub type Drops = Vec<Vec<usize>>;

/// Both ways between every member of `a` and every member of `b`.
pub fn split(n: usize, a: &[usize], b: &[usize]) -> Drops {
    let mut d = vec![Vec::new(); n];
    for &x in a {
        for &y in b {
            d[x].push(y);
            d[y].push(x);
        }
    }
    for l in &mut d {
        l.sort_unstable();
        l.dedup();
    }
    d
}

/// `deaf` hears nothing from `from` (but `from` still hears `deaf`).
pub fn one_way(n: usize, deaf: &[usize], from: &[usize]) -> Drops {
    let mut d = vec![Vec::new(); n];
    for &x in deaf {
        d[x].extend_from_slice(from);
    }
    d
}

/// The nftables script that installs `drops` for one member (replacing earlier rules).
pub fn nft_script(drop_from: &[String]) -> String {
    let mut s = String::from("add table inet jepsen\ndelete table inet jepsen\n");
    if !drop_from.is_empty() {
        s.push_str(&format!(
            "table inet jepsen {{\n  chain input {{\n    type filter hook input priority -10; policy accept;\n    ip saddr {{ {} }} drop\n  }}\n}}\n",
            drop_from.join(", ")
        ));
    }
    s
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn run_stdin(args: &[&str], input: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", args.join(" ")))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{} failed: {}\n{input}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub struct Net {
    /// Short unique prefix of every name this run creates.
    pub tag: String,
    pub hub: String,
    pub members: Vec<String>,
    prefix: String,
    host_if: String,
}

impl Net {
    /// Creates the hub, `n` member namespaces and the host link. Needs root.
    pub fn create(n: usize) -> anyhow::Result<Net> {
        let existing = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["-o", "addr"])
                .output()
                .context("running ip (install iproute2)")?
                .stdout,
        )
        .to_string();
        let namespaces =
            String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output()?.stdout)
                .to_string();
        let (tag, prefix) = loop {
            let r: u32 = rand::random();
            let tag = format!("sj{:04x}", r & 0xffff);
            let prefix = format!("10.{}.{}", 200 + (r >> 16) % 50, (r >> 8) % 256);
            if !existing.contains(&format!("{prefix}.")) && !namespaces.contains(&tag) {
                break (tag, prefix);
            }
        };
        let mut net = Net {
            hub: format!("{tag}-hub"),
            members: Vec::new(),
            host_if: format!("{tag}h"),
            tag,
            prefix,
        };
        net.setup(n)
            .with_context(|| format!("creating the test network {} (needs root)", net.tag))?;
        Ok(net)
    }

    fn setup(&mut self, n: usize) -> anyhow::Result<()> {
        let hub = self.hub.clone();
        run(&["ip", "netns", "add", &hub])?;
        run(&["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &hub, "link", "set", "br0", "up"])?;
        run(&["ip", "-n", &hub, "link", "set", "lo", "up"])?;
        for i in 0..n {
            let ns = format!("{}-m{}", self.tag, i + 1);
            run(&["ip", "netns", "add", &ns])?;
            self.members.push(ns.clone());
            let port = format!("{}m{}", self.tag, i + 1);
            run(&[
                "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            run(&["ip", "link", "set", &port, "netns", &hub])?;
            run(&[
                "ip", "-n", &hub, "link", "set", &port, "master", "br0", "up",
            ])?;
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.ip(i)),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        let peer = format!("{}p", self.tag);
        run(&[
            "ip",
            "link",
            "add",
            &self.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &hub,
        ])?;
        run(&[
            "ip", "-n", &hub, "link", "set", &peer, "master", "br0", "up",
        ])?;
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", self.host_ip()),
            "dev",
            &self.host_if,
        ])?;
        run(&["ip", "link", "set", &self.host_if, "up"])?;
        Ok(())
    }

    /// Member `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, i + 1)
    }

    /// The harness' (clients') address on the bridge.
    pub fn host_ip(&self) -> String {
        format!("{}.254", self.prefix)
    }

    /// Installs `drops` (replacing any earlier partition).
    pub fn partition(&self, drops: &Drops) -> anyhow::Result<()> {
        for (i, ns) in self.members.iter().enumerate() {
            let from: Vec<String> = drops
                .get(i)
                .map(|l| l.iter().map(|&j| self.ip(j)).collect())
                .unwrap_or_default();
            run_stdin(
                &["ip", "netns", "exec", ns, "nft", "-f", "-"],
                &nft_script(&from),
            )?;
        }
        Ok(())
    }

    /// Removes every partition.
    pub fn heal(&self) -> anyhow::Result<()> {
        self.partition(&vec![Vec::new(); self.members.len()])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = run(&["ip", "link", "del", &self.host_if]);
        for ns in &self.members {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = run(&["ip", "netns", "del", &self.hub]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_symmetric() {
        let d = split(5, &[0, 1], &[2, 3, 4]);
        assert_eq!(d[0], vec![2, 3, 4]);
        assert_eq!(d[1], vec![2, 3, 4]);
        assert_eq!(d[2], vec![0, 1]);
        assert_eq!(d[4], vec![0, 1]);
    }

    #[test]
    fn one_way_only_deafens_one_side() {
        let d = one_way(3, &[0], &[1, 2]);
        assert_eq!(d, vec![vec![1, 2], vec![], vec![]]);
    }

    #[test]
    fn nft_script_replaces_the_table() {
        let s = nft_script(&["10.1.2.3".into(), "10.1.2.4".into()]);
        assert!(s.starts_with("add table inet jepsen\ndelete table inet jepsen\n"));
        assert!(s.contains("ip saddr { 10.1.2.3, 10.1.2.4 } drop"));
        assert_eq!(
            nft_script(&[]),
            "add table inet jepsen\ndelete table inet jepsen\n"
        );
    }
}
