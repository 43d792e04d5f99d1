//! gRPC channels to the other members, by stable member id.
//!
//! Addresses come from the Raft membership (and from a member announcing a new address), never
//! from configuration, so a member that restarts elsewhere is found again. A channel is
//! replaced when its member's address changes. Channels connect lazily and multiplex every call.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::tls::{Issued, PEER_SERVER_NAME};
use crate::types::MemberId;

/// Largest message accepted on the peer protocol (AppendEntries batches can be large).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

#[derive(Clone)]
pub struct Peers {
    inner: Arc<RwLock<HashMap<MemberId, (String, Channel)>>>,
    tls: ClientTlsConfig,
    connect_timeout: Duration,
}

/// The TLS settings for calling members with this identity.
pub fn client_tls(ca_pem: &str, identity: Option<&Issued>) -> ClientTlsConfig {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(PEER_SERVER_NAME);
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    tls
}

/// A lazily connecting channel to `addr`.
pub fn channel(
    addr: &str,
    tls: &ClientTlsConfig,
    connect_timeout: Duration,
) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls.clone())?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

impl Peers {
    pub fn new(tls: ClientTlsConfig, connect_timeout: Duration) -> Self {
        Peers {
            inner: Arc::new(RwLock::new(HashMap::new())),
            tls,
            connect_timeout,
        }
    }

    /// Records a member's address, replacing its channel if the address changed.
    pub fn set_address(&self, id: MemberId, addr: &str) {
        if let Ok(guard) = self.inner.read()
            && guard.get(&id).is_some_and(|(a, _)| a == addr)
        {
            return;
        }
        match channel(addr, &self.tls, self.connect_timeout) {
            Ok(ch) => {
                if let Ok(mut guard) = self.inner.write() {
                    tracing::info!(member = id, addr, "peer address set");
                    guard.insert(id, (addr.to_string(), ch));
                }
            }
            Err(e) => tracing::warn!(member = id, addr, "invalid peer address: {e}"),
        }
    }

    pub fn forget(&self, id: MemberId) {
        if let Ok(mut guard) = self.inner.write() {
            guard.remove(&id);
        }
    }

    pub fn channel(&self, id: MemberId) -> Option<Channel> {
        self.inner.read().ok()?.get(&id).map(|(_, ch)| ch.clone())
    }

    pub fn address(&self, id: MemberId) -> Option<String> {
        self.inner.read().ok()?.get(&id).map(|(a, _)| a.clone())
    }

    /// A channel to an address that is not (yet) a known member.
    pub fn channel_to(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        channel(addr, &self.tls, self.connect_timeout)
    }
}
