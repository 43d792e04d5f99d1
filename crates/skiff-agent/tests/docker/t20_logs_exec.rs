//! Logs, exec and attach through the node API over real mutual TLS.

use std::time::Duration;

use anyhow::{Result, bail};
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use serde_json::json;
use skiff_agent::images::TEST_BUSYBOX_IMAGE;
use tokio_tungstenite::tungstenite::Message;

use crate::client::Socket;
use crate::harness::{LONG, Node, container_status, is_running, node_api};

/// Reads channel messages until the server closes: (stdout, stderr, status JSON).
async fn drain(socket: &mut Socket) -> Result<(String, String, serde_json::Value)> {
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), serde_json::Value::Null);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let message = match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(_))) | Ok(None) => break,
            Err(_) => bail!(
                "exec did not finish; stdout so far: {}",
                String::from_utf8_lossy(&out)
            ),
        };
        match message {
            Message::Binary(data) if !data.is_empty() => match data[0] {
                1 => out.extend_from_slice(&data[1..]),
                2 => err.extend_from_slice(&data[1..]),
                3 => status = serde_json::from_slice(&data[1..])?,
                _ => {}
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok((
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        status,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_exec_reports_exit_codes_and_streams_stdin() -> Result<()> {
    let mut node = Node::start().await?;
    let (_, api) = node_api(&node).await?;
    let pod = node.pod(
        "shell",
        json!({"terminationGracePeriodSeconds": 1,
        "containers": [
            {"name": "main", "image": TEST_BUSYBOX_IMAGE, "command": ["sleep", "600"]},
            {"name": "echo", "image": TEST_BUSYBOX_IMAGE, "stdin": true,
             "command": ["sh", "-c", "while read line; do echo got $line; done"]},
        ]}),
    );
    node.manager.apply(pod.clone());
    node.wait_status(&pod, "running", LONG, |s| {
        is_running(s, "main") && is_running(s, "echo")
    })
    .await?;

    let path = "/exec/default/shell/main?command=sh&command=-c&command=echo+out%3B+echo+err+%3E%262%3B+exit+3&stdout=true&stderr=true";
    let (mut socket, protocol) = api.websocket(path, "v5.channel.k8s.io").await?;
    assert_eq!(protocol, "v5.channel.k8s.io");
    let (out, err, status) = drain(&mut socket).await?;
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");

    // stdin, closed with the v5 close signal.
    let (mut socket, _) = api
        .websocket(
            "/exec/default/shell/main?command=cat&stdin=true&stdout=true",
            "v5.channel.k8s.io, v4.channel.k8s.io",
        )
        .await?;
    socket
        .send(Message::binary(b"\x00hello through stdin\n".to_vec()))
        .await?;
    socket.send(Message::binary(vec![255, 0])).await?;
    let (out, _, status) = drain(&mut socket).await?;
    assert_eq!(out, "hello through stdin\n");
    assert_eq!(status["status"], "Success");

    // v4 (kube-rs, Python): no close signal; the command ends by itself.
    let (mut socket, protocol) = api.websocket("/exec/default/shell/main?command=sh&command=-c&command=read+x%3B+echo+got+%24x&stdin=true&stdout=true", "v4.channel.k8s.io").await?;
    assert_eq!(protocol, "v4.channel.k8s.io");
    socket.send(Message::binary(b"\x00ping\n".to_vec())).await?;
    let (out, _, status) = drain(&mut socket).await?;
    assert_eq!(out, "got ping\n");
    assert_eq!(status["status"], "Success");

    // attach: the container's own stdin and stdout.
    let (mut socket, _) = api
        .websocket(
            "/attach/default/shell/echo?stdin=true&stdout=true&stderr=true",
            "v5.channel.k8s.io",
        )
        .await?;
    socket
        .send(Message::binary(b"\x00hello\n".to_vec()))
        .await?;
    let mut attached = String::new();
    while !attached.contains("got hello") {
        match tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) if data.first() == Some(&1) => {
                attached.push_str(&String::from_utf8_lossy(&data[1..]))
            }
            Ok(Some(Ok(_))) => {}
            other => bail!("attach ended early ({other:?}); got {attached:?}"),
        }
    }
    drop(socket);

    // The summary API reports the pod's containers.
    let (code, body) = api.get("/stats/summary").await?;
    assert_eq!(code, 200);
    let summary: serde_json::Value = serde_json::from_str(&body)?;
    let pods = summary["pods"].as_array().cloned().unwrap_or_default();
    let shell = pods
        .iter()
        .find(|p| p["podRef"]["name"] == "shell")
        .expect("the pod in the summary");
    assert_eq!(shell["containers"].as_array().map(|c| c.len()), Some(2));
    assert!(
        shell["memory"]["workingSetBytes"].as_u64().unwrap_or(0) > 0,
        "{shell}"
    );

    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t21_a_certificate_with_another_cn_is_forbidden() -> Result<()> {
    let node = Node::start().await?;
    let ca = crate::client::TestCa::new()?;
    let (cert, key) = ca.issue("system:node:test", &["localhost"])?;
    let tls = skiff_agent::node_api::tls::server_config(&cert, &key, &ca.cert_pem)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = std::sync::Arc::new(skiff_agent::node_api::State::new(
        &node.name,
        node.runtime.clone(),
        None,
    ));
    tokio::spawn(skiff_agent::node_api::serve(
        listener,
        tls,
        state,
        std::future::pending(),
    ));
    let intruder = crate::client::NodeApiClient::new(addr, &ca, "system:node:other")?;
    let (status, body) = intruder.get("/healthz").await?;
    assert_eq!(status, 403, "{body}");
    let apiserver =
        crate::client::NodeApiClient::new(addr, &ca, skiff_agent::node_api::API_SERVER_CN)?;
    assert_eq!(apiserver.get("/healthz").await?, (200, "ok".to_string()));
    let (status, metrics) = apiserver.get("/stats/summary").await?;
    assert_eq!(status, 200);
    let summary: serde_json::Value = serde_json::from_str(&metrics)?;
    assert_eq!(summary["node"]["nodeName"], node.name.as_str());

    // /metrics, with a runtime that records its Docker operations.
    let metrics = skiff_agent::metrics::Metrics::new()?;
    let runtime = std::sync::Arc::new(
        skiff_agent::runtime::docker::DockerRuntime::connect(None, Some(metrics.clone())).await?,
    );
    let (cert, key) = ca.issue("system:node:test", &["localhost"])?;
    let tls = skiff_agent::node_api::tls::server_config(&cert, &key, &ca.cert_pem)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = std::sync::Arc::new(skiff_agent::node_api::State::new(
        &node.name,
        runtime,
        Some(metrics),
    ));
    tokio::spawn(skiff_agent::node_api::serve(
        listener,
        tls,
        state,
        std::future::pending(),
    ));
    let client =
        crate::client::NodeApiClient::new(addr, &ca, skiff_agent::node_api::API_SERVER_CN)?;
    let (status, text) = client.get("/metrics").await?;
    assert_eq!(status, 200);
    for name in [
        "kubelet_running_pods",
        "kubelet_running_containers",
        "kubelet_docker_operations_duration_seconds_bucket{operation_type=\"list_containers\"",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t22_logs_follow_and_previous_after_a_crash() -> Result<()> {
    let mut node = Node::start().await?;
    let (_, api) = node_api(&node).await?;
    let pod = node.pod("chatty", json!({"terminationGracePeriodSeconds": 1, "containers": [{"name": "main", "image": TEST_BUSYBOX_IMAGE,
        "command": ["sh", "-c", "echo run-$(cat /proc/sys/kernel/random/uuid); i=0; while [ $i -lt 15 ]; do echo line $i; i=$((i+1)); sleep 0.2; done; exit 1"]}]}));
    node.manager.apply(pod.clone());
    node.wait_status(&pod, "running", LONG, |s| is_running(s, "main"))
        .await?;

    // Follow: lines arrive while the container runs.
    let response = api
        .request("/containerLogs/default/chatty/main?follow=true")
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    let mut body = response.into_body();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains("line 5") {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    seen.push_str(&String::from_utf8_lossy(data));
                }
            }
            _ => bail!("follow ended early; got {seen:?}"),
        }
    }
    let first_run = seen.lines().next().unwrap_or_default().to_string();
    assert!(first_run.starts_with("run-"), "{seen}");

    // After the crash and restart, `previous` shows the first run.
    node.wait_status(&pod, "a restart", LONG, |s| {
        container_status(s, "main")
            .map(|c| c.restart_count >= 1)
            .unwrap_or(false)
    })
    .await?;
    let (status, previous) = api
        .get("/containerLogs/default/chatty/main?previous=true")
        .await?;
    assert_eq!(status, 200);
    assert!(
        previous.starts_with(&first_run),
        "previous logs: {previous}"
    );
    assert!(previous.contains("line 14"));
    let (_, tail) = api
        .get("/containerLogs/default/chatty/main?previous=true&tailLines=2&timestamps=true")
        .await?;
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 2, "{tail}");
    assert!(
        lines[1].ends_with("line 14") && lines[1].contains('T') && lines[1].contains('Z'),
        "{tail}"
    );
    let (status, _) = api.get("/containerLogs/default/chatty/nope").await?;
    assert_eq!(status, 404);
    node.shutdown().await;
    Ok(())
}
