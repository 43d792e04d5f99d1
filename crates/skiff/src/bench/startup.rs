//! `skiff bench startup`: time from applying a Deployment of N busybox replicas to all N pods
//! Running and Ready on an all-in-one `skiff up` (control plane and agent on this machine's
//! Docker), with where that time went (each pod seen created, bound, its containers' Docker
//! events, Running and Ready seen; see `timeline`) and the machine's floor in the same run (N
//! `docker run -d` in parallel); with `--compare-swarm`, the same N replicas as a Docker Swarm
//! service on the same engine (from `docker service create` to N/N running tasks).
//!
//! The image is the agent's local busybox test image (no registry). Everything is removed
//! afterwards, also on failure: the `skiff up` process is killed and its node's containers and
//! networks removed; the Swarm service is removed and, if this bench initialised Swarm, the
//! engine leaves it again.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;

use super::local::free_port;
use super::stats::{Samples, ms};
use super::timeline::{self, Milestone};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replica counts to measure, one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "20,50")]
    pub replicas: Vec<usize>,
    /// Also measure the same replicas as a Docker Swarm service.
    #[arg(long)]
    pub compare_swarm: bool,
    /// Give up on one run after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

const IMAGE: &str = skiff_agent::images::TEST_BUSYBOX_IMAGE;

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running docker (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Removes every container and network labelled with a node's name.
fn remove_node_containers(node: &str) {
    let label = format!("label=io.skiff.node={node}");
    if let Ok(ids) = docker(&["ps", "-aq", "--filter", &label]) {
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = docker(&args);
        }
    }
    if let Ok(ids) = docker(&["network", "ls", "-q", "--filter", &label]) {
        for id in ids.split_whitespace() {
            let _ = docker(&["network", "rm", id]);
        }
    }
}

/// A `skiff up` process with its data in a temporary directory; killed and cleaned on drop.
struct UpGuard {
    dir: tempfile::TempDir,
    child: Option<Child>,
    node: String,
    log: PathBuf,
}

impl Drop for UpGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        remove_node_containers(&self.node);
    }
}

async fn start_up() -> anyhow::Result<(UpGuard, Client)> {
    let dir = tempfile::Builder::new()
        .prefix("skiff-bench-startup-")
        .tempdir()?;
    let node = format!("bench-startup-{}", std::process::id());
    let log = dir.path().join("up.log");
    let out = std::fs::File::create(&log)?;
    let child = Command::new(std::env::current_exe()?)
        .arg("up")
        .args(["--api-port", &free_port()?.to_string()])
        .args(["--peer-port", &free_port()?.to_string()])
        .args(["--node-api-port", &free_port()?.to_string()])
        .args(["--name", &node])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .env("SKIFF_LOG", "info,openraft=warn")
        .spawn()
        .context("starting skiff up")?;
    let guard = UpGuard {
        dir,
        child: Some(child),
        node,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&guard.log).unwrap_or_default();
        if text.contains("export KUBECONFIG=") {
            break;
        }
        if Instant::now() > deadline || text.lines().any(|l| l.starts_with("error:")) {
            bail!("skiff up did not start:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kubeconfig =
        kube::config::Kubeconfig::read_from(guard.dir.path().join("data/admin.kubeconfig"))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = Client::try_from(config)?;
    // The node is Ready and the agent has built its images.
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = nodes
            .get_opt(&guard.node)
            .await
            .ok()
            .flatten()
            .is_some_and(|n| {
                n.status
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
        if ready && docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE]).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the node {} did not become Ready with {IMAGE} built; log {}",
                guard.node,
                guard.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((guard, client))
}

fn deployment(name: &str, replicas: usize) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "main", "image": IMAGE, "command": ["sleep", "3600"]}]
                }
            }
        }
    }))?)
}

fn running_and_ready(p: &Pod) -> bool {
    let Some(status) = &p.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .as_ref()
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// When each pod of a run was first seen, first seen bound, and first seen Running and Ready.
#[derive(Default)]
struct Sightings {
    created: HashMap<String, SystemTime>,
    bound: HashMap<String, SystemTime>,
    ready: HashMap<String, SystemTime>,
}

impl Sightings {
    fn saw(&mut self, pod: &Pod) {
        let now = SystemTime::now();
        let name = pod.metadata.name.clone().unwrap_or_default();
        self.created.entry(name.clone()).or_insert(now);
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
        {
            self.bound.entry(name.clone()).or_insert(now);
        }
        if running_and_ready(pod) {
            self.ready.entry(name).or_insert(now);
        }
    }
}

/// One Skiff run: apply to all Running and Ready, and the phases in between.
struct Run {
    elapsed: Duration,
    phases: Vec<(String, Samples)>,
}

/// Apply → all Running and Ready (seen on a watch), then delete and wait until the node has no
/// containers of it.
async fn skiff_run(
    client: &Client,
    node: &str,
    replicas: usize,
    timeout: Duration,
) -> anyhow::Result<Run> {
    let name = format!("startup-{replicas}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let selector = format!("app={name}");
    let mut stream =
        watcher::watcher(pods.clone(), watcher::Config::default().labels(&selector)).boxed();
    // The watch is established (initial list done) before the apply.
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(watcher::Event::InitDone))) => break,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => bail!("the pod watch did not sync"),
        }
    }
    let mut sightings = Sightings::default();
    let applied = SystemTime::now();
    let started = Instant::now();
    deployments
        .create(&PostParams::default(), &deployment(&name, replicas)?)
        .await?;
    let deadline = tokio::time::Instant::from_std(started + timeout);
    let result = loop {
        if sightings.ready.len() >= replicas {
            break Ok(started.elapsed());
        }
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)))) => {
                sightings.saw(&p)
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => eprintln!("warning: pod watch: {e}"),
            Ok(None) => break Err(anyhow::anyhow!("the pod watch ended")),
            Err(_) => {
                break Err(anyhow::anyhow!(
                    "{} of {replicas} pods Running and Ready after {timeout:?}",
                    sightings.ready.len()
                ));
            }
        }
    };
    drop(stream);
    let events = timeline::docker_events(node, applied).await;
    let applied_for_each: HashMap<String, SystemTime> = sightings
        .created
        .keys()
        .map(|pod| (pod.clone(), applied))
        .collect();
    let mut milestones = vec![
        Milestone::new("apply", applied_for_each),
        Milestone::new("pod seen", sightings.created),
        Milestone::new("bound seen", sightings.bound),
    ];
    milestones.extend(timeline::container_milestones(&events));
    milestones.push(Milestone::new("Running+Ready seen", sightings.ready));
    let phases = timeline::phases(&milestones);
    let _ = deployments.delete(&name, &DeleteParams::background()).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map(|l| l.items.len())
            .unwrap_or(usize::MAX);
        let containers = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.skiff.node={node}"),
        ])
        .map(|s| s.split_whitespace().count())
        .unwrap_or(usize::MAX);
        if left == 0 && containers == 0 {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("warning: {left} pods and {containers} containers still there after cleanup");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    result.map(|elapsed| Run { elapsed, phases })
}

/// Swarm, initialised here if the engine was not part of one (then left again on drop); the
/// bench's services are removed on drop.
struct SwarmGuard {
    initialised: bool,
    services: Vec<String>,
}

impl SwarmGuard {
    fn start() -> anyhow::Result<SwarmGuard> {
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"])?;
        let initialised = match state.as_str() {
            "active" => false,
            "inactive" => {
                docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"])?;
                true
            }
            other => bail!("Docker Swarm is {other:?}; expected active or inactive"),
        };
        Ok(SwarmGuard {
            initialised,
            services: Vec::new(),
        })
    }

    fn remove_service(&mut self, name: &str) {
        let _ = docker(&["service", "rm", name]);
        self.services.retain(|s| s != name);
        // Wait until its containers are gone, so the next run starts clean.
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let left = docker(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=com.docker.swarm.service.name={name}"),
            ])
            .map(|s| s.split_whitespace().count())
            .unwrap_or(0);
            if left == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        for s in self.services.clone() {
            self.remove_service(&s);
        }
        if self.initialised {
            let _ = docker(&["swarm", "leave", "--force"]);
        }
    }
}

/// `docker service create` → N/N tasks running.
async fn swarm_run(
    swarm: &mut SwarmGuard,
    replicas: usize,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let name = format!("skiff-bench-{}-{replicas}", std::process::id());
    let started = Instant::now();
    swarm.services.push(name.clone());
    docker(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        &name,
        "--replicas",
        &replicas.to_string(),
        "--stop-grace-period",
        "1s",
        IMAGE,
        "sleep",
        "3600",
    ])?;
    let want = format!("{replicas}/{replicas}");
    let result = loop {
        let status = docker(&[
            "service",
            "ls",
            "--filter",
            &format!("name={name}"),
            "--format",
            "{{.Name}} {{.Replicas}}",
        ])?;
        let line = status
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or("");
        if line.split_whitespace().nth(1) == Some(want.as_str()) {
            break Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            break Err(anyhow::anyhow!(
                "swarm service at {line:?} after {timeout:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    swarm.remove_service(&name);
    result
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.replicas.is_empty() && args.replicas.iter().all(|&r| r >= 1),
        "--replicas needs positive counts"
    );
    let timeout = Duration::from_secs(args.timeout_secs);
    println!(
        "bench startup: replicas {:?} of {IMAGE} ({} build of skiff)",
        args.replicas,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    eprintln!("starting skiff up...");
    let (up, client) = start_up().await?;
    let mut skiff = BTreeMap::new();
    for &n in &args.replicas {
        let run = skiff_run(&client, &up.node, n, timeout).await?;
        println!(
            "skiff  replicas={n:<4} apply->all Running {:.2}s",
            run.elapsed.as_secs_f64()
        );
        for (what, s) in &run.phases {
            println!(
                "         {what:<44} pods {:>4}  p50 {:>6.0} ms  p99 {:>6.0} ms",
                s.latencies.len(),
                ms(s.percentile(0.5)),
                ms(s.percentile(0.99))
            );
        }
        let floor_label = format!("io.skiff.bench=startup-floor-{}", std::process::id());
        let floor = super::pods::docker_run_floor(&floor_label, n).await?;
        println!(
            "floor  replicas={n:<4} docker run -d in parallel {:.2}s (skiff/floor {:.2})",
            floor.elapsed.as_secs_f64(),
            run.elapsed.as_secs_f64() / floor.elapsed.as_secs_f64().max(1e-9)
        );
        skiff.insert(n, run.elapsed);
    }
    drop(up);
    if args.compare_swarm {
        let mut swarm = SwarmGuard::start()?;
        for &n in &args.replicas {
            let t = swarm_run(&mut swarm, n, timeout).await?;
            let ratio = skiff
                .get(&n)
                .map(|s| s.as_secs_f64() / t.as_secs_f64().max(1e-9))
                .unwrap_or(0.0);
            println!(
                "swarm  replicas={n:<4} create->all running {:.2}s (skiff/swarm {ratio:.2})",
                t.as_secs_f64()
            );
        }
    }
    Ok(())
}
