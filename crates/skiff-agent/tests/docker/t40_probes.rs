//! Restarts and probes on real containers: CrashLoopBackOff with growing delays, liveness
//! failures restarting a container, readiness flipping the pod's Ready condition.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use skiff_agent::images::TEST_BUSYBOX_IMAGE;

use crate::harness::{LONG, Node, condition, container_status, is_running, waiting_reason};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t40_a_crash_looping_container_backs_off_longer_each_time() -> Result<()> {
    let mut node = Node::start().await?;
    let pod = node.pod("crasher", json!({"containers": [{"name": "main", "image": TEST_BUSYBOX_IMAGE, "command": ["sh", "-c", "exit 2"]}]}));
    node.manager.apply(pod.clone());
    node.wait_status(&pod, "back-off 20s", Duration::from_secs(120), |s| {
        container_status(s, "main")
            .and_then(|c| c.state.as_ref())
            .and_then(|st| st.waiting.as_ref())
            .and_then(|w| w.message.as_deref())
            .map(|m| m.starts_with("back-off 20s"))
            .unwrap_or(false)
    })
    .await?;
    let history = node.history(&pod);
    let messages: Vec<String> = history
        .iter()
        .filter_map(|s| {
            container_status(s, "main")?
                .state
                .as_ref()?
                .waiting
                .as_ref()?
                .message
                .clone()
        })
        .filter(|m| m.starts_with("back-off"))
        .collect();
    let first_10 = messages
        .iter()
        .position(|m| m.starts_with("back-off 10s"))
        .expect("a 10s back-off was reported");
    let first_20 = messages
        .iter()
        .position(|m| m.starts_with("back-off 20s"))
        .expect("then a 20s one");
    assert!(first_10 < first_20, "{messages:?}");
    let latest = node.latest(&pod).unwrap_or_default();
    assert_eq!(
        waiting_reason(&latest, "main").as_deref(),
        Some("CrashLoopBackOff")
    );
    let main = container_status(&latest, "main").expect("status");
    assert!(main.restart_count >= 2, "restarts: {}", main.restart_count);
    let last = main
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .expect("last termination");
    assert_eq!((last.exit_code, last.reason.as_deref()), (2, Some("Error")));
    assert_eq!(latest.phase.as_deref(), Some("Running"));
    // Only the newest two instances are kept.
    let containers = node
        .wait_containers(&pod, "old instances removed", LONG, |list| {
            list.iter()
                .filter(|c| c.identity.container_name == "main")
                .count()
                <= 2
        })
        .await?;
    assert!(
        containers
            .iter()
            .any(|c| c.identity.kind == skiff_agent::labels::Kind::Sandbox)
    );
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t41_a_failing_liveness_probe_restarts_the_container() -> Result<()> {
    let mut node = Node::start().await?;
    let pod = node.pod("sick", json!({"terminationGracePeriodSeconds": 1, "containers": [{
        "name": "main", "image": TEST_BUSYBOX_IMAGE,
        "command": ["sh", "-c", "touch /tmp/healthy; sleep 600"],
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 2},
    }]}));
    node.manager.apply(pod.clone());
    node.wait_status(&pod, "running", LONG, |s| is_running(s, "main"))
        .await?;
    let before = node.container(&pod, "main").await?;
    node.exec(&pod, "main", &["rm", "/tmp/healthy"]).await?;
    let status = node
        .wait_status(&pod, "a restart after the liveness failure", LONG, |s| {
            container_status(s, "main")
                .map(|c| c.restart_count >= 1)
                .unwrap_or(false)
                && is_running(s, "main")
        })
        .await?;
    let after = node.container(&pod, "main").await?;
    assert_ne!(before.id, after.id);
    let last = container_status(&status, "main")
        .and_then(|c| c.last_state.clone())
        .and_then(|l| l.terminated)
        .expect("terminated");
    assert_ne!(last.exit_code, 0, "killed by the agent");
    let reasons = node.event_reasons(&pod);
    for reason in ["Pulled", "Created", "Started", "Unhealthy", "Killing"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no {reason} event in {reasons:?}"
        );
    }
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t42_readiness_flips_the_ready_condition() -> Result<()> {
    let mut node = Node::start().await?;
    let pod = node.pod("flaky", json!({"terminationGracePeriodSeconds": 1, "containers": [{
        "name": "main", "image": TEST_BUSYBOX_IMAGE, "command": ["sleep", "600"],
        "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1, "failureThreshold": 1},
    }]}));
    node.manager.apply(pod.clone());
    let status = node
        .wait_status(&pod, "running", LONG, |s| is_running(s, "main"))
        .await?;
    assert_eq!(condition(&status, "Ready").as_deref(), Some("False"));
    node.exec(&pod, "main", &["touch", "/tmp/ready"]).await?;
    node.wait_status(&pod, "Ready", LONG, |s| {
        condition(s, "Ready").as_deref() == Some("True")
    })
    .await?;
    node.exec(&pod, "main", &["rm", "/tmp/ready"]).await?;
    let status = node
        .wait_status(&pod, "not Ready again", LONG, |s| {
            condition(s, "Ready").as_deref() == Some("False")
        })
        .await?;
    assert_eq!(
        container_status(&status, "main").map(|c| c.restart_count),
        Some(0),
        "readiness never restarts"
    );
    assert_eq!(
        condition(&status, "ContainersReady").as_deref(),
        Some("False")
    );
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t43_http_and_tcp_probes_and_a_post_start_hook() -> Result<()> {
    let mut node = Node::start().await?;
    let pod = node.pod("probed", json!({"terminationGracePeriodSeconds": 1, "containers": [
        {"name": "web", "image": skiff_agent::images::TEST_HTTPD_IMAGE,
         "ports": [{"name": "http", "containerPort": 80}],
         "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
         "livenessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1, "failureThreshold": 1},
         "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo started > /tmp/post-start"]}}}},
        {"name": "lost", "image": skiff_agent::images::TEST_HTTPD_IMAGE,
         "command": ["httpd", "-f", "-p", "8081", "-h", "/www"],
         "readinessProbe": {"httpGet": {"path": "/missing", "port": 8081}, "periodSeconds": 1}},
    ]}));
    node.manager.apply(pod.clone());
    let status = node
        .wait_status(&pod, "web ready", LONG, |s| {
            container_status(s, "web").map(|c| c.ready).unwrap_or(false)
        })
        .await?;
    let lost = container_status(&status, "lost").expect("lost");
    assert!(!lost.ready, "a 404 is not ready");
    assert!(is_running(&status, "lost"));
    assert_eq!(condition(&status, "Ready").as_deref(), Some("False"));
    assert_eq!(
        node.exec(&pod, "web", &["cat", "/tmp/post-start"]).await?.1,
        "started\n"
    );
    // The tcpSocket liveness probe (failureThreshold 1, every second) passed all along.
    assert_eq!(
        container_status(&status, "web").map(|c| c.restart_count),
        Some(0)
    );
    node.shutdown().await;
    Ok(())
}
