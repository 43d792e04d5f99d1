//! Lifecycle hooks (postStart, preStop): exec in the container, httpGet/tcpSocket against the
//! pod, or sleep — run with the same machinery as probes, bounded by a deadline.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};

use crate::probe::{Outcome, prober};
use crate::runtime::ContainerRuntime;

/// Runs a hook; `Err` carries the failure message.
pub async fn run(
    runtime: &dyn ContainerRuntime,
    handler: &LifecycleHandler,
    container: &Container,
    container_id: &str,
    pod_ip: &str,
    deadline: Duration,
) -> Result<(), String> {
    if let Some(sleep) = &handler.sleep {
        let wanted = Duration::from_secs(sleep.seconds.max(0) as u64);
        tokio::time::sleep(wanted.min(deadline)).await;
        return Ok(());
    }
    let as_probe = Probe {
        exec: handler.exec.clone(),
        http_get: handler.http_get.clone(),
        tcp_socket: handler.tcp_socket.clone(),
        ..Default::default()
    };
    match prober::run(
        runtime,
        &as_probe,
        container,
        container_id,
        pod_ip,
        deadline,
    )
    .await
    {
        (Outcome::Success, _) => Ok(()),
        (Outcome::Failure, message) => Err(message),
    }
}
