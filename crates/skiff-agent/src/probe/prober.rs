//! Running one probe: exec through the container runtime, httpGet and tcpSocket from the host
//! to the pod's IP (the node reaches its pod network directly). Every failure is an
//! [`Outcome::Failure`] with a message; nothing here panics or waits past the probe's timeout.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Outcome;
use crate::runtime::{ContainerRuntime, exec_collect};

/// Resolves a probe's port (a number or the name of one of the container's ports).
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("port \"{name}\" not found in the container's ports"))
        }
    }
}

/// Parses the status code of an HTTP/1.x response head.
pub fn status_code(head: &[u8]) -> Option<u16> {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| e.to_string())?;
        let path = if path.is_empty() { "/" } else { path };
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for (name, value) in headers {
            if !name.contains(['\r', '\n', ':']) && !value.contains(['\r', '\n']) {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.contains(&b'\n') && head.len() < 8192 {
            let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        match status_code(&head) {
            Some(code) if (200..400).contains(&code) => Ok(()),
            Some(code) => Err(format!("HTTP probe failed with statuscode: {code}")),
            None => Err("malformed HTTP response".to_string()),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "Get \"http://{host}:{port}{path}\": context deadline exceeded"
            ))
        })
}

async fn tcp(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
        Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
    }
}

/// Runs `probe` once against the container `container_id` whose pod is at `pod_ip`.
pub async fn run(
    runtime: &dyn ContainerRuntime,
    probe: &Probe,
    container: &Container,
    container_id: &str,
    pod_ip: &str,
    timeout: Duration,
) -> (Outcome, String) {
    let result = if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        match exec_collect(runtime, container_id, &command, timeout, 4096).await {
            Ok((0, _)) => Ok(()),
            Ok((code, output)) => Err(format!(
                "command {command:?} exited with {code}: {}",
                String::from_utf8_lossy(&output).trim()
            )),
            Err(e) => Err(e.to_string()),
        }
    } else if let Some(get) = &probe.http_get {
        match resolve_port(&get.port, container) {
            Ok(port) => {
                if get.scheme.as_deref() == Some("HTTPS") {
                    // Kubernetes skips certificate verification; a plain TCP connect is the
                    // part of that check we can make without a TLS stack for probes.
                    tcp(get.host.as_deref().unwrap_or(pod_ip), port, timeout).await
                } else {
                    let headers: Vec<(String, String)> = get
                        .http_headers
                        .iter()
                        .flatten()
                        .map(|h| (h.name.clone(), h.value.clone()))
                        .collect();
                    http_get(
                        get.host
                            .as_deref()
                            .filter(|h| !h.is_empty())
                            .unwrap_or(pod_ip),
                        port,
                        get.path.as_deref().unwrap_or("/"),
                        &headers,
                        timeout,
                    )
                    .await
                }
            }
            Err(e) => Err(e),
        }
    } else if let Some(socket) = &probe.tcp_socket {
        match resolve_port(&socket.port, container) {
            Ok(port) => {
                tcp(
                    socket
                        .host
                        .as_deref()
                        .filter(|h| !h.is_empty())
                        .unwrap_or(pod_ip),
                    port,
                    timeout,
                )
                .await
            }
            Err(e) => Err(e),
        }
    } else {
        Err("unsupported probe handler (grpc probes are not supported)".to_string())
    };
    match result {
        Ok(()) => (Outcome::Success, String::new()),
        Err(message) => (Outcome::Failure, message),
    }
}
