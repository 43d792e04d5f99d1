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
    let mut node = Node::start().await?;
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

/// A stand-in for the engine's socket that can go away and come back: a Unix-socket relay to
/// the real Docker socket.
struct EngineSocket {
    path: std::path::PathBuf,
    tasks: tokio::task::JoinSet<()>,
}

impl EngineSocket {
    fn up(path: &std::path::Path) -> Result<EngineSocket> {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path)?;
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut engine) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
            }
        });
        Ok(EngineSocket {
            path: path.to_path_buf(),
            tasks,
        })
    }

    /// Every connection dropped, the socket gone: what clients see while Docker restarts.
    async fn down(mut self) {
        self.tasks.shutdown().await;
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t61_the_agent_survives_the_engine_going_away() -> Result<()> {
    let node = Node::start().await?;
    let socket_path = node.data_dir.join("engine.sock");
    let engine = EngineSocket::up(&socket_path)?;
    let runtime = std::sync::Arc::new(
        skiff_agent::runtime::docker::DockerRuntime::connect(
            Some(&format!("unix://{}", socket_path.display())),
            None,
        )
        .await?,
    );
    let mut deps = node.deps.clone();
    deps.runtime = runtime.clone();
    let mut manager = PodManager::new(deps);
    let pod = node.pod("steady", json!({"terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": TEST_BUSYBOX_IMAGE, "command": ["sleep", "600"]}]}));
    manager.apply(pod.clone());
    node.wait_status(&pod, "running", LONG, |s| is_running(s, "main"))
        .await?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let before = node
        .runtime
        .list_containers(&[("io.skiff.pod.uid", uid.as_str())])
        .await?;
    let mut events = runtime.events(&node.name);

    engine.down().await;
    let outage = runtime
        .list_containers(&[("io.skiff.pod.uid", uid.as_str())])
        .await;
    assert!(
        matches!(outage, Err(skiff_agent::runtime::Error::Unavailable(_))),
        "{outage:?}"
    );
    // The event stream ends with the engine; subscribers start a new one.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match futures::StreamExt::next(&mut events).await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the event stream did not end");
    let written = node.history(&pod).len();

    let _engine = EngineSocket::up(&socket_path)?;
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        if runtime
            .list_containers(&[("io.skiff.pod.uid", uid.as_str())])
            .await
            .is_ok()
        {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the runtime never reconnected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The worker carries on against the engine that came back, without duplicating anything.
    manager.wake(&uid);
    let after = node
        .wait_containers(&pod, "the same containers", LONG, |list| {
            list.len() == before.len()
        })
        .await?;
    let ids = |list: &[skiff_agent::runtime::ObservedContainer]| {
        let mut v: Vec<String> = list.iter().map(|c| c.id.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&before), ids(&after));
    let status = node
        .wait_status(&pod, "still running", LONG, |s| is_running(s, "main"))
        .await?;
    assert_eq!(
        container_status(&status, "main").map(|c| c.restart_count),
        Some(0)
    );
    assert!(node.history(&pod).len() >= written);
    manager.shutdown().await;
    Ok(())
}
