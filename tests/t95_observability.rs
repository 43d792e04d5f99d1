//! Observability: the ops/ Prometheus files pass promtool (config, rules, the rules' unit
//! tests); every alert has a runbook; a real Prometheus (Debian's package, loopback only, its
//! own temporary directory and port) scrapes a 3-member cluster with the shipped configuration
//! and the `SkiffMemberDown` alert fires when a member is killed, then resolves when it is back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use skiff_tests::cluster::{Cluster, free_port};
use skiff_tests::http::get as http_get;
use skiff_tests::wait;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn ops_prometheus() -> PathBuf {
    repo_root().join("ops/prometheus")
}

/// Runs a tool; fails with its output (and how to install it) unless it succeeds.
fn run_tool(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .output()
        .with_context(|| format!("running {program} (install Debian's prometheus: ops/deps)"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{program} {} failed:\n{text}", args.join(" "));
    }
    Ok(text)
}

/// The alert names in rules.yml (`- alert: Name` lines).
fn alert_names(rules: &str) -> Vec<String> {
    let mut names: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn promtool_accepts_the_shipped_config_rules_and_rule_tests() -> anyhow::Result<()> {
    let config = run_tool(
        "promtool",
        &["check", "config", "ops/prometheus/prometheus.yml"],
    )?;
    assert!(config.contains("SUCCESS"), "{config}");
    let rules = run_tool("promtool", &["check", "rules", "ops/prometheus/rules.yml"])?;
    assert!(rules.contains("SUCCESS"), "{rules}");
    let tests = run_tool(
        "promtool",
        &["test", "rules", "ops/prometheus/rules_test.yml"],
    )?;
    assert!(tests.contains("SUCCESS"), "{tests}");

    // Every alert has a runbook, every runbook an alert, and each alert names its own page.
    let text = std::fs::read_to_string(ops_prometheus().join("rules.yml"))?;
    let alerts = alert_names(&text);
    assert!(alerts.len() >= 10, "too few alerts: {alerts:?}");
    for required in [
        "SkiffNoLeader",
        "SkiffFrequentLeaderChanges",
        "SkiffMemberDown",
        "SkiffFsyncSlow",
        "SkiffQuorumAtRisk",
        "SkiffAPIErrors",
        "SkiffAPILatencyHigh",
        "SkiffNodeNotReady",
        "SkiffBackupMissing",
        "SkiffBackupFailing",
    ] {
        assert!(alerts.iter().any(|a| a == required), "no alert {required}");
    }
    let runbooks = repo_root().join("ops/runbooks");
    for alert in &alerts {
        assert!(
            runbooks.join(format!("{alert}.md")).is_file(),
            "alert {alert} has no ops/runbooks/{alert}.md"
        );
        assert!(
            text.contains(&format!("runbook: ops/runbooks/{alert}.md")),
            "alert {alert} does not link its runbook"
        );
    }
    for entry in std::fs::read_dir(&runbooks)? {
        let name = entry?.file_name().to_string_lossy().to_string();
        // Runbooks named after an alert (Skiff...) must belong to one; the others are
        // procedures the alert runbooks link to (RestoreFromBackup).
        if let Some(alert) = name.strip_suffix(".md")
            && alert.starts_with("Skiff")
        {
            assert!(
                alerts.iter().any(|a| a == alert),
                "runbook {name} has no alert"
            );
        }
    }
    Ok(())
}

/// A running Prometheus, killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus with the shipped prometheus.yml and rules.yml (intervals shortened to
    /// 1 s, nothing else changed), scraping `servers` as (metrics address, member name).
    fn start(dir: &Path, servers: &[(String, String)]) -> anyhow::Result<Prometheus> {
        let config = std::fs::read_to_string(ops_prometheus().join("prometheus.yml"))?;
        let fast = config
            .replace("scrape_interval: 15s", "scrape_interval: 1s")
            .replace("scrape_timeout: 5s", "scrape_timeout: 1s")
            .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
        assert_ne!(
            fast, config,
            "prometheus.yml no longer has the expected intervals"
        );
        std::fs::create_dir_all(dir.join("targets"))?;
        std::fs::write(dir.join("prometheus.yml"), fast)?;
        std::fs::copy(ops_prometheus().join("rules.yml"), dir.join("rules.yml"))?;
        let mut targets = String::new();
        for (addr, member) in servers {
            targets.push_str(&format!(
                "- targets: [\"{addr}\"]\n  labels:\n    member: {member}\n"
            ));
        }
        std::fs::write(dir.join("targets/skiff-server.yml"), targets)?;
        for job in ["skiff-agent", "skiff-proxy", "skiff-ingress"] {
            std::fs::write(dir.join(format!("targets/{job}.yml")), "[]\n")?;
        }
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting prometheus (install Debian's prometheus: ops/deps)")?;
        Ok(Prometheus {
            child,
            addr,
            dir: dir.to_path_buf(),
        })
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    async fn api(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = http_get(&self.addr, path).await?;
        if status != 200 {
            bail!("GET {path}: HTTP {status}: {body}");
        }
        let v: Value = serde_json::from_str(&body)?;
        if v["status"] != "success" {
            bail!("GET {path}: {body}");
        }
        Ok(v["data"].clone())
    }

    /// An instant query's result vector.
    async fn query(&self, promql: &str) -> anyhow::Result<Vec<Value>> {
        let data = self
            .api(&format!("/api/v1/query?query={}", percent_encode(promql)))
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The single value of a query that aggregates to one sample, if any.
    async fn scalar(&self, promql: &str) -> anyhow::Result<Option<f64>> {
        let result = self.query(promql).await?;
        Ok(result
            .first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse().ok()))
    }

    /// The alerts with this name, as (state, labels).
    async fn alerts(&self, name: &str) -> anyhow::Result<Vec<(String, Value)>> {
        let data = self.api("/api/v1/alerts").await?;
        Ok(data["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .map(|a| {
                (
                    a["state"].as_str().unwrap_or("").to_string(),
                    a["labels"].clone(),
                )
            })
            .collect())
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Metric names in a text exposition.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|n| n.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_three_members_and_alerts_when_one_is_killed() -> anyhow::Result<()> {
    // Three members, each with its own metrics port.
    let mut c = Cluster::new(&[])?;
    let mut metrics = Vec::new();
    for i in 0..3 {
        c.add_slot();
        metrics.push(format!("127.0.0.1:{}", free_port()));
        let mut extra = vec!["--metrics-listen".to_string(), metrics[i].clone()];
        if i == 0 {
            extra.push("--init".into());
            c.spawn(i, &extra.iter().map(String::as_str).collect::<Vec<_>>())?;
            c.wait_ready(0).await?;
        } else {
            extra.extend([
                "--join".into(),
                c.members[0].addr.clone(),
                "--token".into(),
                c.token()?,
            ]);
            c.spawn(i, &extra.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
    }
    c.wait_voters(3).await?;

    // One API request per member, so every member has request series to export.
    for m in &c.members {
        let out = Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "5",
                &format!("https://{}/healthz", m.api),
            ])
            .output()?;
        assert!(
            out.status.success(),
            "curl https://{}/healthz failed",
            m.api
        );
    }
    // Each member serves the store, API, scheduler and controller metrics on its listener.
    let text = wait::until(
        "every member's metrics endpoint",
        Duration::from_secs(20),
        || async {
            let mut last = None;
            for addr in &metrics {
                let (status, body) = http_get(addr, "/metrics").await?;
                if status != 200 {
                    return Ok(None);
                }
                last = Some(body);
            }
            Ok(last)
        },
    )
    .await?;
    let names = metric_names(&text);
    for expected in [
        "skiff_store_is_leader",
        "skiff_store_leader_changes_seen_total",
        "skiff_store_term",
        "skiff_store_commit_index",
        "skiff_store_apply_index",
        "skiff_store_proposals_committed_total",
        "skiff_store_proposals_failed_total",
        "skiff_store_wal_fsync_duration_seconds_bucket",
        "skiff_store_apply_commit_duration_seconds_bucket",
        "skiff_store_snapshot_build_duration_seconds_bucket",
        "skiff_store_compaction_duration_seconds_bucket",
        "skiff_store_db_total_size_in_bytes",
        "skiff_store_watchers",
        "skiff_store_voters",
        "apiserver_request_total",
        "apiserver_request_duration_seconds_bucket",
        "apiserver_current_inflight_requests",
        "apiserver_longrunning_requests",
        "skiff_controller_manager_leader",
        "skiff_build_info",
    ] {
        assert!(names.contains(expected), "{expected} missing from /metrics");
    }
    // Every metric the rules use (other than the backup ones, which the backup schedule
    // emits) is served, so no alert silently watches a name that does not exist.
    let rules = std::fs::read_to_string(ops_prometheus().join("rules.yml"))?;
    for used in [
        "skiff_store_voters",
        "skiff_store_has_leader",
        "skiff_store_leader_changes_seen_total",
        "skiff_store_wal_fsync_duration_seconds_bucket",
        "apiserver_request_total",
        "apiserver_request_duration_seconds_bucket",
    ] {
        assert!(rules.contains(used), "rules.yml no longer uses {used}");
        assert!(names.contains(used), "rules.yml uses {used}, not served");
    }
    let (status, _) = http_get(&metrics[0], "/healthz").await?;
    assert_eq!(status, 200);

    // The scrape cost of one member (a figure, not a pass/fail threshold).
    let mut took = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        http_get(&metrics[0], "/metrics").await?;
        took.push(started.elapsed());
    }
    took.sort();
    println!(
        "scrape of one member: p50 {:?}, max {:?}, {} bytes",
        took[took.len() / 2],
        took[took.len() - 1],
        text.len()
    );

    let dir = tempfile::Builder::new().prefix("skiff-prom-").tempdir()?;
    let servers: Vec<(String, String)> = metrics
        .iter()
        .zip(&c.members)
        .map(|(a, m)| (a.clone(), m.name.clone()))
        .collect();
    let prom = Prometheus::start(dir.path(), &servers)?;

    let what = || format!("Prometheus log:\n{}", prom.log_tail());
    wait::until(
        &format!("Prometheus to scrape all three members up\n{}", what()),
        Duration::from_secs(60),
        || async {
            Ok(
                (prom.scalar("count(up{job=\"skiff-server\"} == 1)").await? == Some(3.0))
                    .then_some(()),
            )
        },
    )
    .await?;
    wait::until(
        "one leader among the scraped members",
        Duration::from_secs(20),
        || async {
            Ok((prom
                .scalar("sum(skiff_store_is_leader{job=\"skiff-server\"})")
                .await?
                == Some(1.0))
            .then_some(()))
        },
    )
    .await?;
    assert_eq!(prom.scalar("max(skiff_store_voters)").await?, Some(3.0));
    // Rules are loaded; nothing fires on a healthy cluster.
    wait::until(
        "the rule groups to load",
        Duration::from_secs(20),
        || async {
            let groups = prom.api("/api/v1/rules").await?;
            Ok((groups["groups"].as_array().map(|g| g.len()).unwrap_or(0) >= 4).then_some(()))
        },
    )
    .await?;
    assert!(prom.alerts("SkiffMemberDown").await?.is_empty());

    // Every query of the Grafana dashboard is valid PromQL, and its control-plane panels have
    // data (the agent, proxy, ingress and backup panels need those components).
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(
        repo_root().join("ops/grafana/skiff.json"),
    )?)?;
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().context("no panels")? {
        for target in panel["targets"].as_array().cloned().unwrap_or_default() {
            let expr = target["expr"].as_str().context("a target without expr")?;
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            let result = prom
                .query(&expr)
                .await
                .with_context(|| format!("dashboard panel {}", panel["title"]))?;
            if expr.starts_with("skiff_store_") || expr.starts_with("apiserver_") {
                assert!(!result.is_empty(), "no data for {expr}");
            }
            queries += 1;
        }
    }
    assert!(queries > 30, "only {queries} dashboard queries");
    if let Some(d) = prom
        .scalar("max(scrape_duration_seconds{job=\"skiff-server\"})")
        .await?
    {
        println!("Prometheus scrape_duration_seconds (max over members): {d:.4}");
    }

    // Kill m3: SkiffMemberDown fires for it (after its `for: 1m`), and only for it.
    let victim = 2;
    let killed_at = Instant::now();
    c.kill(victim);
    wait::until(
        &format!("SkiffMemberDown to fire for m3\n{}", what()),
        Duration::from_secs(120),
        || async {
            let alerts = prom.alerts("SkiffMemberDown").await?;
            let firing: Vec<_> = alerts.iter().filter(|(s, _)| s == "firing").collect();
            if firing.is_empty() {
                return Ok(None);
            }
            assert_eq!(firing.len(), 1, "{alerts:?}");
            assert_eq!(firing[0].1["member"], "m3", "{alerts:?}");
            assert_eq!(firing[0].1["instance"], metrics[victim].as_str());
            Ok(Some(()))
        },
    )
    .await?;
    println!(
        "SkiffMemberDown fired {:?} after the kill",
        killed_at.elapsed()
    );
    let risk = prom.alerts("SkiffQuorumAtRisk").await?;
    assert!(
        risk.iter().any(|(s, _)| s == "firing" || s == "pending"),
        "SkiffQuorumAtRisk should be active with 2 of 3 members: {risk:?}"
    );
    assert!(prom.alerts("SkiffQuorumLost").await?.is_empty());

    // Back up: the alert resolves.
    // A restarted member needs only its data directory.
    let extra = ["--metrics-listen", metrics[victim].as_str()];
    c.spawn(victim, &extra)?;
    c.wait_ready(victim).await?;
    wait::until(
        &format!("SkiffMemberDown to resolve\n{}", what()),
        Duration::from_secs(30),
        || async {
            Ok(prom
                .alerts("SkiffMemberDown")
                .await?
                .is_empty()
                .then_some(()))
        },
    )
    .await?;
    Ok(())
}

/// Renders charts/skiff with charts/render.py (helm is not installable here).
fn render_chart(sets: &[&str]) -> anyhow::Result<String> {
    let mut args = vec![
        "charts/render.py".to_string(),
        "charts/skiff".into(),
        "--namespace".into(),
        "skiff-chart-test".into(),
    ];
    for s in sets {
        args.extend(["--set".to_string(), s.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_tool("python3", &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_renders_and_a_skiff_api_accepts_it_on_server_dry_run() -> anyhow::Result<()> {
    let rendered = render_chart(&[])?;
    let kinds: Vec<&str> = rendered
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    for kind in ["StatefulSet", "DaemonSet", "Service", "PodDisruptionBudget"] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    assert_eq!(kinds.iter().filter(|k| **k == "DaemonSet").count(), 2);
    assert!(rendered.contains("replicas: 3"), "{rendered}");
    assert!(rendered.contains("--backup-schedule \"0 */12 * * *\""));
    // Values change what renders.
    let custom = render_chart(&[
        "server.replicas=5",
        "server.storage.size=50Gi",
        "server.resources.limits.memory=8Gi",
        "backup.schedule=",
        "agent.enabled=false",
    ])?;
    assert!(custom.contains("replicas: 5"));
    assert!(custom.contains("storage: 50Gi"));
    assert!(custom.contains("memory: 8Gi"));
    assert!(!custom.contains("--backup-schedule"));
    assert_eq!(custom.matches("kind: DaemonSet").count(), 1);
    // A template error is an error, not a silent guess.
    let broken = tempfile::tempdir()?;
    let copy = broken.path().join("skiff");
    std::fs::create_dir_all(copy.join("templates"))?;
    for f in ["Chart.yaml", "values.yaml"] {
        std::fs::copy(repo_root().join("charts/skiff").join(f), copy.join(f))?;
    }
    std::fs::write(
        copy.join("templates/bad.yaml"),
        "kind: ConfigMap\napiVersion: v1\nmetadata: {name: {{ nosuchfunction . }}}\n",
    )?;
    let copy_arg = copy.display().to_string();
    assert!(run_tool("python3", &["charts/render.py", &copy_arg]).is_err());

    // The API accepts every rendered object (server-side dry run: validated, not stored).
    let up = skiff_tests::kubectl::Up::start().await?;
    let bin = skiff_tests::kubectl::kubectl_versions()
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| PathBuf::from("kubectl"));
    let kubectl = skiff_tests::kubectl::Kubectl::new(bin, up.kubeconfig())?;
    kubectl.ok(&["create", "namespace", "skiff-chart-test"])?;
    for yaml in [&rendered, &custom] {
        let out = kubectl.apply_stdin(yaml, &["--dry-run=server"])?;
        assert!(
            out.ok,
            "kubectl apply --dry-run=server failed:\n{}{}\n{}",
            out.stdout,
            out.stderr,
            up.log()
        );
        let accepted = out.stdout.matches("(server dry run)").count();
        let documents = yaml.matches("\nkind: ").count();
        assert_eq!(accepted, documents, "{}", out.stdout);
    }
    // Dry run stored nothing.
    let listed = kubectl.ok(&[
        "get",
        "statefulsets,daemonsets,services",
        "-n",
        "skiff-chart-test",
        "-o",
        "name",
    ])?;
    assert!(listed.trim().is_empty(), "{listed}");
    Ok(())
}
