//! The Kubernetes WebSocket channel protocols (`v4.channel.k8s.io`, `v5.channel.k8s.io`): every
//! binary message starts with a channel byte. exec/attach: 0 stdin, 1 stdout, 2 stderr,
//! 3 status (a metav1.Status JSON), 4 resize; v5 adds 255 "close this channel". port-forward:
//! channel 2i carries port i's data and 2i+1 its errors, each opened by the port number
//! (little-endian u16). Pure encoding and decoding, plus the status documents.

use serde_json::json;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const STATUS: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";
pub const SPDY_PORT_FORWARD: &str = "SPDY/3.1+portforward.k8s.io";

/// The subprotocols this server speaks for exec and attach, best first.
pub const EXEC_PROTOCOLS: [&str; 2] = [V5, V4];

/// Picks the best protocol the client offered (`Sec-WebSocket-Protocol` values, each possibly a
/// comma-separated list).
pub fn negotiate<'a>(offered: &[String], supported: &[&'a str]) -> Option<&'a str> {
    let offered: Vec<&str> = offered
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect();
    supported.iter().copied().find(|s| offered.contains(s))
}

pub fn encode(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(channel);
    out.extend_from_slice(data);
    out
}

/// `(channel, payload)`; `None` for an empty message.
pub fn decode(message: &[u8]) -> Option<(u8, &[u8])> {
    let (first, rest) = message.split_first()?;
    Some((*first, rest))
}

/// A terminal size from a resize message (`{"Width":80,"Height":24}`).
pub fn parse_resize(payload: &[u8]) -> Option<(u16, u16)> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let width = u16::try_from(value.get("Width")?.as_u64()?).ok()?;
    let height = u16::try_from(value.get("Height")?.as_u64()?).ok()?;
    Some((width, height))
}

/// The status sent on channel 3 when a command ends with `exit_code`.
pub fn exit_status(exit_code: i64, command: &[String]) -> Vec<u8> {
    let value = if exit_code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {exit_code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": exit_code.to_string()}]},
        })
    };
    value.to_string().into_bytes()
}

/// The status sent on channel 3 when the command could not run at all.
pub fn error_status(message: &str) -> Vec<u8> {
    json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500})
        .to_string()
        .into_bytes()
}

/// The first message of a port-forward channel: the channel and the port, little-endian.
pub fn port_prefix(channel: u8, port: u16) -> Vec<u8> {
    let [lo, hi] = port.to_le_bytes();
    vec![channel, lo, hi]
}

/// Parses `?ports=80,8080` (also repeated `ports` parameters).
pub fn parse_ports(values: &[String]) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for value in values {
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => return Err(format!("invalid port \"{part}\"")),
            }
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    if ports.len() > 64 {
        return Err("too many ports".into());
    }
    Ok(ports)
}

#[cfg(test)]
mod tests;

/// Ends a WebSocket with a Normal (1000) close frame: clients (kubectl's gorilla/websocket)
/// treat a close without a status code (1005) as an error and lose the exit status.
pub async fn close_normally<S>(sink: &mut S)
where
    S: futures::Sink<tokio_tungstenite::tungstenite::Message> + Unpin,
{
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = sink
        .send(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))
        .await;
    let _ = sink.close().await;
}
