//! `/exec/...` and `/attach/...` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`):
//! stdin from channel 0 into the process, its stdout/stderr out on channels 1/2, terminal
//! resizes from channel 4, stdin closed by a v5 close message for channel 0, and the exit status
//! as a metav1.Status on channel 3 before the WebSocket closes.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use super::channels::{self, CLOSE, EXEC_PROTOCOLS, RESIZE, STATUS, STDERR, STDIN, STDOUT};
use super::{Body, State, find_container, flag, full, query, ws};
use crate::runtime::{ExecSpec, Output};

pub async fn serve(
    state: Arc<State>,
    mut req: Request<Incoming>,
    attach: bool,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    if !ws::is_upgrade(&req) {
        return full(
            StatusCode::BAD_REQUEST,
            "exec and attach need a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io)",
        );
    }
    let Some(protocol) = channels::negotiate(&ws::offered_protocols(&req), &EXEC_PROTOCOLS) else {
        return full(
            StatusCode::BAD_REQUEST,
            "no supported subprotocol offered (v5.channel.k8s.io, v4.channel.k8s.io)",
        );
    };
    let q = query(&req);
    let spec = ExecSpec {
        command: q.get("command").cloned().unwrap_or_default(),
        stdin: flag(&q, "stdin") || flag(&q, "input"),
        stdout: flag(&q, "stdout") || flag(&q, "output"),
        stderr: flag(&q, "stderr") || flag(&q, "error"),
        tty: flag(&q, "tty"),
    };
    if !attach && spec.command.is_empty() {
        return full(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        );
    }
    let target = match find_container(&state, ns, pod, container, false).await {
        Ok(c) if c.state.is_running() => c,
        Ok(_) => {
            return full(
                StatusCode::BAD_REQUEST,
                format!("container {container} is not running"),
            );
        }
        Err(response) => return response,
    };
    let (response, socket) = match ws::accept(&mut req, protocol) {
        Ok(pair) => pair,
        Err(response) => return response,
    };
    let v5 = protocol == channels::V5;
    tokio::spawn(async move {
        let Some(socket) = socket.await else { return };
        run(state, socket, target.id, spec, attach, v5).await;
    });
    response
}

async fn run(
    state: Arc<State>,
    socket: ws::Socket,
    container_id: String,
    spec: ExecSpec,
    attach: bool,
    v5: bool,
) {
    let (mut sink, mut source) = socket.split();
    let session = if attach {
        state.runtime.attach(&container_id, spec.stdin).await
    } else {
        state.runtime.exec(&container_id, &spec).await
    };
    let mut session = match session {
        Ok(s) => s,
        Err(e) => {
            let _ = sink
                .send(Message::binary(channels::encode(
                    STATUS,
                    &channels::error_status(&e.to_string()),
                )))
                .await;
            super::channels::close_normally(&mut sink).await;
            return;
        }
    };
    let exec_id = session.exec_id.clone();
    let mut input = Some(session.input);
    let runtime = state.runtime.clone();
    let tty = spec.tty;
    let resize_target = exec_id.clone();
    let resize_container = container_id.clone();
    // Client → process.
    let reader = tokio::spawn(async move {
        while let Some(message) = source.next().await {
            let data = match message {
                Ok(Message::Binary(data)) => data.to_vec(),
                Ok(Message::Text(text)) => text.as_bytes().to_vec(),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            match channels::decode(&data) {
                Some((STDIN, payload)) => {
                    if let Some(writer) = input.as_mut()
                        && (writer.write_all(payload).await.is_err()
                            || writer.flush().await.is_err())
                    {
                        input = None;
                    }
                }
                Some((RESIZE, payload)) if tty => {
                    if let Some((width, height)) = channels::parse_resize(payload) {
                        let _ = match &resize_target {
                            Some(exec_id) => runtime.resize_exec(exec_id, width, height).await,
                            None => {
                                runtime
                                    .resize_container(&resize_container, width, height)
                                    .await
                            }
                        };
                    }
                }
                Some((CLOSE, [STDIN])) if v5 => {
                    if let Some(mut writer) = input.take() {
                        let _ = writer.shutdown().await;
                    }
                }
                _ => {}
            }
        }
        if let Some(mut writer) = input.take() {
            let _ = writer.shutdown().await;
        }
    });
    // Process → client.
    let mut client_gone = false;
    while let Some(chunk) = session.output.next().await {
        let (channel, bytes) = match chunk {
            Ok(Output::Stdout(b)) => (STDOUT, b),
            Ok(Output::Stderr(b)) => (if tty { STDOUT } else { STDERR }, b),
            Err(_) => break,
        };
        if sink
            .send(Message::binary(channels::encode(channel, &bytes)))
            .await
            .is_err()
        {
            client_gone = true;
            break;
        }
    }
    if !client_gone {
        let status = match (&exec_id, attach) {
            (Some(exec_id), false) => {
                // The exit code is recorded a moment after the output ends.
                let mut code = None;
                for _ in 0..50 {
                    match state.runtime.exec_exit_code(exec_id).await {
                        Ok(Some(c)) => {
                            code = Some(c);
                            break;
                        }
                        Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                        Err(_) => break,
                    }
                }
                match code {
                    Some(code) => channels::exit_status(code, &spec.command),
                    None => channels::error_status("the exit code of the command is unknown"),
                }
            }
            _ => channels::exit_status(0, &[]),
        };
        let _ = sink
            .send(Message::binary(channels::encode(STATUS, &status)))
            .await;
        super::channels::close_normally(&mut sink).await;
    }
    reader.abort();
}
