//! The cluster DNS server: a hickory-server [`RequestHandler`] that answers the cluster domain
//! from the current [`DnsModel`] (swapped through a watch channel on every change) and forwards
//! every other name through the [`Forwarder`].
//!
//! Answers in the cluster domain are authoritative; negative ones carry the zone's SOA so
//! resolvers cache them for the record TTL. Anything but a standard query gets NOTIMP.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use super::forward::Forwarder;
use super::model::{Answer, DnsModel, QueryKind, RecordData};
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the DNS server stopped: {0}")]
    Stopped(String),
}

/// Answers queries; cheap to share.
pub struct Handler {
    model: watch::Receiver<Arc<DnsModel>>,
    forwarder: Forwarder,
    ttl: u32,
    metrics: Option<Metrics>,
}

impl Handler {
    pub fn new(
        model: watch::Receiver<Arc<DnsModel>>,
        forwarder: Forwarder,
        ttl: u32,
        metrics: Option<Metrics>,
    ) -> Handler {
        Handler {
            model,
            forwarder,
            ttl,
            metrics,
        }
    }

    fn count(&self, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.dns_query(outcome);
        }
    }
}

fn kind_of(record_type: RecordType) -> QueryKind {
    match record_type {
        RecordType::A => QueryKind::A,
        RecordType::AAAA => QueryKind::Aaaa,
        RecordType::SRV => QueryKind::Srv,
        RecordType::CNAME => QueryKind::Cname,
        RecordType::ANY => QueryKind::Any,
        _ => QueryKind::Other,
    }
}

fn to_name(name: &str) -> Option<Name> {
    Name::from_str(&format!("{name}.")).ok()
}

fn to_record(owner: &Name, ttl: u32, data: &RecordData) -> Option<Record> {
    let rdata = match data {
        RecordData::A(ip) => RData::A(A(*ip)),
        RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        RecordData::Cname(target) => RData::CNAME(CNAME(to_name(target)?)),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, to_name(target)?)),
    };
    Some(Record::from_rdata(owner.clone(), ttl, rdata))
}

fn soa(domain: &str, ttl: u32) -> Option<Record> {
    let zone = to_name(domain)?;
    let data = SOA::new(
        to_name(&format!("ns.dns.{domain}"))?,
        to_name(&format!("hostmaster.{domain}"))?,
        1,
        7200,
        1800,
        86400,
        ttl,
    );
    Some(Record::from_rdata(zone, ttl, RData::SOA(data)))
}

async fn send_error<R: ResponseHandler>(
    request: &Request,
    mut response: R,
    code: ResponseCode,
) -> ResponseInfo {
    let builder = MessageResponseBuilder::from_message_request(request);
    let message = builder.error_msg(&request.metadata, code);
    match response.send_response(message).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "cannot send a DNS error response");
            failed(request)
        }
    }
}

fn failed(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    hickory_proto::op::Header {
        metadata,
        counts: Default::default(),
    }
    .into()
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: hickory_server::net::runtime::Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        if request.metadata.op_code != OpCode::Query {
            self.count("refused");
            return send_error(request, response, ResponseCode::NotImp).await;
        }
        let Ok(info) = request.request_info() else {
            self.count("refused");
            return send_error(request, response, ResponseCode::FormErr).await;
        };
        let query = info.query.original().clone();
        let name = query.name().to_ascii();
        let model = self.model.borrow().clone();
        let answer = model.answer(&name, kind_of(query.query_type()));
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        let builder = MessageResponseBuilder::from_message_request(request);
        match answer {
            Answer::Records(records) => {
                self.count("cluster");
                metadata.authoritative = true;
                let owner = query.name().clone();
                let answers: Vec<Record> = records
                    .iter()
                    .filter_map(|r| to_record(&owner, self.ttl, r))
                    .collect();
                let soa: Vec<Record> = if answers.is_empty() {
                    soa(model.domain(), self.ttl).into_iter().collect()
                } else {
                    Vec::new()
                };
                let message = builder.build(metadata, answers.iter(), soa.iter(), [], []);
                response
                    .send_response(message)
                    .await
                    .unwrap_or_else(|_| failed(request))
            }
            Answer::NxDomain => {
                self.count("nxdomain");
                metadata.authoritative = true;
                metadata.response_code = ResponseCode::NXDomain;
                let soa: Vec<Record> = soa(model.domain(), self.ttl).into_iter().collect();
                let message = builder.build(metadata, [], soa.iter(), [], []);
                response
                    .send_response(message)
                    .await
                    .unwrap_or_else(|_| failed(request))
            }
            Answer::NotOurs => {
                match self
                    .forwarder
                    .resolve(
                        &query,
                        request.metadata.recursion_desired,
                        request.metadata.id,
                    )
                    .await
                {
                    Ok((upstream, cached)) => {
                        self.count(if cached { "cached" } else { "forwarded" });
                        metadata.response_code = upstream.metadata.response_code;
                        metadata.authoritative = false;
                        let message = builder.build(
                            metadata,
                            upstream.answers.iter(),
                            upstream.authorities.iter(),
                            [],
                            upstream.additionals.iter(),
                        );
                        response
                            .send_response(message)
                            .await
                            .unwrap_or_else(|_| failed(request))
                    }
                    Err(e) => {
                        self.count("servfail");
                        tracing::debug!(error = %e, name = %name, "forwarding failed");
                        send_error(request, response, ResponseCode::ServFail).await
                    }
                }
            }
        }
    }
}

/// Serves DNS on an already-bound UDP socket and TCP listener until `shutdown` resolves.
pub async fn serve(
    handler: Handler,
    udp: UdpSocket,
    tcp: Option<TcpListener>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let mut server = Server::new(handler);
    server.register_socket(udp);
    if let Some(tcp) = tcp {
        server.register_listener(tcp, Duration::from_secs(10), 64);
    }
    let token = server.shutdown_token().clone();
    tokio::select! {
        result = server.block_until_done() => result.map_err(|e| Error::Stopped(e.to_string())),
        _ = shutdown => {
            token.cancel();
            server.block_until_done().await.map_err(|e| Error::Stopped(e.to_string()))
        }
    }
}

/// Upstream resolvers for forwarding: the host's nameservers on port 53, without `exclude`
/// (the cluster DNS address itself, which would loop).
pub fn upstreams(
    host: &skiff_core::resolv_conf::HostResolvConf,
    exclude: &[std::net::IpAddr],
) -> Vec<SocketAddr> {
    host.nameservers
        .iter()
        .filter(|ip| !exclude.contains(ip))
        .map(|ip| SocketAddr::new(*ip, 53))
        .collect()
}
