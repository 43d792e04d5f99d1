//! The Kubernetes API on a 3-member control plane: kubectl through any member, a leader kill -9
//! under kubectl, watches that survive it without loss, and Secrets that never reach any
//! member's disk in plaintext.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use skiff_tests::cluster::Cluster;
use skiff_tests::kubectl::{Kubectl, credentials_from_kubeconfig, kubectl_versions};
use skiff_tests::wait;

fn kubectl_for(c: &Cluster, member: usize) -> anyhow::Result<Kubectl> {
    let (_, bin) = kubectl_versions()
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no kubectl"))?;
    let mut k = Kubectl::new(bin, c.members[0].data_dir.join("admin.kubeconfig"))?;
    k.server = Some(format!("https://{}", c.members[member].api));
    Ok(k)
}

/// Waits until every running member's API serves the bootstrap objects.
async fn wait_api(c: &Cluster) -> anyhow::Result<()> {
    for i in (0..c.members.len()).filter(|i| c.is_running(*i)) {
        let k = kubectl_for(c, i)?;
        wait::until(
            &format!("the API of {}", c.members[i].name),
            Duration::from_secs(30),
            || async { Ok(k.run(&["get", "ns", "default"])?.ok.then_some(())) },
        )
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_through_any_member_and_across_a_leader_kill() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[]).await?;
    wait_api(&c).await?;
    let leader = c.leader().await?;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let kf = kubectl_for(&c, follower)?;
    kf.ok(&["create", "configmap", "via-follower", "--from-literal=a=1"])?;
    let ko = kubectl_for(&c, other)?;
    let got = ko.ok(&["get", "cm", "via-follower", "-o", "jsonpath={.data.a}"])?;
    anyhow::ensure!(got == "1", "read on another member: {got:?}");
    c.kill(leader);
    // kubectl keeps working against the survivors once a new leader is elected.
    wait::until(
        &format!("a write after the leader's death\n{}", c.log_tails()),
        Duration::from_secs(15),
        || async {
            Ok(kf
                .run(&["create", "configmap", "after-kill", "--from-literal=b=2"])?
                .ok
                .then_some(()))
        },
    )
    .await?;
    let names = ko.ok(&["get", "cm", "-o", "name"])?;
    anyhow::ensure!(
        names.contains("configmap/via-follower") && names.contains("configmap/after-kill"),
        "{names}"
    );
    Ok(())
}

/// A raw watch through curl, printing one event per line.
struct CurlWatch {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl CurlWatch {
    fn start(c: &Cluster, member: usize, path: &str) -> anyhow::Result<CurlWatch> {
        let creds = credentials_from_kubeconfig(
            &c.members[0].data_dir.join("admin.kubeconfig"),
            c.dir.path(),
        )?;
        let mut child = Command::new("curl")
            .args(["-sN", "--cacert"])
            .arg(&creds.0)
            .arg("--cert")
            .arg(&creds.1)
            .arg("--key")
            .arg(&creds.2)
            .arg(format!("https://{}{path}", c.members[member].api))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(CurlWatch { child, lines: rx })
    }
}

impl Drop for CurlWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (resourceVersion, name, type) of the watch events collected until `want` ADDED names are seen.
fn collect(
    w: &CurlWatch,
    seen: &mut Vec<(u64, String, String)>,
    want: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    while seen
        .iter()
        .filter(|(_, n, t)| t == "ADDED" && n.starts_with("w-"))
        .count()
        < want
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = w
            .lines
            .recv_timeout(left)
            .map_err(|_| anyhow::anyhow!("watch stalled after {} events: {seen:?}", seen.len()))?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        let rv = v
            .pointer("/object/metadata/resourceVersion")
            .and_then(|r| r.as_str())
            .unwrap_or("0")
            .parse()?;
        let name = v
            .pointer("/object/metadata/name")
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_string();
        let kind = v["type"].as_str().unwrap_or("").to_string();
        anyhow::ensure!(kind != "ERROR", "watch error: {line}");
        seen.push((rv, name, kind));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_survive_a_leader_kill_and_resume_on_another_member_without_loss()
-> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[]).await?;
    wait_api(&c).await?;
    let leader = c.leader().await?;
    let watched = (leader + 1) % 3;
    let writer = (leader + 2) % 3;
    let kw = kubectl_for(&c, writer)?;
    let start_rv = kubectl_for(&c, watched)?.ok(&[
        "get",
        "cm",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])?;
    let w = CurlWatch::start(
        &c,
        watched,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={start_rv}"),
    )?;
    let mut seen = Vec::new();
    for i in 0..10 {
        kw.ok(&["create", "configmap", &format!("w-{i:02}")])?;
    }
    collect(&w, &mut seen, 10, Duration::from_secs(20))?;
    // The leader dies; the watch on a survivor keeps streaming new writes.
    c.kill(leader);
    for i in 10..20 {
        wait::until(
            "a write after the kill",
            Duration::from_secs(15),
            || async {
                Ok(kw
                    .run(&["create", "configmap", &format!("w-{i:02}")])?
                    .ok
                    .then_some(()))
            },
        )
        .await?;
    }
    collect(&w, &mut seen, 20, Duration::from_secs(20))?;
    // The watched member dies too (after a restart of the old leader): resume elsewhere from
    // the last resourceVersion seen.
    c.restart(leader)?;
    c.wait_ready(leader).await?;
    drop(w);
    c.kill(watched);
    for i in 20..30 {
        wait::until(
            "a write after the second kill",
            Duration::from_secs(15),
            || async {
                Ok(kw
                    .run(&["create", "configmap", &format!("w-{i:02}")])?
                    .ok
                    .then_some(()))
            },
        )
        .await?;
    }
    let last = seen.last().map(|(rv, _, _)| *rv).unwrap_or(0);
    let resumed = CurlWatch::start(
        &c,
        leader,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={last}"),
    )?;
    collect(&resumed, &mut seen, 30, Duration::from_secs(20))?;
    let added: Vec<&str> = seen
        .iter()
        .filter(|(_, _, t)| t == "ADDED")
        .map(|(_, n, _)| n.as_str())
        .collect();
    let expected: Vec<String> = (0..30).map(|i| format!("w-{i:02}")).collect();
    anyhow::ensure!(
        added == expected.iter().map(String::as_str).collect::<Vec<_>>(),
        "events: {added:?}"
    );
    for pair in seen.windows(2) {
        anyhow::ensure!(
            pair[0].0 < pair[1].0,
            "out of order or duplicated: {pair:?}"
        );
    }
    Ok(())
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_value_is_absent_from_every_file_of_every_member() -> anyhow::Result<()> {
    let c = Cluster::start(3, &["--snapshot-after-logs", "20", "--logs-kept", "5"]).await?;
    wait_api(&c).await?;
    let secret = format!("TOPSECRET{}", rand::random::<u64>());
    let control = format!("CONTROLVALUE{}", rand::random::<u64>());
    let k = kubectl_for(&c, 1)?;
    k.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        &format!("--from-literal=password={secret}"),
    ])?;
    k.ok(&[
        "create",
        "configmap",
        "control",
        &format!("--from-literal=v={control}"),
    ])?;
    // Enough writes for every member to build a snapshot containing both objects.
    for i in 0..30 {
        k.ok(&["create", "configmap", &format!("filler-{i}")])?;
    }
    let got = k.ok(&["get", "secret", "s", "-o", "jsonpath={.data.password}"])?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(got.trim())?;
    anyhow::ensure!(
        decoded == secret.as_bytes(),
        "the API returns the secret decrypted"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret.as_bytes());
    wait::until(
        "every member to hold a snapshot",
        Duration::from_secs(30),
        || async {
            for m in &c.members {
                let mut all = Vec::new();
                files(&m.data_dir.join("snapshots"), &mut all);
                if !all
                    .iter()
                    .any(|p| p.extension().is_some_and(|e| e == "snap"))
                {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    for m in &c.members {
        let mut all = Vec::new();
        files(&m.data_dir, &mut all);
        let mut control_found = false;
        for path in &all {
            let bytes = std::fs::read(path).unwrap_or_default();
            anyhow::ensure!(
                !contains_bytes(&bytes, secret.as_bytes()),
                "plaintext secret in {}",
                path.display()
            );
            anyhow::ensure!(
                !contains_bytes(&bytes, b64.as_bytes()),
                "base64 secret in {}",
                path.display()
            );
            control_found |= contains_bytes(&bytes, control.as_bytes());
        }
        anyhow::ensure!(
            control_found,
            "the scan did not find the control value in {}: it proves nothing",
            m.name
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubectl_workflow_runs_against_a_three_member_cluster_through_a_follower()
-> anyhow::Result<()> {
    let c = Cluster::start(3, &[]).await?;
    wait_api(&c).await?;
    let leader = c.leader().await?;
    let follower = (leader + 1) % 3;
    for (version, bin) in kubectl_versions() {
        let mut k = Kubectl::new(bin, c.members[0].data_dir.join("admin.kubeconfig"))?;
        k.server = Some(format!("https://{}", c.members[follower].api));
        let ns = format!("cluster-wf-{}", version.replace('.', "-"));
        crate::t70_kubectl::workflow(&k, &ns).await.map_err(|e| {
            anyhow::anyhow!(
                "kubectl {version} via follower {}: {e:#}\n{}",
                c.members[follower].name,
                c.log_tails()
            )
        })?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_health_and_metrics() -> anyhow::Result<()> {
    let c = Cluster::start(1, &[]).await?;
    wait_api(&c).await?;
    let k = kubectl_for(&c, 0)?;
    let creds = credentials_from_kubeconfig(
        &c.members[0].data_dir.join("admin.kubeconfig"),
        c.dir.path(),
    )?;
    let api = c.members[0].api.clone();
    let curl = |args: &[&str]| -> anyhow::Result<(u16, String)> {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(&creds.0)
            .args(args)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        Ok((code.trim().parse().unwrap_or(0), body.to_string()))
    };
    // Health endpoints need no credentials, like kube-apiserver's.
    for path in ["/livez", "/readyz", "/healthz"] {
        let (code, body) = curl(&[&format!("https://{api}{path}")])?;
        anyhow::ensure!(code == 200 && body == "ok", "{path}: {code} {body}");
    }
    // A ServiceAccount token (TokenRequest through kubectl, a protobuf body) authenticates its
    // bearer as the ServiceAccount: without RBAC rights it is refused with 403, not 401.
    let token = k
        .ok(&["create", "token", "default", "--duration=10m"])?
        .trim()
        .to_string();
    anyhow::ensure!(token.matches('.').count() == 2, "not a JWT: {token}");
    let (code, body) = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("https://{api}/api/v1/namespaces/default/pods"),
    ])?;
    anyhow::ensure!(
        code == 403 && body.contains("system:serviceaccount:default:default"),
        "{code} {body}"
    );
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let (code, _) = curl(&[
        "-H",
        &format!("Authorization: Bearer {forged}"),
        &format!("https://{api}/api/v1/namespaces"),
    ])?;
    anyhow::ensure!(code == 401, "a tampered token: {code}");
    let (code, _) = curl(&[
        "-H",
        "Authorization: Bearer not-a-token",
        &format!("https://{api}/api/v1/namespaces"),
    ])?;
    anyhow::ensure!(code == 401, "an unknown token: {code}");
    // Metrics for an administrator: requests by verb/resource/code and the store's metrics.
    let (code, body) = curl(&[
        "--cert",
        creds.1.to_str().unwrap_or_default(),
        "--key",
        creds.2.to_str().unwrap_or_default(),
        &format!("https://{api}/metrics"),
    ])?;
    anyhow::ensure!(code == 200, "metrics: {code}");
    for name in [
        "apiserver_request_total",
        "apiserver_request_duration_seconds",
        "skiff_store_is_leader",
        "skiff_store_wal_fsync_duration_seconds",
    ] {
        anyhow::ensure!(body.contains(name), "{name} missing from /metrics");
    }
    Ok(())
}
