//! The server side of the WebSocket opening handshake over hyper: check the request, pick a
//! subprotocol, answer 101, and hand the upgraded connection to tokio-tungstenite.

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::{Body, full};

pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.eq_ignore_ascii_case("websocket"))
        .unwrap_or(false)
}

pub fn offered_protocols(req: &Request<Incoming>) -> Vec<String> {
    req.headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

/// Answers the handshake with `protocol`; the socket arrives on the returned future.
pub fn accept(
    req: &mut Request<Incoming>,
    protocol: &str,
) -> Result<
    (
        Response<Body>,
        impl std::future::Future<Output = Option<Socket>> + use<>,
    ),
    Response<Body>,
> {
    let Some(key) = req.headers().get(http::header::SEC_WEBSOCKET_KEY).cloned() else {
        return Err(full(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key"));
    };
    let accept_key = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(req);
    let mut response = full(StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = response.headers_mut();
    headers.remove(http::header::CONTENT_TYPE);
    headers.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(&accept_key) {
        headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, value);
    }
    if let Ok(value) = HeaderValue::from_str(protocol) {
        headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    let socket = async move {
        match upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default();
                Some(
                    WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await,
                )
            }
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                None
            }
        }
    };
    Ok((response, socket))
}
