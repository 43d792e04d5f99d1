//! Issue 5's acceptance, end to end: `skiff up` (control plane, scheduler, controllers and a node
//! agent) plus a second `skiff agent` process, real Docker, real kubectl. Deployments (spread,
//! rollout without losing availability, history, undo, scale, self-healing, deletion),
//! StatefulSet with PVCs, DaemonSet, Jobs, CronJob, an unschedulable pod's explanation, drain
//! with a PodDisruptionBudget, and pods leaving a node whose agent stopped.
//!
//! One cluster serves every case (they use their own namespaces); node names, ports and
//! directories are unique per run and everything is removed on drop, also on failure.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use skiff_tests::cluster::free_port;
use skiff_tests::kubectl::{Kubectl, Up, kubectl_versions, remove_node_containers};
use skiff_tests::wait;

/// A second node: a `skiff agent` process, killed (SIGKILL) and its containers removed on drop.
struct Agent {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    fn start(up: &Up, name: &str, token: &str) -> anyhow::Result<Agent> {
        let dir = up.dir.path().join(format!("agent-{name}"));
        std::fs::create_dir_all(&dir)?;
        let log = up.dir.path().join(format!("agent-{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(skiff_tests::skiff_bin())
            .args(["agent", "--server", &format!("https://{}", up.api)])
            .args(["--token", token, "--name", name, "--node-ip", "127.0.0.1"])
            .arg("--node-api-listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--data-dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Agent {
            name: name.to_string(),
            child: Some(child),
            log,
        })
    }

    /// SIGKILL: the node stops heartbeating (its containers keep running, as with a real crash).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        remove_node_containers(&self.name);
    }
}

async fn client(up: &Up) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(up.kubeconfig())?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn node_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn image_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref())
        .unwrap_or("")
}

/// Pods matching `selector` that are not being deleted.
async fn live_pods(client: &Client, ns: &str, selector: &str) -> anyhow::Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = api.list(&ListParams::default().labels(selector)).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

/// Waits until exactly `n` live pods match, all Running and Ready; returns them.
async fn wait_running(
    client: &Client,
    ns: &str,
    selector: &str,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Pod>> {
    wait::until(
        &format!("{n} Running and Ready pods {selector} in {ns}"),
        timeout,
        || async {
            let pods = live_pods(client, ns, selector).await?;
            let summary: Vec<String> = pods
                .iter()
                .map(|p| {
                    format!(
                        "{}@{}:{}{}",
                        p.metadata.name.as_deref().unwrap_or(""),
                        node_of(p),
                        phase(p),
                        if is_ready(p) { "/ready" } else { "" }
                    )
                })
                .collect();
            if pods.len() == n && pods.iter().all(|p| phase(p) == "Running" && is_ready(p)) {
                Ok(Some(pods))
            } else {
                anyhow::bail!("{summary:?}")
            }
        },
    )
    .await
}

/// Waits until no pod (live or terminating) matches.
async fn wait_no_pods(
    client: &Client,
    ns: &str,
    selector: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait::until(&format!("no pods {selector} in {ns}"), timeout, || async {
        let list = api.list(&ListParams::default().labels(selector)).await?;
        if list.items.is_empty() {
            Ok(Some(()))
        } else {
            let names: Vec<_> = list.items.iter().map(|p| p.metadata.name.clone()).collect();
            anyhow::bail!("still there: {names:?}")
        }
    })
    .await
}

/// Samples how many live pods matching `selector` are Ready, every 100 ms, until stopped;
/// returns the minimum seen and the number of samples.
fn sample_ready(
    client: Client,
    ns: &str,
    selector: &str,
) -> (
    Arc<AtomicBool>,
    tokio::task::JoinHandle<anyhow::Result<(usize, usize)>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let min = Arc::new(AtomicUsize::new(usize::MAX));
    let (ns, selector, flag) = (ns.to_string(), selector.to_string(), stop.clone());
    let task = tokio::spawn(async move {
        let mut samples = 0;
        while !flag.load(Ordering::SeqCst) {
            let pods = live_pods(&client, &ns, &selector).await?;
            let ready = pods.iter().filter(|p| is_ready(p)).count();
            min.fetch_min(ready, Ordering::SeqCst);
            samples += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok((min.load(Ordering::SeqCst), samples))
    });
    (stop, task)
}

fn contains(haystack: &str, needle: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
    Ok(())
}

const STATEFULSET: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: sts}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: sts}
spec:
  serviceName: web
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: skiff-test/busybox:1
        command: [sh, -c, "echo $(hostname) > /data/who; exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 16Mi}}
"#;

const DAEMONSET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: ds}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: skiff-test/busybox:1, command: [sleep, "3600"]}
"#;

const FAILING_JOB: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: fails, namespace: jobs}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: skiff-test/busybox:1, command: [sh, -c, "exit 3"]}
"#;

const CRONJOB: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick, namespace: jobs}
spec:
  schedule: "*/1 * * * *"
  successfulJobsHistoryLimit: 2
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - {name: main, image: skiff-test/busybox:1, command: [sh, -c, "echo tick"]}
"#;

const UNSCHEDULABLE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: huge, namespace: default}
spec:
  containers:
  - name: main
    image: skiff-test/busybox:1
    command: [sleep, "3600"]
    resources: {requests: {cpu: "500"}}
"#;

/// A Deployment of two pods that prefer `node` (so they start there), with a PDB and short
/// tolerations for an unreachable or not-ready node.
fn pinned_deployment(name: &str, ns: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            preference:
              matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: [{node}]}}]
      tolerations:
      - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}}
      - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}}
      containers:
      - {{name: main, image: skiff-test/busybox:1, command: [sleep, "3600"]}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: {name}, namespace: {ns}}}
spec:
  minAvailable: 1
  selector: {{matchLabels: {{app: {name}}}}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_heal_themselves_on_two_nodes() -> anyhow::Result<()> {
    let started = Instant::now();
    let Some((_, bin)) = kubectl_versions().pop() else {
        anyhow::bail!("no kubectl binary (set SKIFF_KUBECTL_DIR)");
    };
    let id = std::process::id();
    let (node_a, node_b) = (format!("t81a-{id}"), format!("t81b-{id}"));
    let up = Up::start_with_agent_args(&node_a, &["--node-monitor-grace-secs", "20"]).await?;
    let token = wait::until(
        "skiff up to print the node token",
        Duration::from_secs(10),
        || async { Ok(up.node_token().ok()) },
    )
    .await?;
    let mut agent_b = Agent::start(&up, &node_b, &token)?;
    let k = Kubectl::new(bin, up.kubeconfig())?;
    let c = client(&up).await?;
    let result = scenario(&up, &k, &c, &mut agent_b, &node_a, &node_b).await;
    if let Err(e) = &result {
        let agent_log = std::fs::read_to_string(&agent_b.log).unwrap_or_default();
        let tail = |s: &str| s.lines().rev().take(60).collect::<Vec<_>>().join("\n");
        eprintln!(
            "skiff up log (last lines, newest first):\n{}\nagent {node_b} log:\n{}\nerror: {e:#}",
            tail(&up.log()),
            tail(&agent_log)
        );
    }
    eprintln!("t81 took {:?}", started.elapsed());
    result
}

async fn scenario(
    _up: &Up,
    k: &Kubectl,
    c: &Client,
    agent_b: &mut Agent,
    node_a: &str,
    node_b: &str,
) -> anyhow::Result<()> {
    let minute = Duration::from_secs(60);
    // Both nodes register and turn Ready.
    let nodes: Api<Node> = Api::all(c.clone());
    wait::until("both nodes Ready", Duration::from_secs(90), || async {
        let list = nodes.list(&ListParams::default()).await?;
        let ready: Vec<String> = list
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        Ok((ready.iter().any(|n| n == node_a) && ready.iter().any(|n| n == node_b)).then_some(()))
    })
    .await?;

    // Long waits first: the CronJob and the Jobs run while the rest goes on.
    for ns in ["jobs", "sts", "ds", "drain"] {
        k.ok(&["create", "namespace", ns])?;
    }
    let out = k.apply_stdin(CRONJOB, &[])?;
    anyhow::ensure!(out.ok, "apply cronjob: {}", out.stderr);
    let cron_created = Instant::now();
    k.ok(&[
        "create",
        "job",
        "ok",
        "-n",
        "jobs",
        "--image=skiff-test/busybox:1",
        "--",
        "sh",
        "-c",
        "echo done",
    ])?;
    let out = k.apply_stdin(FAILING_JOB, &[])?;
    anyhow::ensure!(out.ok, "apply failing job: {}", out.stderr);

    // A 3-replica Deployment spreads over both nodes; rollout status returns.
    let n = ["-n", "default"];
    k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=skiff-test/httpd:1",
        "--replicas=3",
        "--",
        "sleep",
        "3600",
    ])?;
    let pods = wait_running(c, "default", "app=web", 3, 2 * minute).await?;
    let on: std::collections::BTreeSet<&str> = pods.iter().map(node_of).collect();
    anyhow::ensure!(
        on.contains(node_a) && on.contains(node_b),
        "3 replicas not spread over both nodes: {on:?}"
    );
    let status = k.ok(&[
        "rollout",
        "status",
        "deployment/web",
        "--timeout=60s",
        n[0],
        n[1],
    ])?;
    contains(&status, "successfully rolled out")?;

    // set image: a rolling update (25%/25% of 3: surge 1, unavailable 0) never drops below 3
    // ready pods.
    let (stop, sampler) = sample_ready(c.clone(), "default", "app=web");
    k.ok(&[
        "set",
        "image",
        "deployment/web",
        "httpd=skiff-test/busybox:1",
    ])?;
    let status = k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"])?;
    contains(&status, "successfully rolled out")?;
    let pods = wait_running(c, "default", "app=web", 3, minute).await?;
    stop.store(true, Ordering::SeqCst);
    let (min_ready, samples) = sampler.await??;
    anyhow::ensure!(
        min_ready >= 3,
        "availability dropped to {min_ready} ready pods during the rollout ({samples} samples)"
    );
    eprintln!("rollout: minimum ready pods {min_ready} over {samples} samples");
    anyhow::ensure!(
        pods.iter().all(|p| image_of(p) == "skiff-test/busybox:1"),
        "not every pod runs the new image"
    );
    let history = k.ok(&["rollout", "history", "deployment/web"])?;
    contains(&history, "REVISION")?;
    anyhow::ensure!(
        history.lines().any(|l| l.trim_start().starts_with('1'))
            && history.lines().any(|l| l.trim_start().starts_with('2')),
        "revisions 1 and 2 expected:\n{history}"
    );
    let rs = k.ok(&["get", "rs", "-l", "app=web", "-o", "name"])?;
    anyhow::ensure!(rs.lines().count() == 2, "two ReplicaSets expected:\n{rs}");
    contains(
        &k.ok(&["rollout", "undo", "deployment/web"])?,
        "rolled back",
    )?;
    k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"])?;
    let pods = wait_running(c, "default", "app=web", 3, minute).await?;
    anyhow::ensure!(
        pods.iter().all(|p| image_of(p) == "skiff-test/httpd:1"),
        "undo did not bring the first image back"
    );
    let history = k.ok(&["rollout", "history", "deployment/web"])?;
    anyhow::ensure!(
        history.lines().any(|l| l.trim_start().starts_with('3')),
        "revision 3 expected after undo:\n{history}"
    );

    // scale up and down
    k.ok(&["scale", "deployment/web", "--replicas=5"])?;
    wait_running(c, "default", "app=web", 5, 2 * minute).await?;
    k.ok(&["scale", "deployment/web", "--replicas=2"])?;
    let pods = wait_running(c, "default", "app=web", 2, minute).await?;
    let ready = k.ok(&[
        "get",
        "deployment/web",
        "-o",
        "jsonpath={.status.readyReplicas}/{.status.replicas}",
    ])?;
    wait::until("deployment status 2/2", minute, || async {
        let s = k.ok(&[
            "get",
            "deployment/web",
            "-o",
            "jsonpath={.status.readyReplicas}/{.status.replicas}/{.status.updatedReplicas}",
        ])?;
        Ok((s == "2/2/2").then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#} (first read {ready})"))?;

    // a deleted pod is replaced
    let victim = pods[0].metadata.name.clone().unwrap_or_default();
    k.ok(&["delete", "pod", &victim, "--wait=false"])?;
    let pods = wait_running(c, "default", "app=web", 2, minute).await?;
    anyhow::ensure!(
        pods.iter()
            .all(|p| p.metadata.name.as_deref() != Some(victim.as_str())),
        "the deleted pod {victim} is still counted"
    );

    // delete deployment removes its ReplicaSets and pods
    k.ok(&["delete", "deployment", "web", "--wait=false"])?;
    wait::until("web's ReplicaSets gone", minute, || async {
        let rs = k.ok(&["get", "rs", "-l", "app=web", "-o", "name"])?;
        Ok(rs.trim().is_empty().then_some(()))
    })
    .await?;
    wait_no_pods(c, "default", "app=web", minute).await?;

    // An unschedulable pod says why.
    let out = k.apply_stdin(UNSCHEDULABLE, &[])?;
    anyhow::ensure!(out.ok, "apply pod: {}", out.stderr);
    wait::until("describe to explain the pending pod", minute, || async {
        let d = k.ok(&["describe", "pod", "huge"])?;
        Ok(
            (d.contains("0/2 nodes are available") && d.contains("2 Insufficient cpu"))
                .then_some(d),
        )
    })
    .await?;
    k.ok(&["delete", "pod", "huge", "--wait=false"])?;

    // StatefulSet: web-0 then web-1 (web-1 only once web-0 is Ready), each with its PVC.
    let out = k.apply_stdin(STATEFULSET, &[])?;
    anyhow::ensure!(out.ok, "apply statefulset: {}", out.stderr);
    let pod_api: Api<Pod> = Api::namespaced(c.clone(), "sts");
    wait::until("web-0 and web-1 Running, in order", 2 * minute, || async {
        let pods = live_pods(c, "sts", "app=web").await?;
        let by_name: BTreeMap<String, &Pod> = pods
            .iter()
            .map(|p| (p.metadata.name.clone().unwrap_or_default(), p))
            .collect();
        if by_name.contains_key("web-1") {
            let web0 = pod_api.get("web-0").await?;
            anyhow::ensure!(
                is_ready(&web0),
                "web-1 exists while web-0 is not Ready (ordered start violated)"
            );
        }
        let names: Vec<&String> = by_name.keys().collect();
        let all = by_name.len() == 2
            && by_name
                .values()
                .all(|p| phase(p) == "Running" && is_ready(p));
        if all {
            Ok(Some(()))
        } else {
            anyhow::bail!("pods so far: {names:?}")
        }
    })
    .await?;
    for claim in ["data-web-0", "data-web-1"] {
        wait::until(&format!("PVC {claim} Bound"), minute, || async {
            let phase = k.ok(&[
                "get",
                "pvc",
                claim,
                "-n",
                "sts",
                "-o",
                "jsonpath={.status.phase}",
            ])?;
            Ok((phase == "Bound").then_some(()))
        })
        .await?;
    }
    let who = k.ok(&["exec", "-n", "sts", "web-1", "--", "cat", "/data/who"])?;
    contains(&who, "web-1")?;
    // Out of the way of the drain below (its volumes tie it to a node).
    k.ok(&["delete", "statefulset", "web", "-n", "sts", "--wait=false"])?;

    // DaemonSet: one pod per node.
    let out = k.apply_stdin(DAEMONSET, &[])?;
    anyhow::ensure!(out.ok, "apply daemonset: {}", out.stderr);
    let pods = wait_running(c, "ds", "app=agent", 2, 2 * minute).await?;
    let on: std::collections::BTreeSet<&str> = pods.iter().map(node_of).collect();
    anyhow::ensure!(
        on.len() == 2 && on.contains(node_a) && on.contains(node_b),
        "DaemonSet pods not one per node: {on:?}"
    );

    // Jobs: one completes, the failing one stops after backoffLimit (1 retry: 2 pods).
    wait::until("job ok Complete", 2 * minute, || async {
        let s = k.ok(&[
            "get",
            "job",
            "ok",
            "-n",
            "jobs",
            "-o",
            "jsonpath={.status.succeeded}",
        ])?;
        Ok((s == "1").then_some(()))
    })
    .await?;
    wait::until(
        "job fails Failed (BackoffLimitExceeded)",
        2 * minute,
        || async {
            let s = k.ok(&[
                "get",
                "job",
                "fails",
                "-n",
                "jobs",
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Failed")].reason}"#,
            ])?;
            Ok((s == "BackoffLimitExceeded").then_some(()))
        },
    )
    .await?;
    let failed_pods = k.ok(&[
        "get",
        "pods",
        "-n",
        "jobs",
        "-l",
        "job-name=fails",
        "-o",
        "name",
    ])?;
    anyhow::ensure!(
        failed_pods.lines().count() == 2,
        "backoffLimit 1 means exactly 2 attempts:\n{failed_pods}"
    );

    // Drain node b, respecting the PDB (minAvailable 1 of 2 pods that start on node b).
    let out = k.apply_stdin(&pinned_deployment("drainme", "drain", node_b), &[])?;
    anyhow::ensure!(out.ok, "apply drainme: {}", out.stderr);
    let pods = wait_running(c, "drain", "app=drainme", 2, 2 * minute).await?;
    anyhow::ensure!(
        pods.iter().all(|p| node_of(p) == node_b),
        "drainme pods should prefer {node_b}: {:?}",
        pods.iter().map(node_of).collect::<Vec<_>>()
    );
    wait::until("the PDB to allow 1 disruption", minute, || async {
        let s = k.ok(&[
            "get",
            "pdb",
            "drainme",
            "-n",
            "drain",
            "-o",
            "jsonpath={.status.disruptionsAllowed}",
        ])?;
        Ok((s == "1").then_some(()))
    })
    .await?;
    let (stop, sampler) = sample_ready(c.clone(), "drain", "app=drainme");
    let drain = k.run(&[
        "drain",
        node_b,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=150s",
    ])?;
    stop.store(true, Ordering::SeqCst);
    let (min_ready, samples) = sampler.await??;
    anyhow::ensure!(drain.ok, "drain failed:\n{}{}", drain.stdout, drain.stderr);
    contains(&drain.stdout, "drained")?;
    anyhow::ensure!(
        min_ready >= 1,
        "the drain took drainme below its PDB ({min_ready} ready, {samples} samples)"
    );
    eprintln!(
        "drain: minimum ready {min_ready} over {samples} samples; PDB refusals seen: {}",
        drain.stderr.contains("disruption budget")
    );
    let pods = wait_running(c, "drain", "app=drainme", 2, minute).await?;
    anyhow::ensure!(
        pods.iter().all(|p| node_of(p) == node_a),
        "after the drain drainme should run on {node_a}"
    );
    let all = Api::<Pod>::all(c.clone())
        .list(&ListParams::default().fields(&format!("spec.nodeName={node_b}")))
        .await?;
    let left: Vec<String> = all
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            !p.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|o| o.kind == "DaemonSet"))
        })
        .filter(|p| !matches!(phase(p), "Succeeded" | "Failed"))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    anyhow::ensure!(left.is_empty(), "pods left on drained {node_b}: {left:?}");
    k.ok(&["uncordon", node_b])?;
    k.ok(&[
        "delete",
        "deployment",
        "drainme",
        "-n",
        "drain",
        "--wait=false",
    ])?;

    // The CronJob has fired by now or within its minute.
    let remaining = Duration::from_secs(150).saturating_sub(cron_created.elapsed());
    wait::until("the CronJob to start a Job", remaining.max(minute), || async {
        let s = k.ok(&[
            "get",
            "jobs",
            "-n",
            "jobs",
            "-o",
            "jsonpath={range .items[*]}{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {end}",
        ])?;
        Ok(s.contains("CronJob/tick").then_some(()))
    })
    .await?;
    let last = k.ok(&[
        "get",
        "cronjob",
        "tick",
        "-n",
        "jobs",
        "-o",
        "jsonpath={.status.lastScheduleTime}",
    ])?;
    anyhow::ensure!(!last.is_empty(), "CronJob has no lastScheduleTime");

    // Stop node b's agent: the node turns NotReady (Unknown) and its pods come back on node a
    // once their 2 s toleration of the unreachable taint has run out.
    let out = k.apply_stdin(&pinned_deployment("moveme", "default", node_b), &[])?;
    anyhow::ensure!(out.ok, "apply moveme: {}", out.stderr);
    let pods = wait_running(c, "default", "app=moveme", 2, 2 * minute).await?;
    anyhow::ensure!(
        pods.iter().all(|p| node_of(p) == node_b),
        "moveme pods should prefer {node_b}"
    );
    let killed = Instant::now();
    agent_b.kill();
    wait::until(&format!("{node_b} NotReady"), minute, || async {
        let s = k.ok(&["get", "node", node_b])?;
        Ok(s.contains("NotReady").then_some(()))
    })
    .await?;
    let not_ready_after = killed.elapsed();
    let taints = k.ok(&[
        "get",
        "node",
        node_b,
        "-o",
        "jsonpath={.spec.taints[*].key}",
    ])?;
    contains(&taints, "node.kubernetes.io/unreachable")?;
    let pods = wait_running(c, "default", "app=moveme", 2, minute).await?;
    anyhow::ensure!(
        pods.iter().all(|p| node_of(p) == node_a),
        "moveme pods should have moved to {node_a}: {:?}",
        pods.iter().map(node_of).collect::<Vec<_>>()
    );
    eprintln!(
        "agent stop: NotReady after {not_ready_after:?}, pods Running on {node_a} after {:?}",
        killed.elapsed()
    );
    Ok(())
}

const ROLLING: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: roll, namespace: default}
spec:
  replicas: 4
  minReadySeconds: 2
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector: {matchLabels: {app: roll}}
  template:
    metadata: {labels: {app: roll}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: skiff-test/httpd:1, command: [sleep, "3600"]}
"#;

/// A 3-member control plane with one agent: `kill -9` of the Raft leader in the middle of a
/// rollout; the new leader's controllers finish it, and the controller Lease names the new
/// holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_leader_finishes_a_rollout_after_kill_9() -> anyhow::Result<()> {
    use skiff_tests::cluster::Cluster;
    let mut cluster = Cluster::start(3, &[]).await?;
    let leader = cluster.leader().await?;
    let survivor = (leader + 1) % 3;
    let Some((_, bin)) = kubectl_versions().pop() else {
        anyhow::bail!("no kubectl binary (set SKIFF_KUBECTL_DIR)");
    };
    let mut k = Kubectl::new(bin, cluster.members[0].data_dir.join("admin.kubeconfig"))?;
    k.server = Some(format!("https://{}", cluster.members[survivor].api));
    wait::until("the API", Duration::from_secs(30), || async {
        Ok(k.run(&["get", "ns", "default"])?.ok.then_some(()))
    })
    .await?;
    let m1_log = cluster.log_path(0);
    let token = wait::until(
        "m1 to print the node token",
        Duration::from_secs(10),
        || async {
            let text = std::fs::read_to_string(&m1_log).unwrap_or_default();
            Ok(text.lines().find_map(|l| {
                let rest = l.split_once("skiff agent ")?.1.split_once("--token ")?.1;
                rest.split_whitespace().next().map(str::to_string)
            }))
        },
    )
    .await?;
    // The agent talks to a member that survives.
    let node = format!("t81c-{}", std::process::id());
    let dir = cluster.dir.path().join("agent");
    std::fs::create_dir_all(&dir)?;
    let log = cluster.dir.path().join("agent.log");
    let out = std::fs::File::create(&log)?;
    let child = Command::new(skiff_tests::skiff_bin())
        .args(["agent", "--server"])
        .arg(format!("https://{}", cluster.members[survivor].api))
        .args(["--token", &token, "--name", &node, "--node-ip", "127.0.0.1"])
        .arg("--node-api-listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    let _agent = Agent {
        name: node.clone(),
        child: Some(child),
        log,
    };
    let result = async {
        wait::until(&format!("{node} Ready"), Duration::from_secs(90), || async {
            let s = k.run(&["get", "node", &node, "--no-headers"])?;
            Ok((s.ok && s.stdout.split_whitespace().nth(1) == Some("Ready")).then_some(()))
        })
        .await?;
        let holder = |k: &Kubectl| {
            k.run(&[
                "get",
                "lease",
                "-n",
                "kube-system",
                "skiff-controller-manager",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ])
            .map(|o| o.stdout)
        };
        // The controllers write their Lease shortly after the leader wins;
        // the node can be Ready before that.
        let first = wait::until("the controller Lease to have a holder", Duration::from_secs(30), || async {
            let h = holder(&k).unwrap_or_default();
            Ok((!h.is_empty()).then_some(h))
        })
        .await?;
        anyhow::ensure!(
            first == cluster.members[leader].name,
            "controller Lease held by {first:?}, leader is {}",
            cluster.members[leader].name
        );
        let out = k.apply_stdin(ROLLING, &[])?;
        anyhow::ensure!(out.ok, "apply: {}", out.stderr);
        k.ok(&["rollout", "status", "deployment/roll", "--timeout=180s"])?;
        k.ok(&["set", "image", "deployment/roll", "main=skiff-test/busybox:1"])?;
        // Kill the leader once the rollout is under way but not done.
        wait::until("the rollout to be under way", Duration::from_secs(60), || async {
            let s = k.ok(&[
                "get",
                "deployment/roll",
                "-o",
                "jsonpath={.status.updatedReplicas}",
            ])?;
            let n: u32 = s.parse().unwrap_or(0);
            Ok((n >= 1).then_some(n))
        })
        .await?;
        let killed = Instant::now();
        cluster.kill(leader);
        let new_holder = wait::until("a new controller Lease holder", Duration::from_secs(30), || async {
            let h = holder(&k).unwrap_or_default();
            Ok((!h.is_empty() && h != first).then_some(h))
        })
        .await?;
        let failover = killed.elapsed();
        let status = k.ok(&["rollout", "status", "deployment/roll", "--timeout=180s"])?;
        contains(&status, "successfully rolled out")?;
        wait::until("every roll pod on the new image", Duration::from_secs(60), || async {
            let images = k.ok(&[
                "get",
                "pods",
                "-l",
                "app=roll",
                "-o",
                "jsonpath={.items[*].spec.containers[0].image}",
            ])?;
            let all_new = images.split_whitespace().count() == 4
                && images.split_whitespace().all(|i| i == "skiff-test/busybox:1");
            Ok(all_new.then_some(()))
        })
        .await?;
        eprintln!(
            "leader kill: controller Lease moved to {new_holder} after {failover:?}; rollout done after {:?}",
            killed.elapsed()
        );
        Ok(())
    }
    .await;
    if let Err(e) = &result {
        eprintln!("{}\nerror: {e:#}", cluster.log_tails());
    }
    result
}
