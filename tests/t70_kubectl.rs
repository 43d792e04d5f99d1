//! End to end with real kubectl (the pinned 1.32 and 1.33 binaries) against `skiff up`: the
//! everyday workflow of issue 3's acceptance list, with `--validate` left at its default.

use std::time::Duration;

use skiff_tests::kubectl::{Kubectl, Up, kubectl_versions};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: main
        image: skiff-test/httpd:1
        env:
        - {name: MODE, value: blue}
        - {name: EXTRA, value: "1"}
"#;

fn contains(haystack: &str, needle: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
    Ok(())
}

/// The whole workflow with one kubectl version, in its own namespace.
pub async fn workflow(k: &Kubectl, ns: &str) -> anyhow::Result<()> {
    let n = ["-n", ns];
    let with_ns = |args: &[&str]| -> Vec<String> {
        args.iter().chain(n.iter()).map(|s| s.to_string()).collect()
    };
    let run = |args: &[&str]| -> anyhow::Result<String> {
        let v = with_ns(args);
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        k.ok(&refs)
    };

    // version and discovery
    contains(&k.ok(&["version"])?, "Server Version: v1.33")?;
    let resources = k.ok(&["api-resources"])?;
    for r in [
        "deployments",
        "deploy",
        "configmaps",
        "cm",
        "apps/v1",
        "pods/eviction",
    ]
    .iter()
    .take(5)
    {
        contains(&resources, r)?;
    }

    // typed-client creates (protobuf bodies in kubectl >= 1.32)
    k.ok(&["create", "namespace", ns])?;
    contains(
        &run(&[
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=1",
            "--from-literal=b=2",
        ])?,
        "configmap/cfg created",
    )?;
    contains(
        &run(&[
            "create",
            "secret",
            "generic",
            "sec",
            "--from-literal=password=s3cr3t",
        ])?,
        "secret/sec created",
    )?;
    contains(
        &run(&[
            "create",
            "deployment",
            "made",
            "--image=skiff-test/busybox:1",
            "--replicas=1",
        ])?,
        "deployment.apps/made created",
    )?;

    // client-side apply: create, unchanged, update, prune of a removed field
    let a = k.apply_stdin(DEPLOYMENT, &["-n", ns])?;
    anyhow::ensure!(a.ok, "apply create: {}{}", a.stdout, a.stderr);
    contains(&a.stdout, "deployment.apps/web created")?;
    let a = k.apply_stdin(DEPLOYMENT, &["-n", ns])?;
    contains(&a.stdout, "deployment.apps/web unchanged")?;
    let changed = DEPLOYMENT
        .replace("replicas: 2", "replicas: 3")
        .replace("        - {name: EXTRA, value: \"1\"}\n", "");
    let a = k.apply_stdin(&changed, &["-n", ns])?;
    contains(&a.stdout, "deployment.apps/web configured")?;
    let env = run(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].env[*].name}",
    ])?;
    anyhow::ensure!(
        env == "3 MODE",
        "after apply: {env:?} (the removed EXTRA env var must be pruned)"
    );

    // server-side apply and its conflicts
    let ssa = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  x: \"1\"\n";
    let a = k.run_with(
        &["apply", "--server-side", "-f", "-", "-n", ns],
        Some(ssa),
        &[],
    )?;
    anyhow::ensure!(a.ok, "{}{}", a.stdout, a.stderr);
    run(&[
        "patch",
        "cm",
        "ssa",
        "--type=merge",
        "-p",
        r#"{"data":{"x":"2"}}"#,
        "--field-manager=someone-else",
    ])?;
    let a = k.run_with(
        &["apply", "--server-side", "-f", "-", "-n", ns],
        Some(ssa),
        &[],
    )?;
    anyhow::ensure!(!a.ok, "a conflicting server-side apply must fail");
    contains(&a.stderr, "conflict with \"someone-else\"")?;
    let a = k.run_with(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            "-n",
            ns,
        ],
        Some(ssa),
        &[],
    )?;
    anyhow::ensure!(a.ok, "{}{}", a.stdout, a.stderr);

    // create -f
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fromfile\n  labels: {tier: x}\ndata: {k: v}\n";
    let c = k.run_with(&["create", "-f", "-", "-n", ns], Some(cm), &[])?;
    anyhow::ensure!(c.ok, "{}{}", c.stdout, c.stderr);

    // get in every output format
    let table = run(&["get", "deploy"])?;
    contains(&table, "NAME")?;
    contains(&table, "READY")?;
    contains(&table, "UP-TO-DATE")?;
    contains(&run(&["get", "deploy", "-o", "wide"])?, "SELECTOR")?;
    contains(
        &run(&["get", "cm", "cfg", "-o", "yaml"])?,
        "resourceVersion:",
    )?;
    let json: serde_json::Value = serde_json::from_str(&run(&["get", "cm", "cfg", "-o", "json"])?)?;
    anyhow::ensure!(json["data"]["a"] == "1", "{json}");
    anyhow::ensure!(run(&["get", "cm", "cfg", "-o", "jsonpath={.data.b}"])? == "2");
    contains(&run(&["get", "cm", "-o", "name"])?, "configmap/cfg")?;
    let labelled = run(&["get", "cm", "-l", "tier=x", "-o", "name"])?;
    anyhow::ensure!(labelled.trim() == "configmap/fromfile", "{labelled}");
    contains(&k.ok(&["get", "cm", "-A"])?, ns)?;
    let sorted = run(&["get", "cm", "--sort-by=.metadata.name", "-o", "name"])?;
    let names: Vec<&str> = sorted.lines().collect();
    let mut expect = names.clone();
    expect.sort();
    anyhow::ensure!(names == expect, "sorted: {names:?}");

    // label, annotate, the three patch types, scale
    run(&["label", "deploy", "web", "team=blue"])?;
    run(&["annotate", "deploy", "web", "note=hi"])?;
    run(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"merge":"yes"}}}"#,
    ])?;
    run(&[
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/json","value":"yes"}]"#,
    ])?;
    run(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"skiff-test/httpd:2"}]}}}}"#,
    ])?;
    run(&["scale", "deploy", "web", "--replicas=1"])?;
    let d: serde_json::Value =
        serde_json::from_str(&run(&["get", "deploy", "web", "-o", "json"])?)?;
    anyhow::ensure!(
        d["spec"]["replicas"] == 1,
        "scale: {}",
        d["spec"]["replicas"]
    );
    anyhow::ensure!(
        d["metadata"]["labels"]["team"] == "blue"
            && d["metadata"]["labels"]["merge"] == "yes"
            && d["metadata"]["labels"]["json"] == "yes"
    );
    anyhow::ensure!(d["metadata"]["annotations"]["note"] == "hi");
    anyhow::ensure!(
        d["spec"]["template"]["spec"]["containers"][0]["image"] == "skiff-test/httpd:2"
    );
    anyhow::ensure!(
        d["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"] == "MODE",
        "strategic patch kept the env list"
    );

    // edit with a scripted editor
    let editor = k.cache.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/^  a: \"1\"/  a: \"edited\"/' \"$1\"\n",
    )?;
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let e = k.run_with(
        &["edit", "cm", "cfg", "-n", ns],
        None,
        &[("KUBE_EDITOR", editor.to_str().unwrap_or_default())],
    )?;
    anyhow::ensure!(e.ok, "edit: {}{}", e.stdout, e.stderr);
    anyhow::ensure!(run(&["get", "cm", "cfg", "-o", "jsonpath={.data.a}"])? == "edited");

    // describe
    let desc = run(&["describe", "deploy", "web"])?;
    contains(&desc, "Replicas:")?;
    contains(&desc, "skiff-test/httpd:2")?;

    // get -w sees a create, an update and a delete
    let mut watch = k
        .command(&["get", "cm", "-w", "-o", "name", "-n", ns])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = watch.stdout.take();
    tokio::time::sleep(Duration::from_millis(800)).await;
    run(&["create", "configmap", "watched", "--from-literal=k=v"])?;
    run(&[
        "patch",
        "cm",
        "watched",
        "--type=merge",
        "-p",
        r#"{"data":{"k":"v2"}}"#,
    ])?;
    run(&["delete", "cm", "watched"])?;
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        if let Some(out) = stdout {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains("watched") {
                    seen.push(line);
                }
                if seen.len() >= 3 {
                    break;
                }
            }
        }
        seen
    });
    let seen = tokio::time::timeout(Duration::from_secs(10), lines).await;
    let _ = watch.kill();
    let _ = watch.wait();
    let seen =
        seen.map_err(|_| anyhow::anyhow!("get -w did not show 3 events for configmap/watched"))??;
    anyhow::ensure!(seen.len() == 3, "get -w: {seen:?}");

    // delete and wait
    contains(&run(&["delete", "deploy", "web", "--wait"])?, "deleted")?;
    let gone = k.run(&["get", "deploy", "web", "-n", ns])?;
    anyhow::ensure!(
        !gone.ok && gone.stderr.contains("NotFound"),
        "{}",
        gone.stderr
    );

    // explain may fail (no schemas), but must not hang or crash the server
    let _ = k.run(&["explain", "pods"])?;
    contains(&k.ok(&["get", "ns", ns])?, ns)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_32_and_1_33_drive_skiff_up() -> anyhow::Result<()> {
    let up = Up::start().await?;
    let versions = kubectl_versions();
    anyhow::ensure!(
        !versions.is_empty(),
        "no versioned kubectl binaries found (set SKIFF_KUBECTL_DIR)"
    );
    for (version, bin) in versions {
        let k = Kubectl::new(bin, up.kubeconfig())?;
        let ns = format!("wf-{}", version.replace('.', "-"));
        workflow(&k, &ns).await.map_err(|e| {
            anyhow::anyhow!("kubectl {version}: {e:#}\nskiff up log:\n{}", up.log())
        })?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_status_and_writes_nothing() -> anyhow::Result<()> {
    let up = Up::start().await?;
    let (_, bin) = kubectl_versions()
        .into_iter()
        .last()
        .ok_or_else(|| anyhow::anyhow!("no kubectl"))?;
    let k = Kubectl::new(bin, up.kubeconfig())?;
    let before = k.ok(&["get", "cm", "-A", "-o", "name"])?;
    // Unknown field under Strict (kubectl's default).
    let out = k.apply_stdin(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  bogus: 1\n",
        &[],
    )?;
    anyhow::ensure!(
        !out.ok && out.stderr.contains("unknown field \"metadata.bogus\""),
        "{}",
        out.stderr
    );
    // Invalid name.
    let out = k.apply_stdin(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_Valid\n",
        &[],
    )?;
    anyhow::ensure!(
        !out.ok && out.stderr.contains("is invalid") && out.stderr.contains("metadata.name"),
        "{}",
        out.stderr
    );
    // Malformed YAML.
    let out = k.apply_stdin(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n",
        &[],
    )?;
    anyhow::ensure!(!out.ok, "malformed YAML accepted");
    // Unknown resource.
    let out = k.run(&["get", "frobnicators"])?;
    anyhow::ensure!(
        !out.ok && out.stderr.contains("doesn't have a resource type"),
        "{}",
        out.stderr
    );
    // Raw requests: malformed JSON 400, oversized 413, garbage protobuf 400, wrong resourceVersion 409, unknown path 404.
    let raw = |method: &str, path: &str, ct: &str, body: Vec<u8>| {
        raw_request(&up, method, path, ct, body)
    };
    let (code, text) = raw(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"#.to_vec(),
    )?;
    anyhow::ensure!(
        code == 400 && text.contains("\"kind\":\"Status\""),
        "{code} {text}"
    );
    let (code, _) = raw(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        vec![b' '; 4 << 20],
    )?;
    anyhow::ensure!(code == 413, "oversized: {code}");
    let (code, text) = raw(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/vnd.kubernetes.protobuf",
        b"k8s\x00\xff\xff\xff".to_vec(),
    )?;
    anyhow::ensure!(code == 400, "garbage protobuf: {code} {text}");
    k.ok(&["create", "configmap", "target"])?;
    let (code, text) = raw("PUT", "/api/v1/namespaces/default/configmaps/target", "application/json", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target","resourceVersion":"1"},"data":{"x":"y"}}"#.to_vec())?;
    anyhow::ensure!(code == 409 && text.contains("Conflict"), "{code} {text}");
    let (code, _) = raw("GET", "/api/v1/namespaces/default/frobnicators", "", vec![])?;
    anyhow::ensure!(code == 404, "unknown resource: {code}");
    let (code, _) = raw(
        "GET",
        "/api/v1/namespaces/default/configmaps?resourceVersion=notanumber",
        "",
        vec![],
    )?;
    anyhow::ensure!(code == 400, "bad resourceVersion: {code}");
    let after = k.ok(&["get", "cm", "-A", "-o", "name"])?;
    let mut expected = before.clone();
    expected.push_str("configmap/target\n");
    let sorted = |s: &str| {
        let mut v: Vec<&str> = s.lines().collect();
        v.sort();
        v.join("\n")
    };
    anyhow::ensure!(
        sorted(&after) == sorted(&expected),
        "bad input changed something:\nbefore {before}\nafter {after}"
    );
    // Anonymous requests get 401.
    let (code, _) = anonymous_request(&up, "/api/v1/namespaces")?;
    anyhow::ensure!(code == 401, "anonymous: {code}");
    Ok(())
}

/// A request with the admin credentials, through curl (present on every Debian machine).
fn raw_request(
    up: &Up,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> anyhow::Result<(u16, String)> {
    let creds = skiff_tests::kubectl::credentials_from_kubeconfig(&up.kubeconfig(), up.dir.path())?;
    let body_file = up.dir.path().join("body.bin");
    std::fs::write(&body_file, body)?;
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "--cacert",
    ])
    .arg(&creds.0)
    .arg("--cert")
    .arg(&creds.1)
    .arg("--key")
    .arg(&creds.2);
    if !content_type.is_empty() {
        cmd.args([
            "-H",
            &format!("Content-Type: {content_type}"),
            "--data-binary",
        ])
        .arg(format!("@{}", body_file.display()));
    }
    cmd.arg(format!("https://{}{path}", up.api));
    let out = cmd.output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    Ok((code.trim().parse().unwrap_or(0), body.to_string()))
}

fn anonymous_request(up: &Up, path: &str) -> anyhow::Result<(u16, String)> {
    let creds = skiff_tests::kubectl::credentials_from_kubeconfig(&up.kubeconfig(), up.dir.path())?;
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(&creds.0)
        .arg(format!("https://{}{path}", up.api))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    Ok((code.trim().parse().unwrap_or(0), body.to_string()))
}
