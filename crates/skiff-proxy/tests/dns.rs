//! Real DNS queries over UDP and TCP against the cluster DNS server on loopback ports, with a
//! second server instance standing in for the host's upstream resolver.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use skiff_proxy::dns::forward::Forwarder;
use skiff_proxy::dns::model::DnsModel;
use skiff_proxy::dns::{Config, server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

struct Running {
    udp: SocketAddr,
    tcp: SocketAddr,
    model: watch::Sender<Arc<DnsModel>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn start(domain: &str, model: DnsModel, upstreams: Vec<SocketAddr>) -> Result<Running> {
    let udp = UdpSocket::bind("127.0.0.1:0").await?;
    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let (udp_addr, tcp_addr) = (udp.local_addr()?, tcp.local_addr()?);
    let (model_tx, model_rx) = watch::channel(Arc::new(model));
    let config = Config {
        domain: domain.into(),
        upstream_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let handler = server::Handler::new(
        model_rx,
        Forwarder::new(upstreams, &config),
        config.ttl,
        None,
    );
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let _ = server::serve(handler, udp, Some(tcp), async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        })
        .await;
    });
    Ok(Running {
        udp: udp_addr,
        tcp: tcp_addr,
        model: model_tx,
        stop: stop_tx,
        task,
    })
}

fn query(name: &str, kind: RecordType) -> Result<(u16, Vec<u8>)> {
    let id: u16 = rand::random();
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message
        .queries
        .push(Query::query(Name::from_str(name)?, kind));
    Ok((id, message.to_vec()?))
}

async fn ask_udp(server: SocketAddr, name: &str, kind: RecordType) -> Result<Message> {
    let (id, bytes) = query(name, kind)?;
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.send_to(&bytes, server).await?;
    let mut buffer = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buffer))
        .await
        .context("no DNS answer within 3 s")??;
    let answer = Message::from_vec(&buffer[..n])?;
    if answer.metadata.id != id {
        bail!("answer id {} for query {id}", answer.metadata.id);
    }
    Ok(answer)
}

async fn ask_tcp(server: SocketAddr, name: &str, kind: RecordType) -> Result<Message> {
    let (_, bytes) = query(name, kind)?;
    let mut stream = TcpStream::connect(server).await?;
    let mut framed = u16::try_from(bytes.len())?.to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await?;
    let mut prefix = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut prefix)).await??;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut body).await?;
    Ok(Message::from_vec(&body)?)
}

fn addresses(message: &Message) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

fn cluster() -> (Vec<Service>, Vec<EndpointSlice>) {
    let services = vec![
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80}]}}))
        .expect("svc"),
        serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}))
        .expect("svc"),
    ];
    let slices = vec![serde_json::from_value(json!({
        "metadata": {"name": "db-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.42.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.42.1.8"], "hostname": "db-1", "conditions": {"ready": true}}],
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]
    }))
    .expect("slice")];
    (services, slices)
}

#[tokio::test]
async fn answers_the_cluster_zone_over_udp_and_tcp() -> Result<()> {
    let (services, slices) = cluster();
    let dns = start(
        "cluster.local",
        DnsModel::build("cluster.local", &services, &slices),
        vec![],
    )
    .await?;

    let a = ask_udp(dns.udp, "web.default.svc.cluster.local.", RecordType::A).await?;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert!(a.metadata.authoritative);
    assert_eq!(addresses(&a), [Ipv4Addr::new(10, 43, 0, 20)]);

    let headless = ask_tcp(dns.tcp, "db.default.svc.cluster.local.", RecordType::A).await?;
    assert_eq!(
        addresses(&headless),
        [Ipv4Addr::new(10, 42, 0, 7), Ipv4Addr::new(10, 42, 1, 8)]
    );

    let pod = ask_udp(dns.udp, "db-1.db.default.svc.cluster.local.", RecordType::A).await?;
    assert_eq!(addresses(&pod), [Ipv4Addr::new(10, 42, 1, 8)]);

    let srv = ask_udp(
        dns.udp,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await?;
    let RData::SRV(record) = &srv.answers.first().context("an SRV answer")?.data else {
        bail!("not an SRV record: {srv:?}");
    };
    assert_eq!(record.port, 80);
    assert_eq!(record.target.to_ascii(), "web.default.svc.cluster.local.");

    let missing = ask_udp(dns.udp, "nope.default.svc.cluster.local.", RecordType::A).await?;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert!(missing.answers.is_empty());
    assert!(
        !missing.authorities.is_empty(),
        "negative answers carry the SOA"
    );

    // A new model (a Service appears) is served at once.
    let mut services = services;
    services.push(serde_json::from_value(
        json!({"metadata": {"name": "new", "namespace": "x"},
        "spec": {"clusterIP": "10.43.0.99", "ports": [{"port": 80}]}}),
    )?);
    dns.model.send_replace(Arc::new(DnsModel::build(
        "cluster.local",
        &services,
        &slices,
    )));
    let fresh = ask_udp(dns.udp, "new.x.svc.cluster.local.", RecordType::A).await?;
    assert_eq!(addresses(&fresh), [Ipv4Addr::new(10, 43, 0, 99)]);
    dns.stop().await;
    Ok(())
}

#[tokio::test]
async fn forwards_other_names_and_caches_the_answers() -> Result<()> {
    // The "host resolver": another instance, authoritative for upstream.test.
    let (services, slices) = cluster();
    let upstream = start(
        "upstream.test",
        DnsModel::build("upstream.test", &services, &slices),
        vec![],
    )
    .await?;
    let empty: (Vec<Service>, Vec<EndpointSlice>) = (vec![], vec![]);
    let dns = start(
        "cluster.local",
        DnsModel::build("cluster.local", &empty.0, &empty.1),
        vec![upstream.udp],
    )
    .await?;

    let forwarded = ask_udp(dns.udp, "web.default.svc.upstream.test.", RecordType::A).await?;
    assert_eq!(forwarded.metadata.response_code, ResponseCode::NoError);
    assert!(!forwarded.metadata.authoritative);
    assert_eq!(addresses(&forwarded), [Ipv4Addr::new(10, 43, 0, 20)]);
    let nx = ask_tcp(dns.tcp, "nope.default.svc.upstream.test.", RecordType::A).await?;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);

    // The upstream goes away: cached answers still come back, others fail fast with SERVFAIL.
    upstream.stop().await;
    let cached = ask_udp(dns.udp, "web.default.svc.upstream.test.", RecordType::A).await?;
    assert_eq!(addresses(&cached), [Ipv4Addr::new(10, 43, 0, 20)]);
    let failed = ask_udp(dns.udp, "db.default.svc.upstream.test.", RecordType::A).await?;
    assert_eq!(failed.metadata.response_code, ResponseCode::ServFail);
    dns.stop().await;
    Ok(())
}
