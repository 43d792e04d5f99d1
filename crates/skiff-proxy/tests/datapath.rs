//! Real packets through the rules: a "node" network namespace with a bridge of pod namespaces
//! (endpoints running busybox httpd and an nc echo server) and a client namespace outside the
//! cluster CIDR. Each test builds its own topology (named after the process id and the test) and
//! removes it, processes first, even when it fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use skiff_proxy::model::NodeInfo;
use skiff_proxy::netns::{Netns, delete_by_prefix, run};
use skiff_proxy::nft::Nft;
use skiff_proxy::rules::{Config, build_rules};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const NODE_IP: &str = "192.168.77.1";

struct Topology {
    prefix: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
    node: Netns,
    client: Netns,
    pods: Vec<Netns>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.pods.clear();
        delete_by_prefix(&self.prefix);
    }
}

fn pod_ip(i: usize) -> String {
    format!("10.42.0.{}", 10 + i)
}

impl Topology {
    /// A node with `pods` pod namespaces (ep1..epN at 10.42.0.11...) and a client.
    async fn new(tag: &str, pods: usize) -> Result<Topology> {
        let prefix = format!("skp{}{tag}-", std::process::id());
        delete_by_prefix(&prefix);
        let node = Netns::create(&format!("{prefix}node"))?;
        let client = Netns::create(&format!("{prefix}client"))?;
        let mut topology = Topology {
            dir: tempfile::tempdir()?,
            prefix: prefix.clone(),
            children: Vec::new(),
            node,
            client,
            pods: Vec::new(),
        };
        let n = topology.node.name().to_string();
        let c = topology.client.name().to_string();
        run(&["ip", "-n", &n, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &n, "addr", "add", "10.42.0.1/24", "dev", "br0"])?;
        run(&["ip", "-n", &n, "link", "set", "br0", "up"])?;
        topology
            .node
            .exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        run(&[
            "ip", "-n", &n, "link", "add", "pc", "type", "veth", "peer", "name", "eth0", "netns",
            &c,
        ])?;
        run(&[
            "ip",
            "-n",
            &n,
            "addr",
            "add",
            &format!("{NODE_IP}/24"),
            "dev",
            "pc",
        ])?;
        run(&["ip", "-n", &n, "link", "set", "pc", "up"])?;
        run(&[
            "ip",
            "-n",
            &c,
            "addr",
            "add",
            "192.168.77.2/24",
            "dev",
            "eth0",
        ])?;
        run(&["ip", "-n", &c, "link", "set", "eth0", "up"])?;
        run(&["ip", "-n", &c, "route", "add", "default", "via", NODE_IP])?;
        // Stands in for the node's default route: service IPs are routable.
        run(&["ip", "-n", &n, "route", "add", "10.43.0.0/16", "dev", "pc"])?;
        for i in 1..=pods {
            let pod = Netns::create(&format!("{prefix}ep{i}"))?;
            let p = pod.name().to_string();
            let port = format!("p{i}");
            run(&[
                "ip", "-n", &n, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &p,
            ])?;
            run(&["ip", "-n", &n, "link", "set", &port, "master", "br0", "up"])?;
            run(&[
                "ip",
                "-n",
                &p,
                "addr",
                "add",
                &format!("{}/24", pod_ip(i)),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "-n", &p, "link", "set", "eth0", "up"])?;
            run(&[
                "ip",
                "-n",
                &p,
                "route",
                "add",
                "default",
                "via",
                "10.42.0.1",
            ])?;
            // HTTP on 8080 answering the pod's name; an echo server on 9000 that first names the pod.
            let www = topology.dir.path().join(format!("www{i}"));
            std::fs::create_dir_all(&www)?;
            std::fs::write(www.join("index.html"), format!("ep{i}\n"))?;
            let echo = topology.dir.path().join(format!("echo{i}.sh"));
            std::fs::write(&echo, format!("#!/bin/sh\necho ep{i}\nexec cat\n"))?;
            run(&["chmod", "+x", &echo.to_string_lossy()])?;
            let httpd = Command::new("ip")
                .args([
                    "netns", "exec", &p, "busybox", "httpd", "-f", "-p", "8080", "-h",
                ])
                .arg(&www)
                .stdin(Stdio::null())
                .spawn()?;
            topology.children.push(httpd);
            let nc = Command::new("ip")
                .args([
                    "netns", "exec", &p, "busybox", "nc", "-ll", "-p", "9000", "-e",
                ])
                .arg(&echo)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()?;
            topology.children.push(nc);
            topology.pods.push(pod);
        }
        // As the agent must on its bridge: pods reaching themselves through a Service.
        let runner = skiff_proxy::podnet::Runner {
            prefix: topology.node.prefix(),
        };
        skiff_proxy::podnet::ensure_hairpin(&runner, "br0").await?;
        // Wait until every pod's servers answer directly.
        for i in 1..=pods {
            let url = format!("http://{}:8080/", pod_ip(i));
            wait_for(&format!("ep{i} httpd"), || {
                Ok(topology.node.exec(&["curl", "-s", "-m", "1", &url]).is_ok())
            })?;
        }
        Ok(topology)
    }

    fn nft(&self) -> Nft {
        let mut command = self.node.prefix();
        command.push("nft".into());
        Nft::new(command, None)
    }

    /// `curl` from the client (or a pod); the body, or the error text. (busybox wget crashes
    /// with a timeout option on Debian 12, so curl it is.)
    fn get(&self, from: &Netns, url: &str) -> Result<String, String> {
        let output = Command::new("ip")
            .args(["netns", "exec", from.name(), "curl", "-sS", "-m", "3", url])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
        }
    }
}

fn wait_for(what: &str, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )
    .expect("service")
}

fn slice(service: &str, port: u16, pods: &[usize]) -> EndpointSlice {
    let endpoints: Vec<Value> = pods
        .iter()
        .map(|i| json!({"addresses": [pod_ip(*i)], "conditions": {"ready": true}, "nodeName": "node"}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-{port}"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "endpoints": endpoints,
        "ports": [{"name": "", "port": port, "protocol": "TCP"}]
    }))
    .expect("slice")
}

fn rules(services: &[Service], slices: &[EndpointSlice]) -> skiff_proxy::rules::RuleSet {
    build_rules(
        services,
        slices,
        &NodeInfo {
            name: "node".into(),
        },
        &Config::default(),
    )
}

fn web(extra: Value) -> Service {
    let mut spec = json!({"clusterIP": "10.43.0.20", "ports": [{"port": 80, "protocol": "TCP"}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    service("web", spec)
}

#[tokio::test]
async fn cluster_ip_reaches_every_endpoint_and_follows_changes() -> Result<()> {
    let t = Topology::new("a", 3).await?;
    let mut nft = t.nft();
    nft.sync(rules(&[web(json!({}))], &[slice("web", 8080, &[1, 2, 3])]))
        .await?;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let body = t
            .get(&t.client, "http://10.43.0.20/")
            .map_err(anyhow::Error::msg)?;
        seen.insert(body);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["ep1", "ep2", "ep3"]);

    // ep2 leaves: an incremental sync, and it is never reached again.
    nft.sync(rules(&[web(json!({}))], &[slice("web", 8080, &[1, 3])]))
        .await?;
    for _ in 0..30 {
        let body = t
            .get(&t.client, "http://10.43.0.20/")
            .map_err(anyhow::Error::msg)?;
        assert_ne!(body, "ep2");
    }
    // A fresh proxy (restart) converges from whatever is in the table.
    let mut restarted = t.nft();
    restarted
        .sync(rules(&[web(json!({}))], &[slice("web", 8080, &[2])]))
        .await?;
    for _ in 0..10 {
        assert_eq!(
            t.get(&t.client, "http://10.43.0.20/")
                .map_err(anyhow::Error::msg)?,
            "ep2"
        );
    }
    Ok(())
}

#[tokio::test]
async fn node_port_answers_on_the_node_address() -> Result<()> {
    let t = Topology::new("b", 2).await?;
    let spec =
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]});
    t.nft()
        .sync(rules(&[web(spec)], &[slice("web", 8080, &[1, 2])]))
        .await?;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        seen.insert(
            t.get(&t.client, &format!("http://{NODE_IP}:30080/"))
                .map_err(anyhow::Error::msg)?,
        );
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["ep1", "ep2"]);
    // The cluster IP works too, and a pod reaches the node port on the bridge address.
    assert!(t.get(&t.client, "http://10.43.0.20/").is_ok());
    assert!(t.get(&t.pods[0], "http://10.42.0.1:30080/").is_ok());
    Ok(())
}

#[tokio::test]
async fn services_without_endpoints_refuse_at_once() -> Result<()> {
    let t = Topology::new("c", 1).await?;
    let spec =
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30090, "protocol": "TCP"}]});
    t.nft()
        .sync(rules(&[web(spec)], &[slice("web", 8080, &[])]))
        .await?;
    let started = Instant::now();
    let error = t
        .get(&t.client, "http://10.43.0.20/")
        .expect_err("must fail");
    assert!(
        error.contains("(7)"),
        "expected a refusal (TCP reset, curl error 7), got: {error}"
    );
    let error = t
        .get(&t.client, &format!("http://{NODE_IP}:30090/"))
        .expect_err("must fail");
    assert!(error.contains("(7)"), "node port: {error}");
    // From a pod, forwarded traffic is refused as well.
    let error = t
        .get(&t.pods[0], "http://10.43.0.20/")
        .expect_err("must fail");
    assert!(error.contains("(7)"), "from a pod: {error}");
    // Refusals, not 3-second timeouts.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn session_affinity_sticks_to_one_endpoint() -> Result<()> {
    let t = Topology::new("d", 3).await?;
    let spec = json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}});
    let mut nft = t.nft();
    nft.sync(rules(
        &[web(spec.clone())],
        &[slice("web", 8080, &[1, 2, 3])],
    ))
    .await?;
    let first = t
        .get(&t.client, "http://10.43.0.20/")
        .map_err(anyhow::Error::msg)?;
    for _ in 0..20 {
        assert_eq!(
            t.get(&t.client, "http://10.43.0.20/")
                .map_err(anyhow::Error::msg)?,
            first
        );
    }
    // Stickiness survives an unrelated update and a proxy restart (the sets are kept).
    let other = service(
        "other",
        json!({"clusterIP": "10.43.0.21", "ports": [{"port": 80}]}),
    );
    nft.sync(rules(
        &[web(spec.clone()), other],
        &[slice("web", 8080, &[1, 2, 3])],
    ))
    .await?;
    t.nft()
        .sync(rules(&[web(spec)], &[slice("web", 8080, &[1, 2, 3])]))
        .await?;
    for _ in 0..10 {
        assert_eq!(
            t.get(&t.client, "http://10.43.0.20/")
                .map_err(anyhow::Error::msg)?,
            first
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_pod_reaches_itself_through_its_service() -> Result<()> {
    let t = Topology::new("e", 2).await?;
    t.nft()
        .sync(rules(&[web(json!({}))], &[slice("web", 8080, &[1])]))
        .await?;
    for _ in 0..5 {
        assert_eq!(
            t.get(&t.pods[0], "http://10.43.0.20/")
                .map_err(anyhow::Error::msg)?,
            "ep1"
        );
        assert_eq!(
            t.get(&t.pods[1], "http://10.43.0.20/")
                .map_err(anyhow::Error::msg)?,
            "ep1"
        );
    }
    Ok(())
}

#[tokio::test]
async fn established_connections_survive_rule_swaps_and_restarts() -> Result<()> {
    let t = Topology::new("f", 2).await?;
    let echo = |pods: &[usize]| {
        (
            vec![service(
                "echo",
                json!({"clusterIP": "10.43.0.30", "ports": [{"port": 90}]}),
            )],
            vec![slice("echo", 9000, pods)],
        )
    };
    let (services, slices) = echo(&[1]);
    let mut nft = t.nft();
    nft.sync(rules(&services, &slices)).await?;
    let mut child = tokio::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            t.client.name(),
            "busybox",
            "nc",
            "10.43.0.30",
            "90",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut input = child.stdin.take().context("stdin")?;
    let mut output = BufReader::new(child.stdout.take().context("stdout")?).lines();
    assert_eq!(line(&mut output).await?, "ep1");
    input.write_all(b"before\n").await?;
    assert_eq!(line(&mut output).await?, "before");

    // The endpoint set changes (ep2 added), then a new proxy does a full sync, then another
    // service appears: the open connection keeps working throughout.
    let (services, slices) = echo(&[1, 2]);
    nft.sync(rules(&services, &slices)).await?;
    input.write_all(b"after-update\n").await?;
    assert_eq!(line(&mut output).await?, "after-update");
    t.nft().sync(rules(&services, &slices)).await?;
    input.write_all(b"after-restart\n").await?;
    assert_eq!(line(&mut output).await?, "after-restart");
    drop(input);
    let _ = child.kill().await;
    Ok(())
}

async fn line<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
) -> Result<String> {
    tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .context("no answer within 5 s")?
        .context("reading")?
        .context("connection closed")
}

#[tokio::test]
async fn cleanup_removes_only_our_table() -> Result<()> {
    let t = Topology::new("g", 1).await?;
    t.node.exec(&["nft", "add", "table", "ip", "other"])?;
    t.node
        .exec(&["nft", "add", "chain", "ip", "other", "keep"])?;
    let mut nft = t.nft();
    nft.sync(rules(&[web(json!({}))], &[slice("web", 8080, &[1])]))
        .await?;
    let tables =
        String::from_utf8_lossy(&t.node.exec(&["nft", "list", "tables"])?.stdout).to_string();
    assert!(
        tables.contains("table ip skiff") && tables.contains("table ip other"),
        "{tables}"
    );
    nft.cleanup().await?;
    let tables =
        String::from_utf8_lossy(&t.node.exec(&["nft", "list", "tables"])?.stdout).to_string();
    assert!(!tables.contains("skiff"), "{tables}");
    assert!(tables.contains("table ip other"), "{tables}");
    let chain = t
        .node
        .exec(&["nft", "list", "chain", "ip", "other", "keep"]);
    assert!(chain.is_ok());
    // Cleaning up twice is fine; traffic to the service no longer reaches the pod.
    nft.cleanup().await?;
    assert!(t.get(&t.client, "http://10.43.0.20/").is_err());
    Ok(())
}
