//! The gRPC services a member serves on its peer port: Raft, Admin and KV.
//!
//! Every call but `Admin.Join` requires a client certificate from the cluster CA carrying the
//! right role (see `tls`); `Join` is authenticated by the join token instead.

pub mod admin_service;
pub mod auth;
pub mod kv_service;
pub mod raft_service;

use tonic::transport::server::{Router, TcpIncoming};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::pb::kv::kv_server::KvServer;
use crate::pb::raft::admin_server::AdminServer;
use crate::pb::raft::raft_server::RaftServer;
use crate::peers::MAX_MESSAGE_BYTES;
use crate::store::Store;
use crate::tls::{Ca, Issued};

/// The peer port's router with TLS (client certificates optional at the handshake, checked per
/// call).
pub fn router(store: &Store, ca: &Ca, member: &Issued) -> Result<Router, tonic::transport::Error> {
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&member.cert_pem, &member.key_pem))
        .client_ca_root(Certificate::from_pem(&ca.cert_pem))
        .client_auth_optional(true);
    let raft = RaftServer::new(raft_service::RaftService {
        store: store.clone(),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let admin = AdminServer::new(admin_service::AdminService {
        store: store.clone(),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let kv = KvServer::new(kv_service::KvService {
        store: store.clone(),
    })
    .max_decoding_message_size(store.config().limits.max_request_bytes + (64 << 10))
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    Ok(Server::builder()
        .tls_config(tls)?
        // TCP_NODELAY is set by `incoming`: tonic ignores the builder's for our own listener.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .add_service(raft)
        .add_service(admin)
        .add_service(kv))
}

/// The peer port's accepted connections, with TCP_NODELAY. tonic applies its builder's
/// `tcp_nodelay` only to listeners it binds itself; without it on the accepted sockets, a reply
/// written in two pieces (an HTTP/2 DATA frame, then the trailers) waits for the peer's delayed
/// ACK: a fixed ~40 ms on about one forwarded write or read-index round in fifty.
pub fn incoming(listener: tokio::net::TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests;
