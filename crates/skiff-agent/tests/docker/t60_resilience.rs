//! The agent restarting: running containers are re-adopted untouched (same ids, same start
//! times, nothing duplicated), and containers of pods that disappeared meanwhile are removed.

use std::collections::HashSet;

use anyhow::Result;
use serde_json::json;
use skiff_agent::images::TEST_BUSYBOX_IMAGE;
use skiff_agent::pods::PodManager;
use skiff_agent::runtime::{ContainerRuntime, ContainerState};

use crate::harness::{LONG, Node, container_status, is_running};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_a_restarted_agent_readopts_running_containers() -> Result<()> {
    let (mut node, _guard) = Node::start().await?;
    let keep = node.pod("keep", json!({"terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": TEST_BUSYBOX_IMAGE, "command": ["sleep", "600"]}]}));
    let doomed = node.pod("doomed", json!({"terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": TEST_BUSYBOX_IMAGE, "command": ["sleep", "600"]}]}));
    node.manager.apply(keep.clone());
    node.manager.apply(doomed.clone());
    node.wait_status(&keep, "keep running", LONG, |s| is_running(s, "main"))
        .await?;
    node.wait_status(&doomed, "doomed running", LONG, |s| is_running(s, "main"))
        .await?;
    let keep_uid = keep.metadata.uid.clone().unwrap_or_default();
    let before = node
        .runtime
        .list_containers(&[("io.skiff.pod.uid", keep_uid.as_str())])
        .await?;
    assert_eq!(before.len(), 2, "a sandbox and the app container");

    // The agent stops (its workers end; containers stay), then starts again knowing only `keep`:
    // `doomed` was deleted while it was down.
    node.shutdown().await;
    let written_before = node.history(&keep).len();
    let mut restarted = PodManager::new(node.deps.clone());
    let known: HashSet<String> = [keep_uid.clone()].into();
    restarted.apply(keep.clone());
    let collected = restarted.collect_orphans(&known).await?;
    assert_eq!(collected, 1, "one orphaned pod");
    node.wait_containers(
        &doomed,
        "the deleted pod's containers removed",
        LONG,
        |list| list.is_empty(),
    )
    .await?;

    let deadline = tokio::time::Instant::now() + LONG;
    while node.history(&keep).len() <= written_before {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the restarted agent wrote no status"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = node.latest(&keep).unwrap_or_default();
    assert!(is_running(&status, "main"));
    let after = node
        .runtime
        .list_containers(&[("io.skiff.pod.uid", keep_uid.as_str())])
        .await?;
    let started = |list: &[skiff_agent::runtime::ObservedContainer]| {
        let mut v: Vec<(String, String)> = list
            .iter()
            .map(|c| {
                let at = match &c.state {
                    ContainerState::Running { started_at } => started_at.to_string(),
                    other => format!("{other:?}"),
                };
                (c.id.clone(), at)
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        started(&before),
        started(&after),
        "the same containers, never restarted"
    );
    assert_eq!(
        container_status(&status, "main").map(|c| c.restart_count),
        Some(0)
    );
    restarted.shutdown().await;
    Ok(())
}
