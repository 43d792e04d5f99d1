//! Volumes on real containers: configMap and secret files (the secret on tmpfs, never on the
//! node's disk) that follow updates, and an emptyDir that outlives a container restart.

use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::json;
use skiff_agent::images::TEST_BUSYBOX_IMAGE;

use crate::harness::{LONG, Node, container_status, is_running};

async fn wait_exec(
    node: &Node,
    pod: &k8s_openapi::api::core::v1::Pod,
    command: &[&str],
    want: &str,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let (_, out) = node.exec(pod, "main", command).await?;
        if out == want {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{command:?} printed {out:?}, wanted {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_config_map_and_secret_volumes_appear_and_follow_updates() -> Result<()> {
    let mut node = Node::start().await?;
    let cm = |v: &str| -> Result<ConfigMap> {
        Ok(serde_json::from_value(
            json!({"metadata": {"name": "cfg"}, "data": {"greeting": v}}),
        )?)
    };
    let secret = |v: &str| -> Result<Secret> {
        Ok(serde_json::from_value(
            json!({"metadata": {"name": "creds"}, "stringData": {"password": v}}),
        )?)
    };
    node.objects
        .config_maps
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .insert("cfg".into(), cm("hello")?);
    node.objects
        .secrets
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .insert("creds".into(), secret("s3cr3t")?);
    let pod = node.pod("volumes", json!({
        "terminationGracePeriodSeconds": 1,
        "volumes": [
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
            {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
        ],
        "containers": [{"name": "main", "image": TEST_BUSYBOX_IMAGE, "command": ["sleep", "600"], "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/cfg"},
            {"name": "creds", "mountPath": "/etc/creds"},
            {"name": "token", "mountPath": "/var/run/secrets/tokens"},
        ]}],
    }));
    node.manager.apply(pod.clone());
    node.wait_status(&pod, "running", LONG, |s| is_running(s, "main"))
        .await?;
    assert_eq!(
        node.exec(&pod, "main", &["cat", "/etc/cfg/greeting"])
            .await?
            .1,
        "hello"
    );
    assert_eq!(
        node.exec(&pod, "main", &["cat", "/etc/creds/password"])
            .await?
            .1,
        "s3cr3t"
    );
    assert_eq!(
        node.exec(&pod, "main", &["cat", "/var/run/secrets/tokens/token"])
            .await?
            .1,
        "token-for-default-volumes"
    );
    let (_, mounts) = node.exec(&pod, "main", &["mount"]).await?;
    let secret_mount = mounts
        .lines()
        .find(|l| l.contains(" /etc/creds "))
        .unwrap_or_default();
    assert!(
        secret_mount.contains("type tmpfs") || secret_mount.starts_with("tmpfs "),
        "secret mount: {secret_mount:?}\n{mounts}"
    );
    assert!(secret_mount.contains("ro"), "read-only: {secret_mount}");
    let cfg_mount = mounts
        .lines()
        .find(|l| l.contains(" /etc/cfg "))
        .unwrap_or_default();
    assert!(
        !cfg_mount.starts_with("tmpfs"),
        "configMaps are on disk: {cfg_mount}"
    );
    let (_, mode) = node
        .exec(
            &pod,
            "main",
            &["stat", "-L", "-c", "%a", "/etc/creds/password"],
        )
        .await?;
    assert_eq!(mode.trim(), "400");
    // On the node: the secret directory is its own tmpfs mount.
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let secret_dir = node
        .data_dir
        .join("pods")
        .join(&uid)
        .join("volumes/secret/creds");
    assert!(
        skiff_agent::volumes::writer::mounts_under(&secret_dir).contains(&secret_dir),
        "{secret_dir:?} is not a mount point"
    );

    node.objects
        .config_maps
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .insert("cfg".into(), cm("updated")?);
    node.objects
        .secrets
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .insert("creds".into(), secret("rotated")?);
    node.manager.wake(&uid);
    wait_exec(&node, &pod, &["cat", "/etc/cfg/greeting"], "updated").await?;
    wait_exec(&node, &pod, &["cat", "/etc/creds/password"], "rotated").await?;
    let status = node.latest(&pod).unwrap_or_default();
    assert_eq!(
        container_status(&status, "main").map(|c| c.restart_count),
        Some(0),
        "updated in place, no restart"
    );
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t51_an_empty_dir_survives_a_container_restart() -> Result<()> {
    let mut node = Node::start().await?;
    let pod = node.pod("scratch", json!({
        "terminationGracePeriodSeconds": 1,
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "fast", "emptyDir": {"medium": "Memory"}}],
        "containers": [{"name": "main", "image": TEST_BUSYBOX_IMAGE, "command": ["sh", "-c",
            "if [ -f /data/marker ]; then echo found; sleep 600; else date > /data/marker; exit 1; fi"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "fast", "mountPath": "/fast"}]}],
    }));
    node.manager.apply(pod.clone());
    let status = node
        .wait_status(&pod, "running after a restart", LONG, |s| {
            is_running(s, "main")
                && container_status(s, "main")
                    .map(|c| c.restart_count == 1)
                    .unwrap_or(false)
        })
        .await?;
    assert!(container_status(&status, "main").is_some());
    let (_, mounts) = node.exec(&pod, "main", &["mount"]).await?;
    let fast = mounts
        .lines()
        .find(|l| l.contains(" /fast "))
        .unwrap_or_default();
    assert!(
        fast.starts_with("tmpfs"),
        "medium: Memory is a tmpfs: {fast:?}"
    );
    let (code, _) = node
        .exec(&pod, "main", &["test", "-f", "/data/marker"])
        .await?;
    assert_eq!(code, 0);
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t52_host_path_and_a_claim_bound_to_a_local_volume() -> Result<()> {
    let mut node = Node::start().await?;
    let host_dir = node.data_dir.join("host-share");
    let pv_dir = node.data_dir.join("local-pv");
    std::fs::create_dir_all(&pv_dir)?;
    std::fs::write(pv_dir.join("seed"), "from the volume")?;
    node.objects
        .claims
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .insert("data".into(), Some(pv_dir.to_string_lossy().into_owned()));
    let pod = node.pod("storage", json!({
        "terminationGracePeriodSeconds": 1,
        "volumes": [
            {"name": "host", "hostPath": {"path": host_dir.to_string_lossy(), "type": "DirectoryOrCreate"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        ],
        "containers": [{"name": "main", "image": TEST_BUSYBOX_IMAGE,
            "command": ["sh", "-c", "echo written > /host/out; cat /data/seed > /data/copy; sleep 600"],
            "volumeMounts": [{"name": "host", "mountPath": "/host"}, {"name": "data", "mountPath": "/data"}]}],
    }));
    node.manager.apply(pod.clone());
    node.wait_status(&pod, "running", LONG, |s| is_running(s, "main"))
        .await?;
    let deadline = tokio::time::Instant::now() + LONG;
    // The shell creates each file before writing it: wait for the contents, not the names.
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    loop {
        let (out, copy) = (read(host_dir.join("out")), read(pv_dir.join("copy")));
        if out == "written\n" && copy == "from the volume" {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the container's writes never reached the node: out={out:?} copy={copy:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A pod whose claim is not bound waits in ContainerCreating and says why.
    let pending = node.pod("pending", json!({
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "unbound"}}],
        "containers": [{"name": "main", "image": TEST_BUSYBOX_IMAGE, "command": ["sleep", "600"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
    }));
    node.objects
        .claims
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .insert("unbound".into(), None);
    node.manager.apply(pending.clone());
    let status = node
        .wait_status(&pending, "a mount failure", LONG, |s| {
            container_status(s, "main")
                .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
                .map(|m| m.contains("not bound"))
                .unwrap_or(false)
        })
        .await?;
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    node.shutdown().await;
    Ok(())
}
