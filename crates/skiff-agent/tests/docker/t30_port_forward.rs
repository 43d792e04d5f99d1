//! Port-forward through the node API to busybox httpd: the WebSocket channel protocol
//! (kube-rs, Python) and SPDY/3.1 inside WebSocket (kubectl), each carrying a real HTTP request
//! to the pod's localhost.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Result, bail};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use skiff_agent::images::{HTTPD_INDEX, TEST_HTTPD_IMAGE};
use skiff_agent::node_api::spdy::{self, FLAG_FIN, Frame};
use tokio_tungstenite::tungstenite::Message;

use crate::client::Socket;
use crate::harness::{LONG, Node, is_running, node_api};

const REQUEST: &[u8] = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";

async fn web_pod(node: &mut Node) -> Result<k8s_openapi::api::core::v1::Pod> {
    let pod = node.pod("web", json!({"terminationGracePeriodSeconds": 1, "containers": [
        {"name": "web", "image": TEST_HTTPD_IMAGE},
        // Listens on the pod's loopback only: reachable only from inside the pod's namespace.
        {"name": "local", "image": TEST_HTTPD_IMAGE, "command": ["httpd", "-f", "-p", "127.0.0.1:8081", "-h", "/www"]},
    ]}));
    node.manager.apply(pod.clone());
    node.wait_status(&pod, "both servers running", LONG, |s| {
        is_running(s, "web") && is_running(s, "local")
    })
    .await?;
    Ok(pod)
}

async fn next_binary(socket: &mut Socket) -> Result<Option<Vec<u8>>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => return Ok(Some(data.to_vec())),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return Ok(None),
            Ok(Some(Ok(_))) => continue,
            Err(_) => bail!("no message within 20 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_port_forward_with_the_channel_protocol() -> Result<()> {
    let mut node = Node::start().await?;
    let (_, api) = node_api(&node).await?;
    web_pod(&mut node).await?;
    for port in [80u16, 8081] {
        let (mut socket, protocol) = api
            .websocket(
                &format!("/portForward/default/web?ports={port}"),
                "v5.channel.k8s.io, v4.channel.k8s.io",
            )
            .await?;
        assert_eq!(protocol, "v5.channel.k8s.io");
        let [lo, hi] = port.to_le_bytes();
        assert_eq!(next_binary(&mut socket).await?, Some(vec![0, lo, hi]));
        assert_eq!(next_binary(&mut socket).await?, Some(vec![1, lo, hi]));
        let mut message = vec![0u8];
        message.extend_from_slice(REQUEST);
        socket.send(Message::binary(message)).await?;
        let mut response = Vec::new();
        while let Some(data) = next_binary(&mut socket).await? {
            match data.split_first() {
                Some((0, payload)) => response.extend_from_slice(payload),
                Some((1, payload)) if !payload.is_empty() => {
                    bail!("error channel: {}", String::from_utf8_lossy(payload))
                }
                _ => {}
            }
            if String::from_utf8_lossy(&response).contains(HTTPD_INDEX.trim()) {
                break;
            }
        }
        let text = String::from_utf8_lossy(&response);
        assert!(
            text.starts_with("HTTP/1.") && text.contains(HTTPD_INDEX.trim()),
            "port {port}: {text}"
        );
    }
    node.shutdown().await;
    Ok(())
}

/// A minimal kubectl-style SPDY client over the WebSocket.
struct SpdyClient {
    socket: Socket,
    compressor: spdy::HeaderCompressor,
    decoder: spdy::Decoder,
}

impl SpdyClient {
    async fn send(&mut self, frame: Frame) -> Result<()> {
        let bytes = spdy::encode(&frame, &mut self.compressor)?;
        // Split frames across messages as a byte-stream tunnel may.
        let (a, b) = bytes.split_at(bytes.len() / 2);
        self.socket.send(Message::binary(a.to_vec())).await?;
        self.socket.send(Message::binary(b.to_vec())).await?;
        Ok(())
    }

    async fn next(&mut self) -> Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Some(frame));
            }
            match next_binary(&mut self.socket).await? {
                Some(data) => self.decoder.push(&data),
                None => return Ok(None),
            }
        }
    }

    fn headers(kind: &str, port: u16, request: u32) -> Vec<(String, String)> {
        vec![
            ("streamType".to_string(), kind.to_string()),
            ("port".to_string(), port.to_string()),
            ("requestID".to_string(), request.to_string()),
        ]
    }

    /// One forwarded HTTP request on streams (error, data); returns the response.
    async fn request(
        &mut self,
        port: u16,
        request: u32,
        error_stream: u32,
        data_stream: u32,
    ) -> Result<String> {
        self.send(Frame::SynStream {
            stream_id: error_stream,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: Self::headers("error", port, request),
        })
        .await?;
        // kubectl half-closes the error stream at once.
        self.send(Frame::Data {
            stream_id: error_stream,
            flags: FLAG_FIN,
            data: vec![],
        })
        .await?;
        self.send(Frame::SynStream {
            stream_id: data_stream,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: Self::headers("data", port, request),
        })
        .await?;
        self.send(Frame::Data {
            stream_id: data_stream,
            flags: 0,
            data: REQUEST.to_vec(),
        })
        .await?;
        self.send(Frame::Data {
            stream_id: data_stream,
            flags: FLAG_FIN,
            data: vec![],
        })
        .await?;
        let mut replies = Vec::new();
        let mut response = Vec::new();
        let mut errors = Vec::new();
        let mut finished: HashMap<u32, bool> = HashMap::new();
        while !(finished.get(&data_stream).copied().unwrap_or(false)
            && finished.get(&error_stream).copied().unwrap_or(false))
        {
            match self.next().await? {
                Some(Frame::SynReply { stream_id, .. }) => replies.push(stream_id),
                Some(Frame::Data {
                    stream_id,
                    flags,
                    data,
                }) => {
                    if stream_id == data_stream {
                        response.extend_from_slice(&data);
                    } else if stream_id == error_stream {
                        errors.extend_from_slice(&data);
                    }
                    if flags & FLAG_FIN != 0 {
                        finished.insert(stream_id, true);
                    }
                }
                Some(Frame::Ping { .. })
                | Some(Frame::Settings { .. })
                | Some(Frame::WindowUpdate { .. }) => {}
                Some(other) => bail!("unexpected frame {other:?}"),
                None => bail!(
                    "the session ended; response so far: {}",
                    String::from_utf8_lossy(&response)
                ),
            }
        }
        replies.sort();
        assert_eq!(
            replies,
            vec![error_stream, data_stream],
            "every stream gets a SYN_REPLY"
        );
        if !errors.is_empty() {
            bail!("error stream: {}", String::from_utf8_lossy(&errors));
        }
        // kubectl resets the streams when the local connection is done.
        self.send(Frame::RstStream {
            stream_id: data_stream,
            status: spdy::RST_CANCEL,
        })
        .await?;
        self.send(Frame::RstStream {
            stream_id: error_stream,
            status: spdy::RST_CANCEL,
        })
        .await?;
        Ok(String::from_utf8_lossy(&response).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t31_port_forward_with_spdy_inside_websocket() -> Result<()> {
    let mut node = Node::start().await?;
    let (_, api) = node_api(&node).await?;
    web_pod(&mut node).await?;
    let (socket, protocol) = api
        .websocket("/portForward/default/web", "SPDY/3.1+portforward.k8s.io")
        .await?;
    assert_eq!(protocol, "SPDY/3.1+portforward.k8s.io");
    let mut client = SpdyClient {
        socket,
        compressor: spdy::HeaderCompressor::new(),
        decoder: spdy::Decoder::new(),
    };
    client.send(Frame::Ping { id: 1 }).await?;
    assert_eq!(
        client.next().await?,
        Some(Frame::Ping { id: 1 }),
        "pings are answered"
    );
    // Several connections over one session, as kubectl multiplexes them.
    for (request, port) in [(0u32, 80u16), (1, 8081), (2, 80)] {
        let response = client
            .request(port, request, 1 + request * 4, 3 + request * 4)
            .await?;
        assert!(
            response.starts_with("HTTP/1.") && response.contains(HTTPD_INDEX.trim()),
            "port {port}: {response}"
        );
    }
    // A port nobody listens on: the error stream says so.
    let failed = client.request(9, 3, 13, 15).await;
    assert!(failed.is_err_and(|e| e.to_string().contains("error forwarding port 9")));
    node.shutdown().await;
    Ok(())
}
