//! Issue 7's acceptance for agents: a node agent given every member's API address fails over
//! to a live member, and nobody has to do anything.
//!
//! A 3-member control plane whose members run in network namespaces of their own (jepsen's
//! `net::Net` and `cluster::Cluster`), one `skiff agent` process on the host given all three
//! API addresses (`--server a,b,c`), and a Deployment of two `skiff-test/httpd:1` pods with an
//! HTTP readiness probe on that node. The steps:
//!
//! 1. each member in turn `kill -9`ed (each time the one the agent talks to, as it moves on
//!    from the first to the next) and restarted;
//! 2. all three killed at once and restarted in a random order;
//! 3. the member the agent talks to paused (SIGSTOP) for 20 s, then continued: while it is
//!    paused, the agent moves to another member and renews its Lease there (the pause lasts
//!    until that is seen, at least 20 s: the agent renews every 10 s and gives a request up
//!    after 10 s, so moving on takes up to about 22 s);
//! 4. the member the agent talks to isolated from the other two by nftables drops, then
//!    healed: while it is cut off the agent moves on, renews its Lease and starts a pod created
//!    meanwhile (its pod watch moved too: the isolated member would never have shown it).
//!
//! After each step, through a surviving member: `kubectl create configmap` succeeds and every
//! ConfigMap acknowledged before is there; the Deployment has 2 available replicas and the same
//! pods (uids) with the same containers (ids, start times) running in Docker; the Node is Ready
//! and has been since the start (same transition time); its Lease's renewTime advances. The
//! agent's own metrics (`skiff_agent_api_server_current`) say which member it talks to.
//!
//! The pod started during the isolation shows the agent's pod watch left the isolated member
//! when the watch was there, which is where it is when the failover works (watches follow the
//! rotation). That watches from a left server end is checked deterministically, without a
//! cluster, by skiff-agent's `t75_failover`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use skiff_jepsen::cluster::Cluster as JCluster;
use skiff_jepsen::net::{self, Net};
use skiff_tests::agent::{Agent, node_token_in, pod_containers, unique_node_name};
use skiff_tests::kubectl::{Kubectl, kubectl_versions};
use skiff_tests::wait;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: skiff-test/httpd:1
        readinessProbe:
          httpGet: {path: /, port: 80}
          periodSeconds: 2
"#;

/// The cluster, the agent and what the test has seen so far.
struct Scene {
    c: JCluster,
    agent: Agent,
    /// kubectl through each member (its own kubeconfig and discovery cache).
    kubectl: Vec<Kubectl>,
    node: String,
    /// ConfigMaps whose creation kubectl reported as done.
    acked: Vec<String>,
    /// The Deployment's pods: name → (uid, `id startedAt status` of every container).
    pods: BTreeMap<String, (String, Vec<String>)>,
    /// When the Node's Ready condition last changed, as first seen Ready.
    ready_since: String,
}

impl Scene {
    fn kubectl(&self, member: usize) -> anyhow::Result<&Kubectl> {
        self.kubectl
            .get(member)
            .with_context(|| format!("no member m{}", member + 1))
    }

    fn url(&self, member: usize) -> String {
        format!("https://{}", self.c.members[member].api)
    }

    /// `kubectl create configmap` through `member`, retried while the cluster recovers (a
    /// retry after an unknown outcome may find it created).
    async fn create_through(&mut self, member: usize, name: &str) -> anyhow::Result<()> {
        let k = self.kubectl(member)?;
        let what = format!("kubectl create configmap {name} through m{}", member + 1);
        wait::until_every(
            &what,
            Duration::from_secs(60),
            Duration::from_millis(500),
            || async {
                let out = k.run(&[
                    "create",
                    "configmap",
                    name,
                    "--from-literal",
                    &format!("k={name}"),
                    "--request-timeout=15s",
                ])?;
                if out.ok || out.stderr.contains("AlreadyExists") {
                    return Ok(Some(()));
                }
                anyhow::bail!("{}", out.stderr.trim())
            },
        )
        .await?;
        self.acked.push(name.to_string());
        Ok(())
    }

    /// Every acknowledged ConfigMap, read through `member`.
    async fn all_present(&self, member: usize) -> anyhow::Result<()> {
        let k = self.kubectl(member)?;
        let what = format!("every acknowledged ConfigMap through m{}", member + 1);
        wait::until_every(
            &what,
            Duration::from_secs(60),
            Duration::from_millis(500),
            || async {
                let out = k.run(&["get", "configmaps", "-o", "name", "--request-timeout=15s"])?;
                anyhow::ensure!(out.ok, "{}", out.stderr.trim());
                let missing: Vec<&String> = self
                    .acked
                    .iter()
                    .filter(|n| !out.stdout.contains(&format!("configmap/{n}\n")))
                    .collect();
                anyhow::ensure!(missing.is_empty(), "missing {missing:?}");
                Ok(Some(()))
            },
        )
        .await
    }

    /// The member the agent sends its requests to, from its metrics.
    fn agent_member(&self) -> anyhow::Result<usize> {
        let text = self.agent.metrics()?;
        let current = text
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix("skiff_agent_api_server_current{server=\"")?;
                let (url, value) = rest.split_once("\"} ")?;
                (value.trim() == "1").then(|| url.to_string())
            })
            .context("no skiff_agent_api_server_current series at 1")?;
        (0..self.c.members.len())
            .find(|&i| self.url(i) == current)
            .with_context(|| format!("the agent talks to {current}, which is no member"))
    }

    /// How many Lease renewals the agent has had acknowledged.
    fn lease_renewals(&self) -> anyhow::Result<u64> {
        let text = self.agent.metrics()?;
        Ok(text
            .lines()
            .find_map(|l| {
                l.strip_prefix("kubelet_node_status_updates_total{kind=\"lease\",result=\"ok\"} ")
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    }

    /// Waits until the agent has moved off `member` and renewed its Lease more than `before`
    /// times, i.e. through another member.
    async fn agent_moves_off(&self, member: usize, before: u64) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let what = format!(
            "the agent to leave m{} and renew its Lease elsewhere",
            member + 1
        );
        wait::until_every(
            &what,
            Duration::from_secs(45),
            Duration::from_millis(250),
            || async {
                let now = self.agent_member()?;
                let renewals = self.lease_renewals()?;
                anyhow::ensure!(now != member, "still on m{}", member + 1);
                anyhow::ensure!(renewals > before, "on m{}, no renewal since", now + 1);
                Ok(Some(()))
            },
        )
        .await?;
        Ok(started.elapsed())
    }

    fn get(&self, member: usize, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.push("--request-timeout=15s");
        self.kubectl(member)?.ok(&all)
    }

    /// The Deployment's pods as `name uid` lines.
    fn deployment_pods(&self, member: usize) -> anyhow::Result<BTreeMap<String, String>> {
        let out = self.get(
            member,
            &[
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.metadata.uid}{\"\\n\"}{end}",
            ],
        )?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, u)| (n.to_string(), u.to_string()))
            .collect())
    }

    /// The Node's Ready condition: (status, lastTransitionTime).
    fn node_ready(&self, member: usize) -> anyhow::Result<(String, String)> {
        let out = self.get(
            member,
            &[
                "node",
                &self.node,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} \
                 {.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}",
            ],
        )?;
        let (status, since) = out.trim().split_once(' ').unwrap_or((out.trim(), ""));
        Ok((status.to_string(), since.to_string()))
    }

    fn renew_time(&self, member: usize) -> anyhow::Result<String> {
        self.get(
            member,
            &[
                "lease",
                "-n",
                "kube-node-lease",
                &self.node,
                "-o",
                "jsonpath={.spec.renewTime}",
            ],
        )
    }

    /// What must hold after every step, checked through `member` (a survivor).
    async fn check(&mut self, step: &str, member: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        self.create_through(member, &format!("after-{step}"))
            .await?;
        self.all_present(member).await?;
        let what = format!("the Deployment intact and available after {step}");
        wait::until_every(
            &what,
            Duration::from_secs(60),
            Duration::from_secs(1),
            || async {
                let available = self.get(
                    member,
                    &[
                        "deployment",
                        "web",
                        "-o",
                        "jsonpath={.status.availableReplicas}",
                    ],
                )?;
                let pods = self.deployment_pods(member)?;
                let expected: BTreeMap<String, String> = self
                    .pods
                    .iter()
                    .map(|(n, (uid, _))| (n.clone(), uid.clone()))
                    .collect();
                anyhow::ensure!(pods == expected, "pods {pods:?}, expected {expected:?}");
                for (name, (_, containers)) in &self.pods {
                    let now = pod_containers(&self.node, name)?;
                    anyhow::ensure!(
                        &now == containers,
                        "{name}'s containers changed: {now:?}, were {containers:?}"
                    );
                }
                anyhow::ensure!(available == "2", "availableReplicas {available:?}");
                Ok(Some(()))
            },
        )
        .await?;
        let (status, since) = self.node_ready(member)?;
        anyhow::ensure!(
            status == "True" && since == self.ready_since,
            "{} is Ready={status} since {since:?}; it was Ready since {:?}",
            self.node,
            self.ready_since
        );
        let renewed = self.renew_time(member)?;
        let what = format!("{}'s Lease renewed after {step}", self.node);
        wait::until_every(
            &what,
            Duration::from_secs(40),
            Duration::from_secs(1),
            || async {
                let now = self.renew_time(member)?;
                // RFC 3339 with microseconds, always in UTC: ordered as strings.
                anyhow::ensure!(now > renewed, "renewTime still {now}");
                Ok(Some(()))
            },
        )
        .await?;
        eprintln!(
            "t47 {step}: checked through m{} in {:?}; the agent talks to m{}",
            member + 1,
            started.elapsed(),
            self.agent_member().map(|m| m + 1).unwrap_or(0)
        );
        Ok(())
    }

    fn dump(&self) -> String {
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        format!(
            "agent log (last lines):\n{}\n{}",
            tail(&self.agent.log()),
            self.c.log_tails()
        )
    }
}

/// Continues a paused member's process (`kill -CONT`) on drop.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_every_member_fails_over_through_kills_pauses_and_isolation()
-> anyhow::Result<()> {
    let started = Instant::now();
    let Some((_, kubectl)) = kubectl_versions().pop() else {
        anyhow::bail!("no kubectl binary (set SKIFF_KUBECTL_DIR)");
    };
    let dir = tempfile::Builder::new()
        .prefix("skiff-t47-agent-failover-")
        .tempdir()?;
    let net = Net::create(3)?;
    let c = JCluster::start(net, dir.path(), &skiff_tests::skiff_bin(), Vec::new()).await?;
    let token = wait::until(
        "m1 to print the node token",
        Duration::from_secs(30),
        || async {
            let log = std::fs::read_to_string(c.log_path(0)).unwrap_or_default();
            Ok(node_token_in(&log))
        },
    )
    .await?;
    let servers: Vec<String> = c
        .members
        .iter()
        .map(|m| format!("https://{}", m.api))
        .collect();
    let node = unique_node_name("t47");
    let agent = Agent::start_with(&servers.join(","), &token, &node, true)?;
    let kubectl = (0..c.members.len())
        .map(|i| Kubectl::new(kubectl.clone(), c.kubeconfig(i)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut scene = Scene {
        c,
        agent,
        kubectl,
        node,
        acked: Vec::new(),
        pods: BTreeMap::new(),
        ready_since: String::new(),
    };
    let result = scenario(&mut scene).await;
    if let Err(e) = &result {
        eprintln!("{}\nerror: {e:#}", scene.dump());
    }
    eprintln!("t47 took {:?}", started.elapsed());
    result
}

async fn scenario(s: &mut Scene) -> anyhow::Result<()> {
    // The node joins, the Deployment runs on it.
    let node = s.node.clone();
    let ready_since = wait::until_every(
        &format!("{node} Ready"),
        Duration::from_secs(120),
        Duration::from_secs(1),
        || async {
            let (status, since) = s.node_ready(0)?;
            Ok((status == "True").then_some(since))
        },
    )
    .await?;
    s.ready_since = ready_since;
    let out = s.kubectl(0)?.apply_stdin(DEPLOYMENT, &[])?;
    anyhow::ensure!(out.ok, "kubectl apply: {}", out.stderr);
    wait::until_every(
        "the Deployment available with 2 running pods",
        Duration::from_secs(180),
        Duration::from_secs(1),
        || async {
            let available = s.get(
                0,
                &[
                    "deployment",
                    "web",
                    "-o",
                    "jsonpath={.status.availableReplicas}",
                ],
            )?;
            Ok((available == "2").then_some(()))
        },
    )
    .await?;
    for (name, uid) in s.deployment_pods(0)? {
        let containers = pod_containers(&node, &name)?;
        anyhow::ensure!(
            containers.len() == 2 && containers.iter().all(|c| c.ends_with(" running")),
            "{name} should have a running sandbox and app container: {containers:?}"
        );
        s.pods.insert(name, (uid, containers));
    }
    anyhow::ensure!(s.pods.len() == 2, "pods: {:?}", s.pods);
    s.create_through(0, "start").await?;
    anyhow::ensure!(
        s.agent_member()? == 0,
        "the agent starts with the first server"
    );

    // 1. Each member killed in turn, then restarted. The agent starts on m1, so each kill hits
    //    the member it talks to at that moment.
    for victim in 0..3 {
        let on = s.agent_member()?;
        let renewals = s.lease_renewals()?;
        s.c.kill(victim);
        if on == victim {
            let took = s.agent_moves_off(victim, renewals).await?;
            eprintln!(
                "t47 kill m{}: the agent moved on after {took:?}",
                victim + 1
            );
        }
        s.check(&format!("kill-m{}", victim + 1), (victim + 1) % 3)
            .await?;
        s.all_present((victim + 2) % 3).await?;
        s.c.restart(victim)?;
        s.all_present(victim).await?;
    }

    // 2. All three at once, restarted in a random order.
    for i in 0..3 {
        s.c.kill(i);
    }
    let mut order = vec![0usize, 1, 2];
    let r = rand::random::<u32>() as usize;
    order.rotate_left(r % 3);
    if r.is_multiple_of(2) {
        order.swap(1, 2);
    }
    eprintln!(
        "t47 restart order: {:?}",
        order.iter().map(|i| i + 1).collect::<Vec<_>>()
    );
    for &i in &order {
        s.c.restart(i)?;
    }
    for &i in &order {
        s.all_present(i).await?;
    }
    s.check("kill-all", order[0]).await?;

    // 3. The member the agent talks to paused for at least 20 s: it moves on and keeps the
    //    Lease.
    let target = s.agent_member()?;
    let survivor = (target + 1) % 3;
    let renewals = s.lease_renewals()?;
    let pid = s.c.members[target]
        .child
        .as_ref()
        .map(|child| child.id())
        .context("the member to pause is not running")?;
    // Continued even if the test panics midway.
    let _resume = Resume(pid);
    let paused_at = Instant::now();
    s.c.pause(target)?;
    let result = pause_step(s, target, survivor, renewals, paused_at).await;
    s.c.resume(target)?;
    result?;
    s.all_present(target).await?;
    s.check("pause", survivor).await?;

    // 4. The member the agent talks to isolated from the other two, then healed.
    let target = s.agent_member()?;
    let survivor = (target + 1) % 3;
    let others: Vec<usize> = (0..3).filter(|&i| i != target).collect();
    let renewals = s.lease_renewals()?;
    s.c.net.partition(&net::split(3, &[target], &others))?;
    let result = isolation_step(s, target, survivor, renewals).await;
    s.c.net.heal()?;
    result?;
    s.all_present(target).await?;
    s.check("heal", target).await?;
    Ok(())
}

/// While `target` is paused: the agent moves off it and renews its Lease elsewhere, kubectl
/// works through a survivor; the pause lasts 20 s (a scenario duration, not a poll).
async fn pause_step(
    s: &mut Scene,
    target: usize,
    survivor: usize,
    renewals: u64,
    paused_at: Instant,
) -> anyhow::Result<()> {
    let took = s.agent_moves_off(target, renewals).await?;
    eprintln!(
        "t47 pause m{}: the agent moved on after {took:?}",
        target + 1
    );
    s.create_through(survivor, "during-pause").await?;
    s.all_present((target + 2) % 3).await?;
    let rest = Duration::from_secs(20).saturating_sub(paused_at.elapsed());
    tokio::time::sleep(rest).await;
    Ok(())
}

/// While `target` is cut off from the other members: the agent moves off it, renews its
/// Lease elsewhere and starts a pod created meanwhile; every check holds through a survivor.
async fn isolation_step(
    s: &mut Scene,
    target: usize,
    survivor: usize,
    renewals: u64,
) -> anyhow::Result<()> {
    let took = s.agent_moves_off(target, renewals).await?;
    eprintln!(
        "t47 isolate m{}: the agent moved on after {took:?}",
        target + 1
    );
    let k = s.kubectl(survivor)?;
    k.ok(&[
        "run",
        "while-isolated",
        "--image=skiff-test/busybox:1",
        "--restart=Never",
        "--request-timeout=15s",
        "--",
        "sleep",
        "3600",
    ])?;
    wait::until_every(
        "the pod created during the isolation Running on the agent",
        Duration::from_secs(90),
        Duration::from_secs(1),
        || async {
            let phase = s.get(
                survivor,
                &["pod", "while-isolated", "-o", "jsonpath={.status.phase}"],
            )?;
            Ok((phase == "Running").then_some(()))
        },
    )
    .await?;
    s.check("isolation", survivor).await
}
