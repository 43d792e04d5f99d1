//! Pod lifecycle on real Docker: shared localhost, init containers, environment, deletion
//! within the grace period, missing images.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use skiff_agent::images::{HTTPD_INDEX, TEST_BUSYBOX_IMAGE, TEST_HTTPD_IMAGE};
use skiff_agent::runtime::ContainerRuntime;

use crate::harness::{LONG, Node, container_status, is_running, waiting_reason};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_two_containers_talk_over_localhost() -> Result<()> {
    let mut node = Node::start().await?;
    let pod = node.pod(
        "pair",
        json!({
            "restartPolicy": "Never",
            "containers": [
                {"name": "web", "image": TEST_HTTPD_IMAGE},
                {"name": "client", "image": TEST_BUSYBOX_IMAGE, "command": ["sh", "-c",
                    "for i in $(seq 1 100); do wget -q -O - http://127.0.0.1:80/ && exit 0; sleep 0.2; done; exit 1"]},
            ],
        }),
    );
    node.manager.apply(pod.clone());
    let status = node
        .wait_status(&pod, "the client to finish", LONG, |s| {
            container_status(s, "client")
                .and_then(|c| c.state.as_ref())
                .and_then(|st| st.terminated.as_ref())
                .is_some()
        })
        .await?;
    let client = container_status(&status, "client")
        .and_then(|c| c.state.clone())
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(
        (client.exit_code, client.reason.as_deref()),
        (0, Some("Completed"))
    );
    assert!(is_running(&status, "web"));
    assert!(
        status.pod_ip.as_deref().unwrap_or("").starts_with("10.42."),
        "{:?}",
        status.pod_ip
    );
    let id = container_status(&status, "client")
        .and_then(|c| c.container_id.clone())
        .unwrap_or_default();
    let logs: Vec<u8> = {
        use futures::StreamExt;
        let mut stream = node
            .runtime
            .logs(id.trim_start_matches("docker://"), &Default::default());
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        out
    };
    assert!(
        String::from_utf8_lossy(&logs).contains(HTTPD_INDEX.trim()),
        "client output: {}",
        String::from_utf8_lossy(&logs)
    );
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t11_init_containers_run_first_and_env_is_filled() -> Result<()> {
    let mut node = Node::start().await?;
    let pod = node.pod(
        "init",
        json!({
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [
                {"name": "first", "image": TEST_BUSYBOX_IMAGE, "command": ["sh", "-c", "echo one > /work/order"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                {"name": "second", "image": TEST_BUSYBOX_IMAGE, "command": ["sh", "-c", "echo two >> /work/order"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
            ],
            "containers": [{"name": "main", "image": TEST_BUSYBOX_IMAGE, "command": ["sleep", "600"],
                "workingDir": "/work",
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "GREETING", "value": "hi $(POD_NAME)"},
                ],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
            "terminationGracePeriodSeconds": 1,
        }),
    );
    node.manager.apply(pod.clone());
    let status = node
        .wait_status(&pod, "main running", LONG, |s| is_running(s, "main"))
        .await?;
    let inits = status.init_container_statuses.clone().unwrap_or_default();
    assert!(inits.iter().all(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code == 0)
            .unwrap_or(false)
    }));
    assert_eq!(
        crate::harness::condition(&status, "Initialized").as_deref(),
        Some("True")
    );
    let (_, order) = node.exec(&pod, "main", &["cat", "order"]).await?;
    assert_eq!(order, "one\ntwo\n");
    let (_, env) = node
        .exec(
            &pod,
            "main",
            &["sh", "-c", "echo $POD_NAME $POD_IP $GREETING"],
        )
        .await?;
    assert_eq!(
        env.trim(),
        format!("init {} hi init", status.pod_ip.clone().unwrap_or_default())
    );
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_deleting_a_pod_removes_its_containers_within_the_grace_period() -> Result<()> {
    let mut node = Node::start().await?;
    let mut pod = node.pod(
        "doomed",
        json!({
            "terminationGracePeriodSeconds": 3,
            "containers": [
                // Ignores SIGTERM: must be killed when the grace period ends.
                {"name": "stubborn", "image": TEST_BUSYBOX_IMAGE, "command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]},
                {"name": "polite", "image": TEST_BUSYBOX_IMAGE, "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
                 "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo bye > /tmp/bye"]}}}},
            ],
        }),
    );
    node.manager.apply(pod.clone());
    node.wait_status(&pod, "both running", LONG, |s| {
        is_running(s, "stubborn") && is_running(s, "polite")
    })
    .await?;
    pod.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    pod.metadata.deletion_grace_period_seconds = Some(3);
    let started = Instant::now();
    node.manager.apply(pod.clone());
    node.wait_containers(&pod, "every container removed", LONG, |list| {
        list.is_empty()
    })
    .await?;
    let took = started.elapsed();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !node
        .statuses
        .finished
        .lock()
        .map(|f| f.contains(&uid))
        .unwrap_or(false)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pod_finished was not reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 3 s of grace for the stubborn container, plus removal: well under the default 30 s.
    assert!(took < Duration::from_secs(20), "teardown took {took:?}");
    assert!(
        !node.data_dir.join("pods").join(&uid).exists(),
        "the pod's directory is released"
    );
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_a_missing_image_gives_err_image_pull_then_back_off() -> Result<()> {
    let mut node = Node::start().await?;
    let pod = node.pod(
        "missing",
        json!({"containers": [{"name": "main", "image": "skiff-test/does-not-exist:1"}]}),
    );
    node.manager.apply(pod.clone());
    node.wait_status(&pod, "ErrImagePull", Duration::from_secs(90), |s| {
        waiting_reason(s, "main").as_deref() == Some("ErrImagePull")
    })
    .await?;
    node.wait_status(&pod, "ImagePullBackOff", Duration::from_secs(30), |s| {
        waiting_reason(s, "main").as_deref() == Some("ImagePullBackOff")
    })
    .await?;
    let status = node.latest(&pod).unwrap_or_default();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let reasons = node.event_reasons(&pod);
    assert!(
        reasons.iter().any(|r| r == "Pulling") && reasons.iter().any(|r| r == "Failed"),
        "{reasons:?}"
    );
    node.shutdown().await;
    Ok(())
}

/// Removes the pod network rules at the end if this test added them (also on failure).
struct RulesGuard {
    added: bool,
}

impl Drop for RulesGuard {
    fn drop(&mut self) {
        if !self.added {
            return;
        }
        for rule in
            skiff_agent::pod_network::cluster_rules(skiff_agent::pod_network::DEFAULT_CLUSTER_CIDR)
        {
            let mut args = vec![
                "-w".to_string(),
                "-t".to_string(),
                rule.table.to_string(),
                "-D".to_string(),
                rule.chain.to_string(),
            ];
            args.extend(rule.args);
            while std::process::Command::new("iptables")
                .args(&args)
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
            {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_pods_on_two_nodes_of_one_machine_reach_each_other_without_nat() -> Result<()> {
    use skiff_agent::pod_network::{
        DEFAULT_CLUSTER_CIDR, cluster_rules, ensure_rules, rules_present,
    };
    let rules = cluster_rules(DEFAULT_CLUSTER_CIDR);
    let _rules = RulesGuard {
        added: !rules_present(&rules).await?,
    };
    ensure_rules(&rules).await?;
    let mut first = Node::start().await?;
    let mut second = Node::start().await?;
    let server = first.pod(
        "server",
        json!({"terminationGracePeriodSeconds": 1,
        "containers": [{"name": "web", "image": TEST_HTTPD_IMAGE}]}),
    );
    first.manager.apply(server.clone());
    let server_status = first
        .wait_status(&server, "the server running", LONG, |s| {
            is_running(s, "web")
        })
        .await?;
    let server_ip = server_status.pod_ip.clone().unwrap_or_default();
    let client = second.pod("client", json!({"restartPolicy": "Never", "containers": [{"name": "get", "image": TEST_BUSYBOX_IMAGE,
        "command": ["sh", "-c", format!("for i in $(seq 1 50); do wget -q -O - http://{server_ip}/ && exit 0; sleep 0.2; done; exit 1")]}]}));
    second.manager.apply(client.clone());
    let client_status = second
        .wait_status(&client, "the client to finish", LONG, |s| {
            container_status(s, "get")
                .and_then(|c| c.state.as_ref())
                .and_then(|st| st.terminated.as_ref())
                .is_some()
        })
        .await?;
    let done = container_status(&client_status, "get")
        .and_then(|c| c.state.clone())
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(
        done.exit_code, 0,
        "the client could not reach {server_ip} on the other node"
    );
    assert_ne!(client_status.pod_ip, server_status.pod_ip);
    // The server saw the client's own pod IP (busybox httpd -v logs the peer).
    let client_ip = client_status.pod_ip.clone().unwrap_or_default();
    let web = first.container(&server, "web").await?;
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        use futures::StreamExt;
        let mut stream = first.runtime.logs(&web.id, &Default::default());
        let mut text = Vec::new();
        while let Some(chunk) = stream.next().await {
            text.extend_from_slice(&chunk?);
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        if text.contains(&client_ip) {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the server never logged {client_ip}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.shutdown().await;
    second.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t15_a_pod_recreated_under_the_same_name_waits_for_the_old_one() -> Result<()> {
    let mut node = Node::start().await?;
    let spec = json!({"terminationGracePeriodSeconds": 2, "containers": [{"name": "main", "image": TEST_BUSYBOX_IMAGE,
        "command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]}]});
    let mut old = node.pod("same", spec.clone());
    node.manager.apply(old.clone());
    node.wait_status(&old, "the old pod running", LONG, |s| is_running(s, "main"))
        .await?;
    old.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    old.metadata.deletion_grace_period_seconds = Some(2);
    node.manager.apply(old.clone());
    let new = node.pod("same", spec);
    node.manager.apply(new.clone());
    node.wait_status(&new, "the new pod running", LONG, |s| is_running(s, "main"))
        .await?;
    node.wait_containers(&old, "the old pod gone", LONG, |list| list.is_empty())
        .await?;
    let old_uid = old.metadata.uid.clone().unwrap_or_default();
    assert!(
        node.statuses
            .finished
            .lock()
            .map(|f| f.contains(&old_uid))
            .unwrap_or(false),
        "the old pod finished its teardown"
    );
    let current = node.container(&new, "main").await?;
    assert_eq!(Some(current.identity.pod_uid), new.metadata.uid.clone());
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t16_limits_and_security_context_reach_the_container() -> Result<()> {
    let mut node = Node::start().await?;
    let pod = node.pod("limited", json!({"terminationGracePeriodSeconds": 1, "restartPolicy": "Never", "containers": [
        {"name": "main", "image": TEST_BUSYBOX_IMAGE, "command": ["sleep", "600"],
         "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
         "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "readOnlyRootFilesystem": true}},
        // Grows without bound: the kernel kills it at its limit.
        {"name": "hog", "image": TEST_BUSYBOX_IMAGE, "command": ["tail", "/dev/zero"],
         "resources": {"limits": {"memory": "16Mi"}}},
    ]}));
    node.manager.apply(pod.clone());
    let status = node
        .wait_status(&pod, "main running and the hog killed", LONG, |s| {
            is_running(s, "main")
                && container_status(s, "hog")
                    .and_then(|c| c.state.as_ref())
                    .and_then(|st| st.terminated.as_ref())
                    .is_some()
        })
        .await?;
    let hog = container_status(&status, "hog")
        .and_then(|c| c.state.clone())
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(hog.reason.as_deref(), Some("OOMKilled"), "{hog:?}");
    assert_eq!(
        node.exec(&pod, "main", &["id", "-u"]).await?.1.trim(),
        "1000"
    );
    assert_eq!(
        node.exec(&pod, "main", &["id", "-g"]).await?.1.trim(),
        "3000"
    );
    let (code, _) = node.exec(&pod, "main", &["touch", "/rootfs-write"]).await?;
    assert_ne!(code, 0, "the root filesystem is read-only");
    let (_, limit) = node
        .exec(&pod, "main", &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"])
        .await?;
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    let (_, quota) = node
        .exec(&pod, "main", &["sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"])
        .await?;
    assert_eq!(quota.trim(), "50000");
    node.shutdown().await;
    Ok(())
}
