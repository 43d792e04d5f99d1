//! `skiff bench pods`: pod start cost through the whole stack against the machine's floor.
//!
//! Starts its own control plane (`skiff up --no-agent`, temporary directory, free ports) and a
//! separate `skiff agent` process, so the agent's resident memory is its own. For each count N:
//! creates N single-container pods bound to the node at once and measures create-to-Running
//! latency (p50/p99, from each create request to the watch event with phase Running) and the
//! total; reads the agent's RSS with the N pods running; deletes them and waits for their
//! containers to go; then `docker run -d` of N containers of the same image in parallel (the
//! physical floor). Each pod is two containers (its sandbox and its app container), the floor
//! one. Every process, container, network, mount and directory is removed at the end, also on
//! failure and Ctrl-C.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;

use super::local::free_port;
use super::stats::{Samples, ms};
use super::timeline::{self, Milestone};

mod ops;

/// The image every pod and floor container runs (built locally by the agent).
const IMAGE: &str = "skiff-test/busybox:1";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pods per round, comma-separated: `--count 20,50`.
    #[arg(long, value_delimiter = ',', default_value = "20")]
    pub count: Vec<usize>,
}

/// Everything the bench started; dropping it removes all of it.
struct Rig {
    dir: tempfile::TempDir,
    node: String,
    floor_label: String,
    /// The agent's plain-HTTP metrics listener.
    agent_metrics: String,
    up: Option<Child>,
    agent: Option<Child>,
}

impl Rig {
    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// `docker <args>`, its stdout split into words (ids).
fn docker_words(args: &[&str]) -> Vec<String> {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Removes every container with a label, and (for the node) its networks.
fn remove_labelled(label: &str, networks: bool) {
    let filter = format!("label={label}");
    let ids = docker_words(&["ps", "-aq", "--filter", &filter]);
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f"])
            .args(&ids)
            .output();
    }
    if networks {
        let nets = docker_words(&["network", "ls", "-q", "--filter", &filter]);
        if !nets.is_empty() {
            let _ = Command::new("docker")
                .args(["network", "rm"])
                .args(&nets)
                .output();
        }
    }
}

/// Lazily unmounts every mount point under `dir` (a killed agent leaves tmpfs volumes).
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(&p).output();
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        kill(&mut self.agent);
        kill(&mut self.up);
        remove_labelled(&format!("io.skiff.node={}", self.node), true);
        remove_labelled(&self.floor_label, false);
        unmount_under(self.dir.path());
    }
}

async fn start(rig: &mut Rig) -> anyhow::Result<kube::Client> {
    let exe = std::env::current_exe()?;
    let api_port = free_port()?;
    let up_log = std::fs::File::create(rig.dir.path().join("up.log"))?;
    rig.up = Some(
        Command::new(&exe)
            .args(["up", "--no-agent", "--name"])
            .arg(format!("bench-cp-{}", std::process::id()))
            .args(["--api-port", &api_port.to_string()])
            .args(["--peer-port", &free_port()?.to_string()])
            .arg("--data-dir")
            .arg(rig.dir.path().join("up"))
            .stdin(Stdio::null())
            .stdout(up_log.try_clone()?)
            .stderr(up_log)
            .spawn()
            .context("starting skiff up")?,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let token = loop {
        let log = rig.log("up.log");
        if log.contains("export KUBECONFIG=")
            && let Some(token) = log
                .split_whitespace()
                .skip_while(|w| *w != "--token")
                .nth(1)
        {
            break token.to_string();
        }
        if log.lines().any(|l| l.starts_with("error:")) || Instant::now() > deadline {
            bail!("skiff up did not come up:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let agent_log = std::fs::File::create(rig.dir.path().join("agent.log"))?;
    rig.agent = Some(
        Command::new(&exe)
            .args([
                "agent",
                "--server",
                &format!("https://127.0.0.1:{api_port}"),
            ])
            .args(["--name", &rig.node, "--node-ip", "127.0.0.1"])
            .args(["--node-api-listen", &format!("127.0.0.1:{}", free_port()?)])
            .args(["--metrics-listen", &rig.agent_metrics])
            .arg("--data-dir")
            .arg(rig.dir.path().join("agent"))
            .env("SKIFF_NODE_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(agent_log.try_clone()?)
            .stderr(agent_log)
            .spawn()
            .context("starting skiff agent")?,
    );
    let kubeconfig =
        kube::config::Kubeconfig::read_from(rig.dir.path().join("up/admin.kubeconfig"))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = nodes
            .get_opt(&rig.node)
            .await
            .ok()
            .flatten()
            .and_then(|n| n.status?.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            return Ok(client);
        }
        if Instant::now() > deadline {
            bail!(
                "the node never became Ready; agent log:\n{}",
                rig.log("agent.log")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn bench_pod(name: &str, node: &str, round: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"skiff-bench": round}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": IMAGE, "command": ["sleep", "3600"]}],
        },
    }))?)
}

/// What one round measured.
struct Round {
    /// Create-to-Running per pod, and the round's total.
    samples: Samples,
    /// Where the time went between the create requests and Running (see `timeline`).
    phases: Vec<(String, Samples)>,
}

/// One round of `count` pods: per-pod create-to-Running latencies, the round's total, and
/// the phases in between from the node's Docker events.
async fn pods_round(
    client: &kube::Client,
    rig: &Rig,
    round: &str,
    count: usize,
) -> anyhow::Result<Round> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let running: Arc<Mutex<HashMap<String, (Instant, SystemTime)>>> = Arc::default();
    // The watch is established (initial list done) before the first create.
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
    let watch = {
        let running = running.clone();
        let mut stream = watcher::watcher(
            pods.clone(),
            watcher::Config::default().labels(&format!("skiff-bench={round}")),
        )
        .boxed();
        tokio::spawn(async move {
            let mut synced = Some(synced_tx);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => {
                        let is_running =
                            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                        if is_running && let Ok(mut r) = running.lock() {
                            r.entry(p.metadata.name.unwrap_or_default())
                                .or_insert_with(|| (Instant::now(), SystemTime::now()));
                        }
                    }
                    _ => {}
                }
            }
        })
    };
    let _abort = AbortOnDrop(watch);
    tokio::time::timeout(Duration::from_secs(30), synced_rx)
        .await
        .context("the pod watch did not sync")??;

    let started = Instant::now();
    let started_wall = SystemTime::now();
    let created: Vec<(String, Instant, SystemTime)> =
        futures::future::join_all((0..count).map(|i| {
            let pods = pods.clone();
            let name = format!("{round}-{i:03}");
            let node = rig.node.clone();
            let round = round.to_string();
            async move {
                let (t, wall) = (Instant::now(), SystemTime::now());
                pods.create(&PostParams::default(), &bench_pod(&name, &node, &round)?)
                    .await
                    .with_context(|| format!("creating pod {name}"))?;
                anyhow::Ok((name, t, wall))
            }
        }))
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let deadline = Instant::now() + Duration::from_secs(120 + 4 * count as u64);
    loop {
        let done = running.lock().map(|r| r.len()).unwrap_or(0);
        if done >= count {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {done} of {count} pods were Running in time; agent log tail:\n{}",
                tail(&rig.log("agent.log"), 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let running = running
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let mut samples = Samples::default();
    for (name, t, _) in &created {
        if let Some((at, _)) = running.get(name) {
            samples.latencies.push(at.saturating_duration_since(*t));
        }
    }
    samples.elapsed = running
        .values()
        .map(|(at, _)| *at)
        .max()
        .map(|at| at.saturating_duration_since(started))
        .unwrap_or_default();
    let events = timeline::docker_events(&rig.node, started_wall).await;
    let mut milestones = vec![Milestone::new(
        "create request",
        created.into_iter().map(|(n, _, wall)| (n, wall)).collect(),
    )];
    milestones.extend(timeline::container_milestones(&events));
    milestones.push(Milestone::new(
        "Running seen",
        running
            .into_iter()
            .map(|(n, (_, wall))| (n, wall))
            .collect(),
    ));
    let phases = timeline::phases(&milestones);
    Ok(Round { samples, phases })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Deletes a round's pods and waits until the API and Docker have none of them.
async fn delete_round(client: &kube::Client, rig: &Rig, round: &str) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(&format!("skiff-bench={round}")),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(180);
    let node_filter = format!("label=io.skiff.node={}", rig.node);
    loop {
        let left_objects = pods
            .list(&ListParams::default().labels(&format!("skiff-bench={round}")))
            .await?
            .items
            .len();
        let left_containers = docker_words(&["ps", "-aq", "--filter", &node_filter]).len();
        if left_objects == 0 && left_containers == 0 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "round {round}: {left_objects} pods and {left_containers} containers left after 3 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `docker run -d` of `count` containers at once: per-command latencies and the total.
async fn floor_round(rig: &Rig, count: usize) -> anyhow::Result<Samples> {
    docker_run_floor(&rig.floor_label, count).await
}

/// `docker run -d` of `count` containers of the bench image at once, labelled `label` and
/// removed afterwards (also when one fails): per-command latencies and the total. The floor the
/// pod benches compare against.
pub(super) async fn docker_run_floor(label: &str, count: usize) -> anyhow::Result<Samples> {
    let samples = docker_run_parallel(label, count).await;
    remove_labelled(label, false);
    samples
}

async fn docker_run_parallel(label: &str, count: usize) -> anyhow::Result<Samples> {
    let started = Instant::now();
    let runs = futures::future::join_all((0..count).map(|_| async {
        let t = Instant::now();
        let out = tokio::process::Command::new("docker")
            .args(["run", "-d", "--label", label, IMAGE, "sleep", "3600"])
            .stdin(Stdio::null())
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "docker run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        anyhow::Ok(t.elapsed())
    }))
    .await;
    let elapsed = started.elapsed();
    let latencies = runs.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Samples {
        latencies,
        errors: 0,
        elapsed,
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        !args.count.is_empty() && args.count.iter().all(|c| *c >= 1),
        "--count takes positive numbers, e.g. --count 20,50"
    );
    let pid = std::process::id();
    let mut rig = Rig {
        dir: tempfile::Builder::new()
            .prefix("skiff-bench-pods-")
            .tempdir()?,
        node: format!("bench-pods-{pid}"),
        floor_label: format!("io.skiff.bench=floor-{pid}"),
        agent_metrics: format!("127.0.0.1:{}", free_port()?),
        up: None,
        agent: None,
    };
    eprintln!("starting skiff up --no-agent and a separate skiff agent...");
    let client = start(&mut rig).await?;
    let agent_pid = rig.agent.as_ref().map(|c| c.id()).unwrap_or(0);
    let up_pid = rig.up.as_ref().map(|c| c.id()).unwrap_or(0);
    // Warm-up: builds the image locally (as a first pod on a fresh node would) so neither
    // side of the comparison pays for it.
    eprintln!("warm-up pod (builds {IMAGE} if absent)...");
    pods_round(&client, &rig, "warmup", 1).await?;
    delete_round(&client, &rig, "warmup").await?;
    let idle_rss = super::stats::rss_text(agent_pid);

    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "bench pods: node {} ({build} build), image {IMAGE}; a pod is 2 containers (sandbox + app), a floor run 1",
        rig.node
    );
    println!(
        "{:<6} {:<34} {:>5} {:>9} {:>9} {:>10}",
        "N", "WHAT", "OK", "P50_MS", "P99_MS", "TOTAL_MS"
    );
    let mut last_lines = Vec::new();
    for (r, &count) in args.count.iter().enumerate() {
        let round = format!("r{r}");
        let ops_before = ops::parse(&ops::scrape(&rig.agent_metrics).await);
        let cpu_before = (ops::cpu_seconds(agent_pid), ops::cpu_seconds(up_pid));
        let Round {
            samples: pods,
            phases,
        } = pods_round(&client, &rig, &round, count).await?;
        let agent_rss = super::stats::rss_text(agent_pid);
        let up_rss = super::stats::rss_text(up_pid);
        let cpu_after = (ops::cpu_seconds(agent_pid), ops::cpu_seconds(up_pid));
        let calls = ops::difference(
            &ops_before,
            &ops::parse(&ops::scrape(&rig.agent_metrics).await),
        );
        delete_round(&client, &rig, &round).await?;
        let floor = floor_round(&rig, count).await?;
        for (what, s) in [
            ("skiff pods create->Running", &pods),
            ("docker run -d in parallel (floor)", &floor),
        ] {
            println!(
                "{:<6} {:<34} {:>5} {:>9.0} {:>9.0} {:>10.0}",
                count,
                what,
                s.latencies.len(),
                ms(s.percentile(0.5)),
                ms(s.percentile(0.99)),
                ms(s.elapsed)
            );
        }
        for (what, s) in &phases {
            println!(
                "{:<6} {:<34} {:>5} {:>9.0} {:>9.0} {:>10}",
                count,
                format!("  {what}"),
                s.latencies.len(),
                ms(s.percentile(0.5)),
                ms(s.percentile(0.99)),
                "-"
            );
        }
        let cpu = |before: Option<f64>, after: Option<f64>| match (before, after) {
            (Some(b), Some(a)) => format!("{:.1} s", a - b),
            _ => "unknown".to_string(),
        };
        println!(
            "{:<6} CPU during the round (creates to all Running, plus about 1 s): agent {}, control plane {}",
            count,
            cpu(cpu_before.0, cpu_after.0),
            cpu(cpu_before.1, cpu_after.1)
        );
        println!(
            "{:<6} agent Docker calls and worker passes per pod (mean ms): {}",
            count,
            calls
                .iter()
                .map(|(op, (n, seconds))| format!(
                    "{op} {:.1} ({:.0})",
                    n / count as f64,
                    seconds * 1000.0 / n.max(1.0)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "{:<6} agent RSS with {count} pods running: {} (idle {}; separate `skiff agent` process); control plane (`skiff up --no-agent`) {}",
            count, agent_rss, idle_rss, up_rss
        );
        last_lines.push(format!(
            "pods N={count} skiff total={:.0}ms floor={:.0}ms ratio={:.2}",
            ms(pods.elapsed),
            ms(floor.elapsed),
            pods.elapsed.as_secs_f64() / floor.elapsed.as_secs_f64().max(1e-9)
        ));
    }
    for line in last_lines {
        println!("{line}");
    }
    drop(rig);
    Ok(())
}
