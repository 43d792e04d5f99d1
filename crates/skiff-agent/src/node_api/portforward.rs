//! `/portForward/{ns}/{pod}`: TCP connections to ports on the pod's localhost, tunnelled over
//! WebSocket in one of two framings.
//!
//! - Channel protocol (`v4`/`v5.channel.k8s.io`, `?ports=a,b`; kube-rs and Python): port i uses
//!   channel 2i for data and 2i+1 for errors, each opened by a 3-byte port prefix.
//! - SPDY/3.1 inside WebSocket (`SPDY/3.1+portforward.k8s.io`; kubectl): for each local
//!   connection the client opens an error stream and a data stream (SYN_STREAM with headers
//!   `streamtype`, `port`, `requestid`); the server replies to each (SYN_REPLY), connects when it
//!   has both, relays DATA frames both ways, half-closes with FIN, reports failures on the error
//!   stream and then finishes it.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::channels::{self, SPDY_PORT_FORWARD, V4, V5};
use super::spdy::{self, FLAG_FIN, Frame};
use super::{Body, State, find_sandbox, full, netns, query, ws};
use crate::runtime::ObservedContainer;

pub async fn serve(
    state: Arc<State>,
    mut req: Request<Incoming>,
    ns: &str,
    pod: &str,
) -> Response<Body> {
    if !ws::is_upgrade(&req) {
        return full(
            StatusCode::BAD_REQUEST,
            "port-forward needs a WebSocket upgrade",
        );
    }
    let Some(protocol) =
        channels::negotiate(&ws::offered_protocols(&req), &[SPDY_PORT_FORWARD, V5, V4])
    else {
        return full(StatusCode::BAD_REQUEST, "no supported subprotocol offered");
    };
    let sandbox = match find_sandbox(&state, ns, pod).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let ports = if protocol == SPDY_PORT_FORWARD {
        Vec::new()
    } else {
        let q = query(&req);
        let mut values = q.get("ports").cloned().unwrap_or_default();
        values.extend(q.get("port").cloned().unwrap_or_default());
        match channels::parse_ports(&values) {
            Ok(p) => p,
            Err(e) => return full(StatusCode::BAD_REQUEST, e),
        }
    };
    let (response, socket) = match ws::accept(&mut req, protocol) {
        Ok(pair) => pair,
        Err(response) => return response,
    };
    let spdy = protocol == SPDY_PORT_FORWARD;
    tokio::spawn(async move {
        let Some(socket) = socket.await else { return };
        if spdy {
            run_spdy(socket, sandbox).await;
        } else {
            run_channels(socket, sandbox, ports).await;
        }
    });
    response
}

/// Connects to `port` on the pod's localhost.
async fn connect(sandbox: &ObservedContainer, port: u16) -> Result<TcpStream, String> {
    match sandbox.pid {
        Some(pid) if sandbox.ip.is_some() => netns::connect_in_pod(pid, port).await,
        // A host-network sandbox has no address of its own: the pod's localhost is the host's.
        Some(_) | None if sandbox.ip.is_none() => netns::connect_on_host(port).await,
        _ => Err("the pod's sandbox has no process".to_string()),
    }
}

async fn run_channels(socket: ws::Socket, sandbox: ObservedContainer, ports: Vec<u16>) {
    let (mut sink, mut source) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let mut writers = HashMap::new();
    let mut pumps = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let data_channel = (2 * i) as u8;
        let error_channel = data_channel + 1;
        if sink
            .send(Message::binary(channels::port_prefix(data_channel, *port)))
            .await
            .is_err()
            || sink
                .send(Message::binary(channels::port_prefix(error_channel, *port)))
                .await
                .is_err()
        {
            return;
        }
        match connect(&sandbox, *port).await {
            Ok(stream) => {
                let (mut read, write) = stream.into_split();
                writers.insert(data_channel, write);
                let tx = out_tx.clone();
                pumps.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if tx
                                    .send(channels::encode(data_channel, &buf[..n]))
                                    .await
                                    .is_err()
                                {
                                    break;
                                }
                            }
                        }
                    }
                }));
            }
            Err(e) => {
                let message = format!("error forwarding port {port} to pod: {e}");
                let _ = out_tx
                    .send(channels::encode(error_channel, message.as_bytes()))
                    .await;
            }
        }
    }
    drop(out_tx);
    let aborts: Vec<_> = pumps.iter().map(|p| p.abort_handle()).collect();
    let all_pumps = futures::future::join_all(pumps);
    tokio::pin!(all_pumps);
    let mut pumps_done = false;
    loop {
        tokio::select! {
            outgoing = out_rx.recv() => match outgoing {
                Some(bytes) => {
                    if sink.send(Message::binary(bytes)).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            incoming = source.next() => match incoming {
                Some(Ok(Message::Binary(data))) => {
                    if let Some((channel, payload)) = channels::decode(&data)
                        && let Some(writer) = writers.get_mut(&channel)
                            && writer.write_all(payload).await.is_err() {
                                writers.remove(&channel);
                            }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = &mut all_pumps, if !pumps_done => {
                pumps_done = true;
            }
        }
    }
    for pump in aborts {
        pump.abort();
    }
    super::channels::close_normally(&mut sink).await;
}

/// One forwarded connection of the SPDY protocol (a pair of streams).
#[derive(Default)]
struct Pair {
    port: Option<u16>,
    error_stream: Option<u32>,
    data_stream: Option<u32>,
    started: bool,
}

enum Out {
    Frame(Frame),
}

async fn run_spdy(socket: ws::Socket, sandbox: ObservedContainer) {
    let (mut sink, mut source) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(256);
    // The single writer owns the header compressor (one context per direction).
    let writer = tokio::spawn(async move {
        let mut compressor = spdy::HeaderCompressor::new();
        while let Some(Out::Frame(frame)) = out_rx.recv().await {
            let Ok(bytes) = spdy::encode(&frame, &mut compressor) else {
                break;
            };
            if sink.send(Message::binary(bytes)).await.is_err() {
                break;
            }
        }
        super::channels::close_normally(&mut sink).await;
    });
    let mut decoder = spdy::Decoder::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    // Data stream id → writer into the pod connection.
    let mut to_pod: HashMap<u32, mpsc::Sender<Option<Vec<u8>>>> = HashMap::new();
    let mut forwards = tokio::task::JoinSet::new();
    'session: while let Some(message) = source.next().await {
        let data = match message {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        decoder.push(&data);
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "port-forward: bad SPDY input");
                    break 'session;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    let reply = Frame::SynReply {
                        stream_id,
                        flags: 0,
                        headers: vec![],
                    };
                    if out_tx.send(Out::Frame(reply)).await.is_err() {
                        break 'session;
                    }
                    let kind = spdy::header(&headers, "streamtype")
                        .unwrap_or("")
                        .to_string();
                    let port = spdy::header(&headers, "port").and_then(|p| p.parse::<u16>().ok());
                    // Old clients send no request id: pair by stream ids (error n, data n+2).
                    let request = spdy::header(&headers, "requestid")
                        .map(str::to_string)
                        .unwrap_or_else(|| {
                            if kind == "data" {
                                stream_id.saturating_sub(2).to_string()
                            } else {
                                stream_id.to_string()
                            }
                        });
                    let pair = pairs.entry(request.clone()).or_default();
                    if port.is_some() {
                        pair.port = port;
                    }
                    match kind.as_str() {
                        "error" => pair.error_stream = Some(stream_id),
                        "data" => pair.data_stream = Some(stream_id),
                        _ => {
                            let _ = out_tx
                                .send(Out::Frame(Frame::RstStream {
                                    stream_id,
                                    status: spdy::RST_PROTOCOL_ERROR,
                                }))
                                .await;
                            continue;
                        }
                    }
                    if let (Some(error_stream), Some(data_stream), false) =
                        (pair.error_stream, pair.data_stream, pair.started)
                    {
                        pair.started = true;
                        let port = pair.port;
                        let (tx, rx) = mpsc::channel(64);
                        to_pod.insert(data_stream, tx);
                        forwards.spawn(forward(
                            sandbox.clone(),
                            port,
                            error_stream,
                            data_stream,
                            rx,
                            out_tx.clone(),
                        ));
                    }
                }
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => {
                    if let Some(tx) = to_pod.get(&stream_id) {
                        if !data.is_empty() && tx.send(Some(data)).await.is_err() {
                            to_pod.remove(&stream_id);
                        }
                        if flags & FLAG_FIN != 0
                            && let Some(tx) = to_pod.remove(&stream_id)
                        {
                            let _ = tx.send(None).await;
                        }
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    // Dropping the sender ends the pod connection's write side.
                    to_pod.remove(&stream_id);
                }
                Frame::Ping { id } => {
                    let _ = out_tx.send(Out::Frame(Frame::Ping { id })).await;
                }
                Frame::GoAway { .. } => break 'session,
                Frame::SynReply { .. }
                | Frame::Headers { .. }
                | Frame::Settings { .. }
                | Frame::WindowUpdate { .. }
                | Frame::Unknown { .. } => {}
            }
        }
    }
    drop(to_pod);
    drop(out_tx);
    // The session is over: connections still open towards the pod go with it.
    forwards.shutdown().await;
    let _ = writer.await;
}

/// Relays one connection between the pod and the data stream; reports failures on the error
/// stream, then finishes both streams.
async fn forward(
    sandbox: ObservedContainer,
    port: Option<u16>,
    error_stream: u32,
    data_stream: u32,
    mut from_client: mpsc::Receiver<Option<Vec<u8>>>,
    out: mpsc::Sender<Out>,
) {
    let send = |frame: Frame| {
        let out = out.clone();
        async move { out.send(Out::Frame(frame)).await.is_ok() }
    };
    let fin = |stream_id: u32| Frame::Data {
        stream_id,
        flags: FLAG_FIN,
        data: vec![],
    };
    let result = match port {
        None => Err("invalid or missing port header".to_string()),
        Some(port) => connect(&sandbox, port).await.map(|s| (s, port)),
    };
    let (stream, port) = match result {
        Ok(pair) => pair,
        Err(e) => {
            let message = format!(
                "error forwarding port {} to pod {}: {e}",
                port.unwrap_or(0),
                sandbox.identity.pod_name
            );
            send(Frame::Data {
                stream_id: error_stream,
                flags: 0,
                data: message.into_bytes(),
            })
            .await;
            send(fin(error_stream)).await;
            send(fin(data_stream)).await;
            return;
        }
    };
    let (mut read, mut write) = stream.into_split();
    // Client → pod runs on its own: it ends with the client's FIN (or the session).
    tokio::spawn(async move {
        while let Some(chunk) = from_client.recv().await {
            match chunk {
                Some(bytes) => {
                    if write.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                None => break,
            }
        }
        let _ = write.shutdown().await;
    });
    // Pod → client decides the end, as the kubelet's forwarder does: once the pod side closes,
    // both streams are finished, so a client waiting for the error stream is never stuck
    // behind an idle local connection.
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    if !send(Frame::Data {
                        stream_id: data_stream,
                        flags: 0,
                        data: buf[..n].to_vec(),
                    })
                    .await
                    {
                        return;
                    }
                }
                Err(e) => {
                    let message = format!("error reading from port {port}: {e}");
                    send(Frame::Data {
                        stream_id: error_stream,
                        flags: 0,
                        data: message.into_bytes(),
                    })
                    .await;
                    break;
                }
            }
        }
        send(fin(data_stream)).await;
    };
    downstream.await;
    send(fin(error_stream)).await;
}
