//! Service networking end to end (issue 6): `skiff up` with its service proxy, cluster DNS and
//! ingress on unique values (service CIDR, nftables table, DNS address, ports), plus a second
//! `skiff agent` node, real Docker containers and real packets. A 3-replica busybox httpd
//! Deployment behind a ClusterIP Service is reached from a client pod on each node by IP and by
//! name over 60 requests; NodePort from the host; headless and StatefulSet names; a Service
//! without endpoints refuses at once; an Ingress with two hosts and two paths over TLS with the
//! right certificate per SNI name (openssl s_client and curl), a Secret rotation; bad specs
//! refused by the API server; scaling to one replica converges within a bound.
//!
//! `pod_dns_and_hairpin` (one node): the resolv.conf pods get per `dnsPolicy`/`dnsConfig` (the
//! cluster DNS as nameserver, the search list, `ndots:5`), a Service's short name resolving
//! through the search list, and a 1-replica Deployment's pod reaching itself through its own
//! Service's ClusterIP (hairpin).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skiff_tests::cluster::free_port;
use skiff_tests::kubectl::{Kubectl, Up, kubectl_versions, remove_node_containers};

/// The cluster under test and everything host-global it made; removed on drop, also on failure.
struct Net {
    up: Option<Up>,
    agent: Option<Child>,
    /// The second agent's node, whose containers are removed by label.
    node2: Option<String>,
    table: String,
    dns_ip: String,
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
        if let Some(node2) = &self.node2 {
            remove_node_containers(node2);
        }
        // Stops skiff up (its proxy) and removes its node's containers.
        drop(self.up.take());
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.table])
            .output();
        let _ = Command::new("ip")
            .args(["addr", "del", &format!("{}/32", self.dns_ip), "dev", "lo"])
            .output();
    }
}

struct Host {
    ok: bool,
    code: i32,
    stdout: String,
    stderr: String,
}

fn host(program: &str, args: &[&str]) -> anyhow::Result<Host> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    Ok(Host {
        ok: out.status.success(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn curl(args: &[&str]) -> anyhow::Result<Host> {
    let mut all = vec!["-sS", "--max-time", "5"];
    all.extend_from_slice(args);
    host("curl", &all)
}

fn get(k: &Kubectl, args: &[&str]) -> anyhow::Result<String> {
    Ok(k.ok(args)?.trim().to_string())
}

/// Runs a shell script in a pod (bounded by `timeout` on the host).
fn exec(k: &Kubectl, pod: &str, script: &str) -> anyhow::Result<String> {
    let mut cmd = k.command(&["exec", pod, "--", "sh", "-c", script]);
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    cmd = Command::new("timeout");
    cmd.arg("120").arg(program).args(args);
    let out = cmd.stdin(Stdio::null()).output()?;
    anyhow::ensure!(
        out.status.success(),
        "exec in {pod} of {script:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// IPv4 addresses in a busybox `nslookup` answer (after the server's own lines).
fn answers(text: &str) -> BTreeSet<String> {
    let mut seen_name = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("Name:") {
            seen_name = true;
        } else if seen_name && let Some(rest) = line.strip_prefix("Address:") {
            let ip = rest.split_whitespace().next().unwrap_or("");
            if ip.parse::<std::net::Ipv4Addr>().is_ok() {
                out.insert(ip.to_string());
            }
        }
    }
    out
}

/// `name ip` of the pods with `selector`.
fn pods(k: &Kubectl, selector: &str) -> anyhow::Result<Vec<(String, String)>> {
    let text = k.ok(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{"\n"}{end}"#,
    ])?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, ip)| (n.to_string(), ip.to_string()))
        .collect())
}

fn self_signed(dir: &Path, name: &str, host_name: &str, org: &str) -> anyhow::Result<PathBuf> {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = host(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={host_name}/O={org}"),
            "-addext",
            &format!("subjectAltName=DNS:{host_name}"),
            "-keyout",
            &key.to_string_lossy(),
            "-out",
            &cert.to_string_lossy(),
        ],
    )?;
    anyhow::ensure!(out.ok, "openssl req failed: {}", out.stderr);
    Ok(cert)
}

/// The subject of the certificate the server presents for `sni`, spaces removed.
fn presented_subject(port: u16, sni: &str) -> anyhow::Result<String> {
    let out = host(
        "sh",
        &[
            "-c",
            &format!(
                "openssl s_client -connect 127.0.0.1:{port} -servername {sni} </dev/null 2>/dev/null | openssl x509 -noout -subject"
            ),
        ],
    )?;
    Ok(out.stdout.replace(' ', "").trim().to_string())
}

const APPS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
      - name: httpd
        image: skiff-test/httpd:1
        command: ["sh", "-c", "mkdir -p /tmp/www && for f in index.html a b; do hostname > /tmp/www/$f; done && exec httpd -f -p 80 -h /tmp/www"]
        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1, failureThreshold: 1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other}
spec:
  replicas: 1
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers:
      - name: httpd
        image: skiff-test/httpd:1
        command: ["sh", "-c", "mkdir -p /tmp/www && for f in index.html a b; do hostname > /tmp/www/$f; done && exec httpd -f -p 80 -h /tmp/www"]
        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: main
        image: skiff-test/busybox:1
        command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: other}
spec:
  selector: {app: other}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: tcp, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing-here}
  ports: [{port: 80}]
"#;

fn clients(node1: &str, node2: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: client-a}}
spec:
  nodeName: {node1}
  containers:
  - {{name: main, image: "skiff-test/busybox:1", command: ["sleep", "3600"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client-b}}
spec:
  nodeName: {node2}
  containers:
  - {{name: main, image: "skiff-test/busybox:1", command: ["sleep", "3600"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: own-dns}}
spec:
  nodeName: {node1}
  dnsPolicy: "None"
  dnsConfig:
    nameservers: [192.0.2.53]
    searches: [example.test]
    options: [{{name: ndots, value: "2"}}]
  containers:
  - {{name: main, image: "skiff-test/busybox:1", command: ["sleep", "3600"]}}
"#
    )
}

fn ingress(a: &str, b: &str) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: two-hosts}}
spec:
  tls:
  - {{hosts: [{a}], secretName: tls-a}}
  - {{hosts: [{b}], secretName: tls-b}}
  rules:
  - host: {a}
    http:
      paths:
      - {{path: /a, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
      - {{path: /b, pathType: Prefix, backend: {{service: {{name: other, port: {{number: 80}}}}}}}}
  - host: {b}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: other, port: {{number: 80}}}}}}}}
"#
    )
}

/// A service CIDR no other cluster on the host uses, 10.96.<n>.0/24 (outside 10.43/16), and its
/// cluster DNS address (the tenth): the first from `unique` on whose DNS address `lo` has
/// nothing yet.
fn unique_service_cidr(unique: u32) -> (String, String) {
    let on_lo = host("ip", &["-4", "-o", "addr", "show", "dev", "lo"])
        .map(|h| h.stdout)
        .unwrap_or_default();
    let octet = (0..250)
        .map(|i| 1 + unique.wrapping_add(i) % 250)
        .find(|n| !on_lo.contains(&format!(" 10.96.{n}.10/")))
        .unwrap_or(1 + unique % 250);
    (format!("10.96.{octet}.0/24"), format!("10.96.{octet}.10"))
}

/// Hostnames answering 60 requests to `url` from `pod`.
fn sixty(k: &Kubectl, pod: &str, url: &str) -> anyhow::Result<BTreeSet<String>> {
    let text = exec(
        k,
        pod,
        &format!("for i in $(seq 60); do timeout 5 wget -q -O - {url} || echo FAILED; done"),
    )?;
    anyhow::ensure!(
        !text.contains("FAILED"),
        "some requests from {pod} to {url} failed:\n{text}"
    );
    Ok(text.lines().map(str::to_string).collect())
}

#[tokio::test]
async fn service_networking_end_to_end() -> anyhow::Result<()> {
    let started = Instant::now();
    let unique = u32::from(free_port()) ^ std::process::id();
    let node1 = format!("net-{unique}-a");
    let node2 = format!("net-{unique}-b");
    let (cidr, dns_ip) = unique_service_cidr(unique);
    let (http_port, https_port) = (free_port(), free_port());
    let table = format!("skiff-{node1}");
    let up = Up::start_with_args(
        Some(&node1),
        &[
            "--service-cidr".into(),
            cidr.clone(),
            "--ingress-http-port".into(),
            http_port.to_string(),
            "--ingress-https-port".into(),
            https_port.to_string(),
            "--ingress-address".into(),
            "127.0.0.1".into(),
        ],
    )
    .await?;
    let mut net = Net {
        up: Some(up),
        agent: None,
        node2: Some(node2.clone()),
        table: table.clone(),
        dns_ip: dns_ip.clone(),
    };
    let up = net.up.as_ref().expect("just set");
    let bin = kubectl_versions()
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| PathBuf::from("kubectl"));
    let k = Kubectl::new(bin, up.kubeconfig())?;
    let log = up.log();
    anyhow::ensure!(
        log.contains(&format!("table ip {table}")),
        "skiff up did not start the proxy:\n{log}"
    );

    // A second node: `skiff agent` joining with the token `skiff up` printed.
    let token = log
        .lines()
        .find_map(|l| l.split("--token ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("no node token in the skiff up output:\n{log}"))?
        .to_string();
    let agent_log = std::fs::File::create(up.dir.path().join("agent2.log"))?;
    net.agent = Some(
        Command::new(skiff_tests::skiff_bin())
            .args(["agent", "--server", &format!("https://{}", up.api)])
            .args([
                "--token",
                &token,
                "--name",
                &node2,
                "--node-ip",
                "127.0.0.1",
            ])
            .args(["--node-api-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--cluster-dns", &dns_ip])
            .arg("--data-dir")
            .arg(up.dir.path().join("agent2"))
            .stdin(Stdio::null())
            .stdout(agent_log.try_clone()?)
            .stderr(agent_log)
            .spawn()?,
    );
    skiff_tests::wait::until("both nodes Ready", Duration::from_secs(90), || async {
        let out = k.run(&[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}"#,
        ])?;
        Ok((out.stdout.contains(&format!("{node1}=True"))
            && out.stdout.contains(&format!("{node2}=True")))
        .then_some(()))
    })
    .await?;
    k.ok(&["get", "ingressclass", "skiff"])?;

    let applied = k.apply_stdin(APPS, &[])?;
    anyhow::ensure!(applied.ok, "apply failed: {}", applied.stderr);
    let applied = k.apply_stdin(&clients(&node1, &node2), &[])?;
    anyhow::ensure!(applied.ok, "apply failed: {}", applied.stderr);
    for d in ["deploy/web", "deploy/other", "statefulset/db"] {
        k.ok(&["rollout", "status", d, "--timeout=180s"])?;
    }
    for p in ["client-a", "client-b", "own-dns"] {
        k.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{p}"),
            "--timeout=180s",
        ])?;
    }
    eprintln!("pods ready after {:?}", started.elapsed());
    let web = pods(&k, "app=web")?;
    let web_names: BTreeSet<String> = web.iter().map(|(n, _)| n.clone()).collect();
    let web_ips: BTreeSet<String> = web.iter().map(|(_, ip)| ip.clone()).collect();
    anyhow::ensure!(web_names.len() == 3, "expected 3 web pods, got {web:?}");
    let scheduled = k.ok(&["get", "pods", "-o", "wide"])?;
    eprintln!("{scheduled}");

    // resolv.conf on the second node (the separate `skiff agent`): the cluster DNS itself as
    // nameserver (not Docker's 127.0.0.11), the search list and ndots:5; dnsPolicy None
    // honoured. `pod_dns_and_hairpin` checks the other policies.
    let resolv = exec(&k, "client-b", "cat /etc/resolv.conf")?;
    anyhow::ensure!(
        resolv.starts_with(&format!(
            "nameserver {dns_ip}\nsearch default.svc.cluster.local svc.cluster.local cluster.local"
        )) && resolv.ends_with("\noptions ndots:5\n"),
        "client-b's resolv.conf is not the cluster's:\n{resolv}"
    );
    let own = exec(&k, "own-dns", "cat /etc/resolv.conf")?;
    anyhow::ensure!(
        own == "nameserver 192.0.2.53\nsearch example.test\noptions ndots:2\n",
        "dnsPolicy None with dnsConfig got:\n{own}"
    );

    // ClusterIP, by address and by name, from a client on each node: all three replicas.
    let cluster_ip = get(
        &k,
        &["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"],
    )?;
    for client in ["client-a", "client-b"] {
        for target in [
            cluster_ip.clone(),
            "web.default.svc.cluster.local".to_string(),
            "web".to_string(),
        ] {
            let seen = sixty(&k, client, &format!("http://{target}/"))?;
            anyhow::ensure!(
                seen == web_names,
                "{client} -> {target}: answered by {seen:?}, expected {web_names:?}"
            );
        }
    }
    eprintln!("ClusterIP and DNS checked after {:?}", started.elapsed());

    // NodePort from the host, on a local non-loopback address.
    let node_port = get(
        &k,
        &[
            "get",
            "svc",
            "web-np",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
    )?;
    let addrs = host("hostname", &["-I"])?.stdout;
    let host_ip = addrs
        .split_whitespace()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok() && !a.starts_with("10.42."))
        .ok_or_else(|| anyhow::anyhow!("no local IPv4 address in {addrs:?}"))?
        .to_string();
    let answer = curl(&[&format!("http://{host_ip}:{node_port}/")])?;
    anyhow::ensure!(
        answer.ok && web_names.contains(answer.stdout.trim()),
        "NodePort {host_ip}:{node_port} answered {:?} {}",
        answer.stdout,
        answer.stderr
    );

    // Headless: every ready pod IP. StatefulSet pod: its stable name.
    let headless = exec(
        &k,
        "client-a",
        "nslookup web-headless.default.svc.cluster.local 2>&1 || true",
    )?;
    anyhow::ensure!(
        answers(&headless) == web_ips,
        "headless answer {headless:?}, expected {web_ips:?}"
    );
    let db = pods(&k, "app=db")?;
    let db_ip = db
        .iter()
        .find(|(n, _)| n == "db-0")
        .map(|(_, ip)| ip.clone())
        .ok_or_else(|| anyhow::anyhow!("no db-0 in {db:?}"))?;
    let stable = exec(
        &k,
        "client-b",
        "nslookup db-0.db.default.svc.cluster.local 2>&1 || true",
    )?;
    anyhow::ensure!(
        answers(&stable) == BTreeSet::from([db_ip.clone()]),
        "db-0.db answered {stable:?}, expected {db_ip}"
    );
    let unknown = exec(
        &k,
        "client-a",
        "nslookup nope.default.svc.cluster.local 2>&1 || true",
    )?;
    anyhow::ensure!(
        answers(&unknown).is_empty(),
        "an unknown name resolved: {unknown}"
    );

    // No ready endpoints: refused at once, not a hang.
    let empty_ip = get(
        &k,
        &["get", "svc", "empty", "-o", "jsonpath={.spec.clusterIP}"],
    )?;
    let t = Instant::now();
    let refused = curl(&[&format!("http://{empty_ip}/")])?;
    let took = t.elapsed();
    anyhow::ensure!(
        refused.code == 7 && took < Duration::from_secs(1),
        "connecting to a Service without endpoints: exit {} after {took:?}: {}",
        refused.code,
        refused.stderr
    );
    eprintln!("no-endpoint Service refused in {took:?}");

    // Ingress: two hosts, two paths, TLS per SNI name, Secret rotation.
    let a = format!("a-{unique}.net.test");
    let b = format!("b-{unique}.net.test");
    let certs = tempfile::tempdir()?;
    let ca_a = self_signed(certs.path(), "a1", &a, "first")?;
    let ca_b = self_signed(certs.path(), "b1", &b, "first")?;
    for (secret, name) in [("tls-a", "a1"), ("tls-b", "b1")] {
        k.ok(&[
            "create",
            "secret",
            "tls",
            secret,
            &format!(
                "--cert={}",
                certs.path().join(format!("{name}.crt")).display()
            ),
            &format!(
                "--key={}",
                certs.path().join(format!("{name}.key")).display()
            ),
        ])?;
    }
    let applied = k.apply_stdin(&ingress(&a, &b), &[])?;
    anyhow::ensure!(applied.ok, "ingress apply failed: {}", applied.stderr);
    let other = pods(&k, "app=other")?;
    let other_name = other
        .first()
        .map(|(n, _)| n.clone())
        .ok_or_else(|| anyhow::anyhow!("no other pod"))?;
    let resolve = |h: &str, port: u16| format!("{h}:{port}:127.0.0.1");
    let check =
        |scheme: &str, h: &str, port: u16, path: &str, ca: &Path| -> anyhow::Result<String> {
            let url = format!("{scheme}://{h}:{port}{path}");
            let out = curl(&[
                "--resolve",
                &resolve(h, port),
                "--cacert",
                &ca.to_string_lossy(),
                &url,
            ])?;
            anyhow::ensure!(out.ok, "{url}: {} {}", out.stdout, out.stderr);
            Ok(out.stdout.trim().to_string())
        };
    skiff_tests::wait::until("the ingress to route", Duration::from_secs(30), || async {
        Ok(check("http", &a, http_port, "/a", &ca_a)
            .ok()
            .filter(|s| web_names.contains(s)))
    })
    .await?;
    for (scheme, port) in [("http", http_port), ("https", https_port)] {
        let to_web = check(scheme, &a, port, "/a", &ca_a)?;
        anyhow::ensure!(
            web_names.contains(&to_web),
            "{scheme} {a}/a went to {to_web}"
        );
        let to_other = check(scheme, &a, port, "/b", &ca_a)?;
        anyhow::ensure!(to_other == other_name, "{scheme} {a}/b went to {to_other}");
        let b_root = check(scheme, &b, port, "/", &ca_b)?;
        anyhow::ensure!(b_root == other_name, "{scheme} {b}/ went to {b_root}");
    }
    let subject_a = presented_subject(https_port, &a)?;
    let subject_b = presented_subject(https_port, &b)?;
    anyhow::ensure!(
        subject_a.contains(&format!("CN={a}")) && subject_a.contains("O=first"),
        "SNI {a} got {subject_a:?}"
    );
    anyhow::ensure!(
        subject_b.contains(&format!("CN={b}")),
        "SNI {b} got {subject_b:?}"
    );
    // Rotation: a new certificate for host a, picked up without restarting anything.
    let ca_a2 = self_signed(certs.path(), "a2", &a, "rotated")?;
    let rotated = k.ok(&[
        "create",
        "secret",
        "tls",
        "tls-a",
        &format!("--cert={}", ca_a2.display()),
        &format!("--key={}", certs.path().join("a2.key").display()),
        "--dry-run=client",
        "-o",
        "yaml",
    ])?;
    let applied = k.apply_stdin(&rotated, &[])?;
    anyhow::ensure!(applied.ok, "rotation apply failed: {}", applied.stderr);
    let t = Instant::now();
    skiff_tests::wait::until(
        "the rotated certificate",
        Duration::from_secs(30),
        || async {
            Ok(presented_subject(https_port, &a)?
                .contains("O=rotated")
                .then_some(()))
        },
    )
    .await?;
    eprintln!("rotated certificate served after {:?}", t.elapsed());
    let after = check("https", &a, https_port, "/a", &ca_a2)?;
    anyhow::ensure!(
        web_names.contains(&after),
        "after rotation {a}/a went to {after}"
    );

    // Bad specs: refused by the API server (client-side validation off).
    let bad = [
        r#"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"bad-path"},"spec":{"rules":[{"http":{"paths":[{"path":"no-slash","pathType":"Prefix","backend":{"service":{"name":"web","port":{"number":80}}}}]}}]}}"#,
        r#"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"bad-backend"},"spec":{"rules":[{"http":{"paths":[{"path":"/","pathType":"Prefix","backend":{}}]}}]}}"#,
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"bad-port"},"spec":{"ports":[{"port":70000}]}}"#,
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"bad-nodeport"},"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":80}]}}"#,
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"bad-ip"},"spec":{"clusterIP":"10.1.2.3","ports":[{"port":80}]}}"#,
    ];
    for spec in bad {
        let out = k.apply_stdin(spec, &["--validate=false"])?;
        anyhow::ensure!(
            !out.ok && out.stderr.contains("invalid"),
            "accepted or refused for another reason: {spec}\n{}{}",
            out.stdout,
            out.stderr
        );
    }

    // A failing readiness probe takes a replica out of the rules.
    let (sick, _) = web.first().cloned().expect("3 pods");
    let t = Instant::now();
    exec(&k, &sick, "rm /tmp/www/index.html")?;
    let url = format!("http://{cluster_ip}/");
    skiff_tests::wait::until(
        "requests to avoid the unready replica",
        Duration::from_secs(30),
        || async {
            for _ in 0..15 {
                let out = curl(&[&url])?;
                let name = out.stdout.trim().to_string();
                if !(out.ok && web_names.contains(&name) && name != sick) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    eprintln!(
        "unready replica out of the rules {:?} after its probe began failing (period 1 s)",
        t.elapsed()
    );
    exec(&k, &sick, "hostname > /tmp/www/index.html")?;

    // Scale to one: rules converge (10 requests in a row reach one replica).
    let t = Instant::now();
    k.ok(&["scale", "deploy/web", "--replicas=1"])?;
    skiff_tests::wait::until(
        "requests to reach only the remaining replica",
        Duration::from_secs(30),
        || async {
            let mut seen = BTreeSet::new();
            for _ in 0..10 {
                let out = curl(&[&url])?;
                anyhow::ensure!(out.ok, "{url}: {}", out.stderr);
                seen.insert(out.stdout.trim().to_string());
            }
            Ok((seen.len() == 1).then_some(()))
        },
    )
    .await?;
    let converged = t.elapsed();
    eprintln!(
        "scale to 1: rules converged {converged:?} after the scale request; whole test {:?}",
        started.elapsed()
    );
    anyhow::ensure!(
        converged < Duration::from_secs(3),
        "endpoints took {converged:?} to leave the rules"
    );
    drop(net);
    Ok(())
}

fn dns_pods(node: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: loop}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: loop}}}}
  template:
    metadata: {{labels: {{app: loop}}}}
    spec:
      containers:
      - name: httpd
        image: skiff-test/httpd:1
        command: ["sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"]
        readinessProbe: {{httpGet: {{path: /, port: 80}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: loop}}
spec:
  selector: {{app: loop}}
  ports: [{{port: 80, targetPort: 80}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: dns-merged}}
spec:
  nodeName: {node}
  dnsConfig:
    searches: [extra.test]
    options: [{{name: ndots, value: "3"}}, {{name: edns0}}]
  containers:
  - {{name: main, image: "skiff-test/busybox:1", command: ["sleep", "3600"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: dns-default}}
spec:
  nodeName: {node}
  dnsPolicy: Default
  containers:
  - {{name: main, image: "skiff-test/busybox:1", command: ["sleep", "3600"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: dns-hostnet}}
spec:
  nodeName: {node}
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  initContainers:
  - {{name: init, image: "skiff-test/busybox:1", command: ["sh", "-c", "cp /etc/resolv.conf /shared/init-resolv.conf"], volumeMounts: [{{name: shared, mountPath: /shared}}]}}
  containers:
  - {{name: main, image: "skiff-test/busybox:1", command: ["sleep", "3600"], volumeMounts: [{{name: shared, mountPath: /shared}}]}}
  volumes: [{{name: shared, emptyDir: {{}}}}]
"#
    )
}

/// The node's resolv.conf as this test reads it: non-loopback nameservers, search domains.
fn node_resolv_conf() -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (mut servers, mut search) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(
                words
                    .next()
                    .filter(|ip| {
                        ip.parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| !ip.is_loopback())
                    })
                    .map(str::to_string),
            ),
            Some("search") | Some("domain") => search = words.map(str::to_string).collect(),
            _ => {}
        }
    }
    Ok((servers, search))
}

#[tokio::test]
async fn pod_dns_and_hairpin() -> anyhow::Result<()> {
    let started = Instant::now();
    let unique = u32::from(free_port()) ^ std::process::id();
    let node = format!("dns-{unique}");
    let (cidr, dns_ip) = unique_service_cidr(unique);
    let table = format!("skiff-{node}");
    let up = Up::start_with_args(
        Some(&node),
        &["--service-cidr".into(), cidr.clone(), "--no-ingress".into()],
    )
    .await?;
    let net = Net {
        up: Some(up),
        agent: None,
        node2: None,
        table: table.clone(),
        dns_ip: dns_ip.clone(),
    };
    let up = net.up.as_ref().expect("just set");
    let bin = kubectl_versions()
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| PathBuf::from("kubectl"));
    let k = Kubectl::new(bin, up.kubeconfig())?;
    let log = up.log();
    anyhow::ensure!(
        log.contains(&format!("table ip {table}")),
        "skiff up did not start the proxy:\n{log}"
    );
    skiff_tests::wait::until("the node Ready", Duration::from_secs(90), || async {
        let out = k.run(&[
            "get",
            "node",
            &node,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
        ])?;
        Ok((out.stdout.trim() == "True").then_some(()))
    })
    .await?;
    let applied = k.apply_stdin(&dns_pods(&node), &[])?;
    anyhow::ensure!(applied.ok, "apply failed: {}", applied.stderr);
    k.ok(&["rollout", "status", "deploy/loop", "--timeout=180s"])?;
    for p in ["dns-merged", "dns-default", "dns-hostnet"] {
        k.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{p}"),
            "--timeout=180s",
        ])?;
    }
    eprintln!("pods ready after {:?}", started.elapsed());
    let (loop_pod, _) = pods(&k, "app=loop")?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no loop pod"))?;
    let (node_servers, node_search) = node_resolv_conf()?;
    let with_node_search = |cluster: &str| {
        std::iter::once(cluster.to_string())
            .chain(node_search.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let cluster_search = "default.svc.cluster.local svc.cluster.local cluster.local";

    // ClusterFirst (the default), in the Deployment's pod: the cluster DNS itself.
    let expected = format!(
        "nameserver {dns_ip}\nsearch {}\noptions ndots:5\n",
        with_node_search(cluster_search)
    );
    let resolv = exec(&k, &loop_pod, "cat /etc/resolv.conf")?;
    anyhow::ensure!(
        resolv == expected,
        "ClusterFirst resolv.conf:\n{resolv}\nexpected:\n{expected}"
    );
    // dnsConfig merged into ClusterFirst: searches appended, options replaced by name.
    let expected = format!(
        "nameserver {dns_ip}\nsearch {} extra.test\noptions ndots:3 edns0\n",
        with_node_search(cluster_search)
    );
    let merged = exec(&k, "dns-merged", "cat /etc/resolv.conf")?;
    anyhow::ensure!(
        merged == expected,
        "ClusterFirst + dnsConfig resolv.conf:\n{merged}\nexpected:\n{expected}"
    );
    // Default: the node's resolvers and search domains, nothing of the cluster.
    let default = exec(&k, "dns-default", "cat /etc/resolv.conf")?;
    let default_servers: Vec<&str> = default
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    anyhow::ensure!(
        default_servers == node_servers.iter().map(String::as_str).collect::<Vec<_>>()
            && !default.contains("cluster.local")
            && !default.contains("127.0.0.11"),
        "dnsPolicy Default resolv.conf:\n{default}\nexpected the node's nameservers {node_servers:?}"
    );
    // ClusterFirstWithHostNet on the host network, in the init container and the app container.
    let expected = format!(
        "nameserver {dns_ip}\nsearch {}\noptions ndots:5\n",
        with_node_search(cluster_search)
    );
    let hostnet = exec(&k, "dns-hostnet", "cat /etc/resolv.conf")?;
    let hostnet_init = exec(&k, "dns-hostnet", "cat /shared/init-resolv.conf")?;
    anyhow::ensure!(
        hostnet == expected && hostnet_init == expected,
        "ClusterFirstWithHostNet resolv.conf (app, init):\n{hostnet}\n{hostnet_init}\nexpected:\n{expected}"
    );

    // The short name of a Service in the pod's namespace, through the search list.
    let cluster_ip = get(
        &k,
        &["get", "svc", "loop", "-o", "jsonpath={.spec.clusterIP}"],
    )?;
    let lookup = exec(&k, "dns-merged", "nslookup loop 2>&1 || true")?;
    anyhow::ensure!(
        answers(&lookup) == BTreeSet::from([cluster_ip.clone()]),
        "nslookup loop answered {lookup:?}, expected {cluster_ip}"
    );
    let by_name = exec(&k, "dns-merged", "timeout 5 wget -q -O - http://loop/")?;
    anyhow::ensure!(
        by_name.trim() == loop_pod,
        "http://loop/ from dns-merged answered {by_name:?}, expected {loop_pod}"
    );

    // Hairpin: the Deployment's only pod reaches itself through its own Service, by ClusterIP
    // and by short name; every request is answered (by itself).
    let script = format!(
        "for i in $(seq 10); do timeout 5 wget -q -O - http://{cluster_ip}/ || echo FAILED; done; \
         for i in $(seq 5); do timeout 5 wget -q -O - http://loop/ || echo FAILED; done"
    );
    let answered = exec(&k, &loop_pod, &script)?;
    let lines: Vec<&str> = answered.lines().collect();
    anyhow::ensure!(
        lines.len() == 15 && lines.iter().all(|l| *l == loop_pod),
        "{loop_pod} through its own Service {cluster_ip} answered:\n{answered}"
    );
    eprintln!("pod DNS and hairpin checked after {:?}", started.elapsed());
    drop(net);
    Ok(())
}
