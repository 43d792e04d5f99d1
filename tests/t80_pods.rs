//! Issue 4's acceptance, end to end: pods run as real Docker containers under `skiff up`'s node
//! agent (and a separate `skiff agent` process for the restart cases), driven by real kubectl,
//! kube-rs and the official Python client.
//!
//! Cases are grouped so that each test function shares one cluster and runs its pods at the
//! same time: `t80_clients` (two containers over localhost, logs, exec, port-forward from every
//! client, a scheduled pod), `t81_lifecycle` (CrashLoopBackOff delays, probes, volumes,
//! ImagePullBackOff, grace periods) and `t82_agent_restart` (kill -9 and restart of the agent).
//! Node names are unique per process; every container, network and mount is removed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStatus, Node, Pod, Secret};
use kube::api::{Api, AttachParams, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_tests::agent::{pod_containers, unique_node_name};
use skiff_tests::kubectl::{Kubectl, Up, kubectl_versions, remove_node_containers};
use skiff_tests::wait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BUSYBOX: &str = "skiff-test/busybox:1";
const HTTPD: &str = "skiff-test/httpd:1";
const PAGE: &str = "hello from skiff httpd";
/// How often the wait helpers ask the API server.
const POLL: Duration = Duration::from_millis(200);
/// Generous: pods start in seconds, but this machine is small and shared.
const LONG: Duration = Duration::from_secs(120);

/// A node name unique on this machine while the test runs (see [`unique_node_name`]).
fn node_name(tag: &str) -> String {
    unique_node_name(&format!("t80-{tag}"))
}

async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// Every pinned kubectl the machine has, newest last.
fn kubectls(kubeconfig: &Path) -> Result<Vec<(String, Kubectl)>> {
    let versions = kubectl_versions();
    ensure!(
        !versions.is_empty(),
        "no versioned kubectl found (set SKIFF_KUBECTL_DIR)"
    );
    versions
        .into_iter()
        .map(|(v, bin)| Ok((v, Kubectl::new(bin, kubeconfig.to_path_buf())?)))
        .collect()
}

/// A kubectl run with a deadline (streams must never hang the suite).
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn kubectl_run(k: &Kubectl, args: &[&str], stdin: Option<&str>) -> Result<Run> {
    let mut child = k
        .command(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
        // Dropping the pipe closes kubectl's stdin.
    }
    let mut out = child.stdout.take().context("kubectl stdout")?;
    let mut err = child.stderr.take().context("kubectl stderr")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut guard = ChildGuard(Some(child));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = guard.0.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            break status;
        }
        if Instant::now() > deadline {
            drop(guard);
            bail!("kubectl {} did not finish within 60 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    guard.0 = None;
    Ok(Run {
        code: status.code().unwrap_or(-1),
        stdout: reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

fn kubectl_ok(k: &Kubectl, args: &[&str]) -> Result<String> {
    let run = kubectl_run(k, args, None)?;
    ensure!(
        run.code == 0,
        "kubectl {} failed ({}):\n{}{}",
        args.join(" "),
        run.code,
        run.stdout,
        run.stderr
    );
    Ok(run.stdout)
}

/// A child process killed (SIGKILL) and reaped on drop.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A pod object: `spec` plus the node binding (none: the scheduler places it) and a short
/// grace period unless the spec sets one.
fn pod(name: &str, node: Option<&str>, mut spec: serde_json::Value) -> Result<Pod> {
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    if spec.get("terminationGracePeriodSeconds").is_none() {
        spec["terminationGracePeriodSeconds"] = json!(1);
    }
    Ok(serde_json::from_value(
        json!({"metadata": {"name": name}, "spec": spec}),
    )?)
}

fn container_status<'a>(p: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

fn is_running(p: &Pod, name: &str) -> bool {
    container_status(p, name)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.running.as_ref())
        .is_some()
}

fn restarts(p: &Pod, name: &str) -> i32 {
    container_status(p, name).map_or(0, |c| c.restart_count)
}

fn waiting_reason(p: &Pod, name: &str) -> Option<String> {
    container_status(p, name)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone())
}

fn waiting_message(p: &Pod, name: &str) -> Option<String> {
    container_status(p, name)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.message.clone())
}

fn condition(p: &Pod, kind: &str) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

/// What a pod looks like, for failure messages.
fn summary(p: &Pod) -> String {
    let status = p.status.clone().unwrap_or_default();
    let mut s = format!(
        "phase={} ready={}",
        status.phase.unwrap_or_default(),
        condition(p, "Ready").unwrap_or_default()
    );
    for c in status.container_statuses.iter().flatten() {
        let state = c.state.clone().unwrap_or_default();
        let state = if state.running.is_some() {
            "running".to_string()
        } else if let Some(w) = state.waiting {
            format!("waiting:{}", w.reason.unwrap_or_default())
        } else if let Some(t) = state.terminated {
            format!("terminated:{}", t.exit_code)
        } else {
            "unknown".into()
        };
        s += &format!(" {}={state}/restarts={}", c.name, c.restart_count);
    }
    s
}

/// Polls a pod (every 200 ms) until `done` holds.
async fn wait_pod(
    pods: &Api<Pod>,
    name: &str,
    what: &str,
    done: impl Fn(&Pod) -> bool,
) -> Result<Pod> {
    wait::until_every(&format!("pod {name} {what}"), LONG, POLL, || async {
        match pods.get_opt(name).await? {
            Some(p) if done(&p) => Ok(Some(p)),
            Some(p) => Err(anyhow!("{}", summary(&p))),
            None => Err(anyhow!("pod {name} does not exist")),
        }
    })
    .await
}

async fn wait_gone(pods: &Api<Pod>, name: &str) -> Result<()> {
    wait::until_every(&format!("pod {name} to be gone"), LONG, POLL, || async {
        Ok(pods.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

async fn wait_node_ready(client: &kube::Client, node: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    wait::until_every(&format!("node {node} Ready"), LONG, POLL, || async {
        let Some(n) = nodes.get_opt(node).await? else {
            return Err(anyhow!("node {node} not registered"));
        };
        let ready = n
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        Ok(ready.then_some(()))
    })
    .await
}

async fn wait_no_containers(node: &str, pod: &str, within: Duration) -> Result<Duration> {
    let started = Instant::now();
    wait::until(
        &format!("pod {pod}'s containers to be removed"),
        within,
        || async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let left = pod_containers(node, pod)?;
            if left.is_empty() {
                Ok(Some(()))
            } else {
                Err(anyhow!("still there: {left:?}"))
            }
        },
    )
    .await?;
    Ok(started.elapsed())
}

/// Runs `cmd` in a container through kubectl until its stdout equals `want`.
async fn wait_exec_output(
    k: &Kubectl,
    pod: &str,
    container: &str,
    cmd: &[&str],
    want: &str,
) -> Result<()> {
    let mut args = vec!["exec", pod, "-c", container, "--"];
    args.extend_from_slice(cmd);
    wait::until(
        &format!("{cmd:?} in {pod}/{container} to print {want:?}"),
        LONG,
        || async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let run = kubectl_run(k, &args, None)?;
            if run.stdout == want {
                Ok(Some(()))
            } else {
                Err(anyhow!(
                    "printed {:?} (exit {}, {})",
                    run.stdout,
                    run.code,
                    run.stderr.trim()
                ))
            }
        },
    )
    .await
}

/// A GET / over a local TCP port; returns the whole response.
fn http_get(port: u16) -> Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// `kubectl port-forward <target> :<remote>`: the child and the local port it printed.
fn kubectl_port_forward(k: &Kubectl, target: &str, remote: u16) -> Result<(ChildGuard, u16)> {
    let mut child = k
        .command(&[
            "port-forward",
            "--address",
            "127.0.0.1",
            target,
            &format!(":{remote}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("port-forward stdout")?;
    let guard = ChildGuard(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // "Forwarding from 127.0.0.1:40123 -> 80"
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:")
                && let Some(port) = rest.split_whitespace().next()
                && let Ok(port) = port.parse::<u16>()
            {
                let _ = tx.send(port);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(port) => Ok((guard, port)),
        Err(_) => {
            let mut guard = guard;
            let mut stderr = String::new();
            if let Some(mut c) = guard.0.take() {
                let _ = c.kill();
                if let Some(mut e) = c.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                let _ = c.wait();
            }
            bail!("kubectl port-forward {target} printed no local port: {stderr}")
        }
    }
}

/// Highest `tick N` in a log text.
fn last_tick(log: &str) -> Option<u64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("tick "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .max()
}

async fn read_all(mut r: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The exit code in an exec's final Status (0 for Success).
fn exit_code(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> Option<i32> {
    if status.status.as_deref() == Some("Success") {
        return Some(0);
    }
    status
        .details
        .as_ref()?
        .causes
        .as_ref()?
        .iter()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))?
        .message
        .as_deref()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t80_clients_logs_exec_and_port_forward() -> Result<()> {
    let node = node_name("clients");
    let up = Up::start_with_agent(&node).await?;
    let client = client(&up.kubeconfig()).await?;
    wait_node_ready(&client, &node).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    // Two containers sharing the pod's localhost: the client fetches the web page every second.
    pods.create(&pp, &pod("duo", Some(&node), json!({"containers": [
        {"name": "web", "image": HTTPD},
        {"name": "client", "image": BUSYBOX, "command": ["sh", "-c",
            "i=0; while :; do i=$((i+1)); echo \"tick $i $(wget -q -O - http://localhost/ 2>&1)\"; sleep 1; done"]},
    ]}))?).await?;
    // Crashes once (exit 1), then runs: the previous instance's log stays readable.
    pods.create(&pp, &pod("crasher", Some(&node), json!({
        "volumes": [{"name": "d", "emptyDir": {}}],
        "containers": [{"name": "main", "image": BUSYBOX, "volumeMounts": [{"name": "d", "mountPath": "/d"}],
            "command": ["sh", "-c",
            "n=$(cat /d/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /d/n; echo \"run $n\"; if [ $n -eq 1 ]; then exit 1; fi; sleep 3600"]}],
    }))?).await?;
    // No nodeName: the scheduler binds it to the only node.
    pods.create(
        &pp,
        &pod(
            "web",
            None,
            json!({"containers": [{"name": "web", "image": HTTPD}]}),
        )?,
    )
    .await?;

    let duo = wait_pod(&pods, "duo", "running both containers", |p| {
        is_running(p, "web") && is_running(p, "client")
    })
    .await?;
    let ip = duo
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    ensure!(ip.starts_with("10.42."), "pod IP {ip:?}");
    let web = wait_pod(&pods, "web", "scheduled and running", |p| {
        is_running(p, "web")
    })
    .await?;
    ensure!(
        web.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str()),
        "web was bound to {:?}",
        web.spec.and_then(|s| s.node_name)
    );
    let crasher = wait_pod(&pods, "crasher", "running after one crash", |p| {
        is_running(p, "main") && restarts(p, "main") == 1
    })
    .await?;
    let last = container_status(&crasher, "main")
        .and_then(|c| c.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| (t.exit_code, t.reason.clone()));
    ensure!(
        last.as_ref().map(|l| l.0) == Some(1),
        "lastState of the crashed instance: {last:?}"
    );

    let versions = kubectls(&up.kubeconfig())?;
    for (version, k) in &versions {
        // The two containers talk over localhost, and their output is in `kubectl logs`.
        wait::until(
            &format!("kubectl {version} logs to show a page fetched over localhost"),
            LONG,
            || async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let log = kubectl_ok(k, &["logs", "duo", "-c", "client"])?;
                Ok(log
                    .lines()
                    .any(|l| l.starts_with("tick ") && l.ends_with(PAGE))
                    .then_some(()))
            },
        )
        .await?;
        let tail = kubectl_ok(k, &["logs", "duo", "-c", "client", "--tail=1"])?;
        ensure!(tail.lines().count() == 1, "--tail=1 printed {tail:?}");

        // `logs -f` streams lines written after it started.
        let before = last_tick(&kubectl_ok(k, &["logs", "duo", "-c", "client"])?).unwrap_or(0);
        let mut child = k
            .command(&["logs", "-f", "duo", "-c", "client"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("logs -f stdout")?;
        let follow = ChildGuard(Some(child));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if last_tick(&line).is_some_and(|t| t > before + 1) {
                        break;
                    }
                    seen.push(line);
                }
                Err(_) => bail!(
                    "kubectl {version} logs -f showed no tick after {before} within 30 s: {seen:?}"
                ),
            }
        }
        drop(follow);

        // The previous instance's log after a crash.
        let previous = kubectl_ok(k, &["logs", "crasher", "--previous"])?;
        ensure!(previous == "run 1\n", "--previous printed {previous:?}");
        let current = kubectl_ok(k, &["logs", "crasher"])?;
        ensure!(current == "run 2\n", "current log {current:?}");

        // Exec: the exit code comes back; stdin is piped with -i.
        let run = kubectl_run(
            k,
            &["exec", "duo", "-c", "client", "--", "sh", "-c", "exit 3"],
            None,
        )?;
        ensure!(
            run.code == 3,
            "kubectl {version} exec exit 3 exited {} ({})",
            run.code,
            run.stderr
        );
        let run = kubectl_run(
            k,
            &[
                "exec", "-i", "duo", "-c", "client", "--", "tr", "a-z", "A-Z",
            ],
            Some("hello skiff\n"),
        )?;
        ensure!(
            run.code == 0 && run.stdout == "HELLO SKIFF\n",
            "kubectl {version} exec -i: exit {} stdout {:?} stderr {:?}",
            run.code,
            run.stdout,
            run.stderr
        );

        // Port-forward, then an HTTP request through it (twice: two connections).
        let (forward, port) = kubectl_port_forward(k, "pod/web", 80)?;
        for _ in 0..2 {
            let response = tokio::task::spawn_blocking(move || http_get(port)).await??;
            ensure!(
                response.starts_with("HTTP/1.") && response.contains(PAGE),
                "kubectl {version} port-forward answered {response:?}"
            );
        }
        drop(forward);
    }

    // kube-rs: exec with stdout, stderr and the exit code apart; stdin; port-forward.
    let mut proc = pods
        .exec(
            "duo",
            [
                "sh",
                "-c",
                "echo out-from-kube-rs; echo err-from-kube-rs >&2; exit 3",
            ],
            &AttachParams::default().container("client").stderr(true),
        )
        .await?;
    let status = proc.take_status().context("exec status")?;
    let (out, err) = tokio::join!(
        read_all(proc.stdout().context("exec stdout")?),
        read_all(proc.stderr().context("exec stderr")?)
    );
    let status = tokio::time::timeout(Duration::from_secs(30), status)
        .await?
        .context("no exec status")?;
    proc.join().await?;
    ensure!(out == "out-from-kube-rs\n", "stdout {out:?}");
    ensure!(err == "err-from-kube-rs\n", "stderr {err:?}");
    ensure!(exit_code(&status) == Some(3), "status {status:?}");

    let mut proc = pods
        .exec(
            "duo",
            ["tr", "a-z", "A-Z"],
            &AttachParams::default()
                .container("client")
                .stdin(true)
                .stderr(false),
        )
        .await?;
    let mut stdin = proc.stdin().context("exec stdin")?;
    let stdout = proc.stdout().context("exec stdout")?;
    let status = proc.take_status().context("exec status")?;
    stdin.write_all(b"from kube-rs\n").await?;
    stdin.shutdown().await?;
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), read_all(stdout)).await?;
    let status = tokio::time::timeout(Duration::from_secs(30), status)
        .await?
        .context("no exec status")?;
    ensure!(out == "FROM KUBE-RS\n", "stdout {out:?}");
    ensure!(exit_code(&status) == Some(0), "status {status:?}");

    let mut forwarder = pods.portforward("web", &[80]).await?;
    let mut stream = forwarder.take_stream(80).context("port 80 stream")?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&response).contains(PAGE) {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
        }
        anyhow::Ok(())
    })
    .await
    .context("kube-rs port-forward: no answer within 30 s")??;
    let response = String::from_utf8_lossy(&response).into_owned();
    ensure!(
        response.starts_with("HTTP/1.") && response.contains(PAGE),
        "kube-rs port-forward answered {response:?}"
    );
    drop(stream);
    forwarder.abort();

    // The official Python client: exec (exit code, stdin) and port-forward.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/pods_e2e.py");
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("python3")
            .arg(&script)
            .arg(up.kubeconfig())
            .args(["default", "web", "web", "80"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("the Python client e2e did not finish within 90 s")??;
    ensure!(
        out.status.success(),
        "python pods e2e failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Records a crash-looping container's restarts: when each restart count was first seen, and
/// every waiting reason and message.
async fn watch_crash_loop(
    pods: Api<Pod>,
    name: &'static str,
    restarts_wanted: i32,
) -> Result<(Vec<Instant>, Vec<String>, Vec<String>)> {
    let mut seen_at: Vec<Instant> = Vec::new();
    let mut reasons = Vec::new();
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        if let Some(p) = pods.get_opt(name).await? {
            let count = restarts(&p, "main");
            while (seen_at.len() as i32) < count {
                seen_at.push(Instant::now());
            }
            if let Some(r) = waiting_reason(&p, "main")
                && !reasons.contains(&r)
            {
                reasons.push(r);
            }
            if let Some(m) = waiting_message(&p, "main")
                && !messages.contains(&m)
            {
                messages.push(m);
            }
            if count >= restarts_wanted {
                return Ok((seen_at, reasons, messages));
            }
            if Instant::now() > deadline {
                bail!(
                    "{name} restarted {count} times in 150 s (reasons {reasons:?}): {}",
                    summary(&p)
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t81_lifecycle_back_off_probes_volumes_images_and_grace() -> Result<()> {
    let node = node_name("life");
    let up = Up::start_with_agent(&node).await?;
    let client = client(&up.kubeconfig()).await?;
    wait_node_ready(&client, &node).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let k = kubectls(&up.kubeconfig())?
        .pop()
        .map(|(_, k)| k)
        .context("no kubectl")?;

    config_maps
        .create(
            &pp,
            &serde_json::from_value(
                json!({"metadata": {"name": "cfg"}, "data": {"greeting": "hello"}}),
            )?,
        )
        .await?;
    secrets
        .create(
            &pp,
            &serde_json::from_value(
                json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cr3t"}}),
            )?,
        )
        .await?;
    let absent_image = format!("skiff-test/absent-{}:1", std::process::id());
    let created = Instant::now();
    for p in [
        pod(
            "crashloop",
            Some(&node),
            json!({"containers": [{"name": "main", "image": BUSYBOX, "command": ["sh", "-c", "echo crashing; exit 1"]}]}),
        )?,
        pod(
            "liveness",
            Some(&node),
            json!({"containers": [{"name": "main", "image": BUSYBOX,
            "command": ["sh", "-c", "touch /tmp/alive; sleep 3600"],
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]}, "initialDelaySeconds": 1, "periodSeconds": 1, "failureThreshold": 2}}]}),
        )?,
        pod(
            "readiness",
            Some(&node),
            json!({"containers": [{"name": "main", "image": HTTPD,
            "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1}}]}),
        )?,
        pod(
            "missing",
            Some(&node),
            json!({"containers": [{"name": "main", "image": absent_image, "imagePullPolicy": "IfNotPresent"}]}),
        )?,
        pod(
            "volumes",
            Some(&node),
            json!({
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "creds", "secret": {"secretName": "creds"}},
                {"name": "data", "emptyDir": {}},
            ],
            "containers": [{"name": "main", "image": BUSYBOX,
                "command": ["sh", "-c", "echo boot >> /data/boots; while [ ! -f /tmp/stop ]; do sleep 1; done; exit 0"],
                "volumeMounts": [
                    {"name": "cfg", "mountPath": "/etc/cfg"},
                    {"name": "creds", "mountPath": "/etc/creds"},
                    {"name": "data", "mountPath": "/data"},
                ]}]}),
        )?,
        // Ignores SIGTERM: killed when its 4 s grace period runs out.
        pod(
            "stubborn",
            Some(&node),
            json!({"terminationGracePeriodSeconds": 4, "containers": [{"name": "main", "image": BUSYBOX,
            "command": ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]}]}),
        )?,
        // Exits on SIGTERM: gone long before its 30 s grace period.
        pod(
            "gentle",
            Some(&node),
            json!({"terminationGracePeriodSeconds": 30, "containers": [{"name": "main", "image": BUSYBOX,
            "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]}]}),
        )?,
    ] {
        pods.create(&pp, &p).await?;
    }
    let crash_loop = tokio::spawn(watch_crash_loop(pods.clone(), "crashloop", 3));

    // Readiness: not Ready until the probe passes, Ready after, not Ready again when it fails,
    // and never restarted for it.
    wait_pod(&pods, "readiness", "running, not ready", |p| {
        is_running(p, "main") && condition(p, "Ready").as_deref() == Some("False")
    })
    .await?;
    kubectl_ok(&k, &["exec", "readiness", "--", "touch", "/tmp/ready"])?;
    wait_pod(&pods, "readiness", "Ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
            && container_status(p, "main").is_some_and(|c| c.ready)
    })
    .await?;
    kubectl_ok(&k, &["exec", "readiness", "--", "rm", "/tmp/ready"])?;
    let p = wait_pod(&pods, "readiness", "not Ready again", |p| {
        condition(p, "Ready").as_deref() == Some("False")
    })
    .await?;
    ensure!(
        restarts(&p, "main") == 0 && is_running(&p, "main"),
        "{}",
        summary(&p)
    );

    // Liveness: a failing probe restarts the container.
    wait_pod(&pods, "liveness", "running", |p| is_running(p, "main")).await?;
    kubectl_ok(&k, &["exec", "liveness", "--", "rm", "/tmp/alive"])?;
    let p = wait_pod(&pods, "liveness", "restarted by its liveness probe", |p| {
        restarts(p, "main") >= 1 && is_running(p, "main")
    })
    .await?;
    let last = container_status(&p, "main")
        .and_then(|c| c.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    ensure!(last.is_some(), "no lastState after a liveness kill: {p:?}");

    // Volumes: configMap and secret files, the secret on tmpfs, both following updates.
    wait_pod(&pods, "volumes", "running", |p| is_running(p, "main")).await?;
    wait_exec_output(
        &k,
        "volumes",
        "main",
        &["cat", "/etc/cfg/greeting"],
        "hello",
    )
    .await?;
    wait_exec_output(
        &k,
        "volumes",
        "main",
        &["cat", "/etc/creds/password"],
        "s3cr3t",
    )
    .await?;
    let mounts = kubectl_ok(&k, &["exec", "volumes", "--", "mount"])?;
    let secret_mount = mounts
        .lines()
        .find(|l| l.contains(" /etc/creds "))
        .unwrap_or_default();
    ensure!(
        secret_mount.starts_with("tmpfs ") || secret_mount.contains(" type tmpfs "),
        "the secret volume is not on tmpfs: {secret_mount:?}\n{mounts}"
    );
    let cfg_mount = mounts
        .lines()
        .find(|l| l.contains(" /etc/cfg "))
        .unwrap_or_default();
    ensure!(
        !cfg_mount.is_empty() && !cfg_mount.contains(" type tmpfs "),
        "configMap mount: {cfg_mount:?}"
    );
    config_maps
        .patch(
            "cfg",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"greeting": "updated"}})),
        )
        .await?;
    secrets
        .patch(
            "creds",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "rotated"}})),
        )
        .await?;
    wait_exec_output(
        &k,
        "volumes",
        "main",
        &["cat", "/etc/cfg/greeting"],
        "updated",
    )
    .await?;
    wait_exec_output(
        &k,
        "volumes",
        "main",
        &["cat", "/etc/creds/password"],
        "rotated",
    )
    .await?;
    let p = pods.get("volumes").await?;
    ensure!(
        restarts(&p, "main") == 0,
        "updated in place: {}",
        summary(&p)
    );
    // The emptyDir outlives a container restart (the container exits when /tmp/stop exists).
    kubectl_ok(&k, &["exec", "volumes", "--", "touch", "/tmp/stop"])?;
    wait_pod(&pods, "volumes", "restarted", |p| {
        restarts(p, "main") == 1 && is_running(p, "main")
    })
    .await?;
    wait_exec_output(
        &k,
        "volumes",
        "main",
        &["cat", "/data/boots"],
        "boot\nboot\n",
    )
    .await?;

    // A missing image with no registry: ErrImagePull, then ImagePullBackOff.
    wait_pod(&pods, "missing", "in ImagePullBackOff", |p| {
        waiting_reason(p, "main").as_deref() == Some("ImagePullBackOff")
    })
    .await?;
    let events = kubectl_ok(
        &k,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=missing",
        ],
    )?;
    ensure!(
        events.contains("Failed") || events.contains("BackOff"),
        "no pull failure event: {events}"
    );

    // Deletion: the containers go within the grace period; SIGTERM comes first.
    for (name, grace) in [("stubborn", 4u64), ("gentle", 30)] {
        wait_pod(&pods, name, "running", |p| is_running(p, "main")).await?;
        ensure!(
            !pod_containers(&node, name)?.is_empty(),
            "{name} has no containers"
        );
        let t = Instant::now();
        pods.delete(name, &DeleteParams::default()).await?;
        wait_no_containers(&node, name, Duration::from_secs(grace + 20)).await?;
        let took = t.elapsed();
        wait_gone(&pods, name).await?;
        match name {
            // SIGTERM is ignored: SIGKILL after the grace period, not before (the agent counts
            // from the deletion it observes; the test's clock starts before the request, and
            // deletionTimestamp has second precision, so allow one second of slack).
            "stubborn" => ensure!(
                took >= Duration::from_millis(2900) && took <= Duration::from_secs(4 + 10),
                "stubborn's containers went after {took:?} (grace 4 s)"
            ),
            _ => ensure!(
                took <= Duration::from_secs(15),
                "gentle exits on SIGTERM but its containers went after {took:?}"
            ),
        }
    }

    // CrashLoopBackOff: the first restart is immediate, then 10 s, then 20 s.
    let (seen_at, reasons, messages) = crash_loop.await??;
    ensure!(
        reasons.iter().any(|r| r == "CrashLoopBackOff"),
        "waiting reasons seen: {reasons:?}"
    );
    let first = seen_at[0].duration_since(created);
    let d1 = seen_at[1].duration_since(seen_at[0]);
    let d2 = seen_at[2].duration_since(seen_at[1]);
    ensure!(
        d1 >= Duration::from_secs(9) && d2 >= Duration::from_secs(18) && d2 > d1,
        "delays between restarts do not grow as 10 s, 20 s: first after {first:?}, then {d1:?}, {d2:?}"
    );
    ensure!(
        messages.iter().any(|m| m.contains("back-off 10s"))
            && messages.iter().any(|m| m.contains("back-off 20s")),
        "waiting messages: {messages:?}"
    );
    Ok(())
}

/// A `skiff agent` process of its own (so it can be killed and restarted), joined to an `Up`.
struct Agent {
    node: String,
    dir: tempfile::TempDir,
    server: String,
    token: String,
    port: u16,
    child: ChildGuard,
}

impl Agent {
    fn start(up: &Up, node: &str) -> Result<Agent> {
        let log = up.log();
        let token = log
            .split_whitespace()
            .skip_while(|w| *w != "--token")
            .nth(1)
            .context("skiff up printed no node token")?
            .to_string();
        let mut agent = Agent {
            node: node.to_string(),
            dir: tempfile::Builder::new()
                .prefix("skiff-agent-test-")
                .tempdir()?,
            server: format!("https://{}", up.api),
            token,
            port: skiff_tests::cluster::free_port(),
            child: ChildGuard(None),
        };
        agent.spawn()?;
        Ok(agent)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(skiff_tests::skiff_bin())
            .args(["agent", "--server", &self.server, "--name", &self.node])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--node-ip", "127.0.0.1", "--node-api-listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .env("SKIFF_NODE_TOKEN", &self.token)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = ChildGuard(Some(child));
        Ok(())
    }

    /// SIGKILL, as `kill -9` does.
    fn kill9(&mut self) {
        self.child = ChildGuard(None);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        remove_node_containers(&self.node);
        skiff_tests::kubectl::unmount_under(self.dir.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t82_agent_restart_keeps_containers_and_cleans_up_deleted_pods() -> Result<()> {
    let node = node_name("restart");
    let up = Up::start().await?;
    let mut agent = Agent::start(&up, &node)?;
    let client = client(&up.kubeconfig()).await?;
    wait_node_ready(&client, &node)
        .await
        .with_context(|| format!("agent log:\n{}", agent.log()))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let k = kubectls(&up.kubeconfig())?
        .pop()
        .map(|(_, k)| k)
        .context("no kubectl")?;
    let sleeper = json!({"name": "main", "image": BUSYBOX,
        "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]});
    for (name, container) in [
        ("keep", json!({"name": "main", "image": HTTPD})),
        ("gone", sleeper.clone()),
        ("going", sleeper),
    ] {
        let spec = json!({"terminationGracePeriodSeconds": 2, "containers": [container]});
        pods.create(&pp, &pod(name, Some(&node), spec)?).await?;
    }
    for name in ["keep", "gone", "going"] {
        wait_pod(&pods, name, "running", |p| is_running(p, "main")).await?;
    }
    let keep_before = pod_containers(&node, "keep")?;
    ensure!(
        keep_before.len() == 2 && keep_before.iter().all(|l| l.ends_with(" running")),
        "keep: sandbox and app container running: {keep_before:?}"
    );

    agent.kill9();
    // While the agent is down: one pod vanishes from the API (forced), one is deleted
    // gracefully and waits for the agent to finish it.
    pods.delete("gone", &DeleteParams::default().grace_period(0))
        .await?;
    wait_gone(&pods, "gone").await?;
    pods.delete("going", &DeleteParams::default()).await?;
    let going = pods.get("going").await?;
    ensure!(
        going.metadata.deletion_timestamp.is_some(),
        "going is being deleted"
    );
    ensure!(
        !pod_containers(&node, "gone")?.is_empty() && !pod_containers(&node, "going")?.is_empty(),
        "with the agent down nobody removes containers"
    );
    ensure!(
        pod_containers(&node, "keep")? == keep_before,
        "the agent's death touched keep's containers"
    );

    agent.spawn()?;
    wait_no_containers(&node, "gone", LONG)
        .await
        .with_context(|| format!("agent log:\n{}", agent.log()))?;
    wait_no_containers(&node, "going", LONG).await?;
    wait_gone(&pods, "going").await?;
    // The agent is back (it finished `going`): keep's containers are the same ones, started
    // once, and the pod is still Running and Ready with no restart.
    let keep = wait_pod(&pods, "keep", "Running and Ready", |p| {
        is_running(p, "main") && condition(p, "Ready").as_deref() == Some("True")
    })
    .await?;
    ensure!(restarts(&keep, "main") == 0, "{}", summary(&keep));
    let keep_after = pod_containers(&node, "keep")?;
    ensure!(
        keep_after == keep_before,
        "keep's containers changed across the agent restart:\nbefore {keep_before:?}\nafter  {keep_after:?}"
    );
    // The restarted agent serves the node API again.
    let out = kubectl_ok(&k, &["exec", "keep", "--", "cat", "/www/index.html"])?;
    ensure!(out.contains(PAGE), "exec after restart printed {out:?}");
    Ok(())
}
