//! Forwarding of names outside the cluster domain to the host's resolvers, with bounded
//! concurrency (excess queries get SERVFAIL at once rather than queueing without bound) and a
//! small TTL-respecting cache. The [`Cache`] is pure (instants are passed in); the
//! [`Forwarder`] does the UDP (and, for truncated answers, TCP) exchanges.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::RData;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("too many forwarded queries in flight")]
    Busy,
    #[error("no upstream resolver is configured")]
    NoUpstream,
    #[error("no upstream resolver answered: {0}")]
    Unanswered(String),
    #[error("malformed DNS message: {0}")]
    Malformed(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Negative answers without an SOA are cached this long.
const NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// The cache key: lowercase name, type and class of the question.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub name: String,
    pub kind: u16,
    pub class: u16,
}

impl Key {
    pub fn of(query: &Query) -> Key {
        Key {
            name: query.name().to_ascii().to_ascii_lowercase(),
            kind: u16::from(query.query_type()),
            class: u16::from(query.query_class()),
        }
    }
}

/// Answers by question, each until its TTL runs out. Pure: the caller passes `now`.
#[derive(Debug)]
pub struct Cache {
    capacity: usize,
    max_ttl: Duration,
    entries: HashMap<Key, (Message, Instant, Instant)>,
}

impl Cache {
    pub fn new(capacity: usize, max_ttl: Duration) -> Cache {
        Cache {
            capacity,
            max_ttl,
            entries: HashMap::new(),
        }
    }

    /// A cached answer with TTLs reduced by its age, or `None`.
    pub fn get(&mut self, key: &Key, now: Instant) -> Option<Message> {
        let (message, stored, expires) = self.entries.get(key)?;
        if now >= *expires {
            self.entries.remove(key);
            return None;
        }
        let age =
            u32::try_from(now.saturating_duration_since(*stored).as_secs()).unwrap_or(u32::MAX);
        let mut message = message.clone();
        for record in message
            .answers
            .iter_mut()
            .chain(message.authorities.iter_mut())
            .chain(message.additionals.iter_mut())
        {
            let ttl = record.ttl.saturating_sub(age);
            record.ttl = ttl;
        }
        Some(message)
    }

    /// Stores an answer (only NOERROR and NXDOMAIN ones) for its TTL.
    pub fn put(&mut self, key: Key, message: &Message, now: Instant) {
        let code = message.metadata.response_code;
        if code != ResponseCode::NoError && code != ResponseCode::NXDomain {
            return;
        }
        if message.metadata.truncation || self.capacity == 0 {
            return;
        }
        let ttl = cache_ttl(message).min(self.max_ttl);
        if ttl.is_zero() {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, _, expires)| *expires > now);
            if self.entries.len() >= self.capacity {
                // Still full: drop the entry closest to expiry.
                if let Some(victim) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, _, expires))| *expires)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&victim);
                }
            }
        }
        self.entries.insert(key, (message.clone(), now, now + ttl));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The smallest answer TTL; for answers without records, the SOA's negative TTL.
pub fn cache_ttl(message: &Message) -> Duration {
    if let Some(min) = message.answers.iter().map(|r| r.ttl).min() {
        return Duration::from_secs(u64::from(min));
    }
    for record in &message.authorities {
        if let RData::SOA(soa) = &record.data {
            return Duration::from_secs(u64::from(soa.minimum.min(record.ttl)));
        }
    }
    NEGATIVE_TTL
}

/// Sends questions to upstream resolvers.
#[derive(Debug, Clone)]
pub struct Forwarder {
    upstreams: Arc<Vec<SocketAddr>>,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
    cache: Arc<Mutex<Cache>>,
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>, config: &super::Config) -> Forwarder {
        Forwarder {
            upstreams: Arc::new(upstreams),
            timeout: config.upstream_timeout,
            in_flight: Arc::new(Semaphore::new(config.forward_concurrency.max(1))),
            cache: Arc::new(Mutex::new(Cache::new(
                config.cache_entries,
                config.cache_max_ttl,
            ))),
        }
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Answers `query` (one question) from the cache or an upstream; the returned message has
    /// the query's id. The flag says whether it came from the cache.
    pub async fn resolve(
        &self,
        query: &Query,
        recursion_desired: bool,
        id: u16,
    ) -> Result<(Message, bool)> {
        let key = Key::of(query);
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|mut c| c.get(&key, Instant::now()));
        if let Some(mut message) = cached {
            message.metadata.id = id;
            return Ok((message, true));
        }
        if self.upstreams.is_empty() {
            return Err(Error::NoUpstream);
        }
        let _permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Busy)?;
        let upstream_id: u16 = rand::random();
        let mut request = Message::new(upstream_id, MessageType::Query, OpCode::Query);
        request.metadata.recursion_desired = recursion_desired;
        request.queries.push(query.clone());
        let bytes = request
            .to_vec()
            .map_err(|e| Error::Malformed(e.to_string()))?;
        let mut failures = Vec::new();
        for upstream in self.upstreams.iter() {
            match self.exchange(*upstream, &bytes, upstream_id).await {
                Ok(mut message) => {
                    if let Ok(mut cache) = self.cache.lock() {
                        cache.put(key, &message, Instant::now());
                    }
                    message.metadata.id = id;
                    return Ok((message, false));
                }
                Err(e) => failures.push(format!("{upstream}: {e}")),
            }
        }
        Err(Error::Unanswered(failures.join("; ")))
    }

    async fn exchange(
        &self,
        upstream: SocketAddr,
        bytes: &[u8],
        id: u16,
    ) -> Result<Message, String> {
        let message = tokio::time::timeout(self.timeout, udp_exchange(upstream, bytes, id))
            .await
            .map_err(|_| "timed out".to_string())??;
        if !message.metadata.truncation {
            return Ok(message);
        }
        tokio::time::timeout(self.timeout, tcp_exchange(upstream, bytes, id))
            .await
            .map_err(|_| "timed out over TCP".to_string())?
    }
}

async fn udp_exchange(upstream: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, String> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(upstream).await.map_err(|e| e.to_string())?;
    socket.send(bytes).await.map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; 65_535];
    loop {
        let n = socket.recv(&mut buffer).await.map_err(|e| e.to_string())?;
        let Ok(message) = Message::from_vec(&buffer[..n]) else {
            continue;
        };
        if message.metadata.id == id && message.metadata.message_type == MessageType::Response {
            return Ok(message);
        }
    }
}

async fn tcp_exchange(upstream: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, String> {
    let mut stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    let length = u16::try_from(bytes.len()).map_err(|_| "query too large".to_string())?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.map_err(|e| e.to_string())?;
    let mut prefix = [0u8; 2];
    stream
        .read_exact(&mut prefix)
        .await
        .map_err(|e| e.to_string())?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    let message = Message::from_vec(&body).map_err(|e| e.to_string())?;
    if message.metadata.id != id {
        return Err("answer with a different id".into());
    }
    Ok(message)
}

#[cfg(test)]
mod tests;
