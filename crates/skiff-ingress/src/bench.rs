//! `skiff bench ingress`: requests per second and latency through the ingress to an HTTP
//! backend, side by side with the same load sent straight to the backend, in one run.
//!
//! Everything runs on loopback in this process, except a backend given by address (such as the
//! busybox httpd `skiff bench ingress` starts): a small hyper backend answering a fixed body, an
//! ingress [`Controller`] routing a host to it, and `concurrency` keep-alive HTTP/1.1 clients
//! sending requests for `duration` per phase. Figures are printed, never asserted.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::{Config, Controller, Objects};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("building objects: {0}")]
    Objects(#[from] serde_json::Error),
    #[error("client: {0}")]
    Client(String),
}

#[derive(Clone, Debug)]
pub struct Args {
    pub concurrency: usize,
    pub duration: Duration,
    /// Size of the backend's response body.
    pub body_bytes: usize,
    /// An existing backend to use instead of the built-in one (e.g. busybox httpd).
    pub backend: Option<SocketAddr>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            concurrency: 16,
            duration: Duration::from_secs(5),
            body_bytes: 128,
            backend: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Phase {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Phase {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    pub args: Args,
    pub direct: Phase,
    pub ingress: Phase,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(
            f,
            "ingress bench: {} connections, {:?} per phase, {} byte bodies",
            self.args.concurrency, self.args.duration, self.args.body_bytes
        )?;
        for (name, p) in [("direct", &self.direct), ("ingress", &self.ingress)] {
            writeln!(
                f,
                "{name:>8}: {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
                p.rps(),
                ms(p.percentile(0.5)),
                ms(p.percentile(0.99)),
                p.errors
            )?;
        }
        write!(
            f,
            "ingress keeps {:.0}% of direct throughput and adds {:.3} ms at p50",
            100.0 * self.ingress.rps() / self.direct.rps().max(1e-9),
            ms(self.ingress.percentile(0.5)) - ms(self.direct.percentile(0.5))
        )
    }
}

async fn backend(listener: TcpListener, body: Bytes, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
        };
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move { Ok::<_, std::convert::Infallible>(Response::new(Full::new(body))) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn connect(target: SocketAddr) -> Result<SendRequest<Empty<Bytes>>, Error> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(|e| Error::Client(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Error::Client(e.to_string()))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// `concurrency` clients sending requests one after another until the deadline. A client keeps
/// its connection while the server does, and connects again when the server closes it (busybox
/// httpd answers every request with `Connection: close`); the connect then counts in that
/// request's latency, as it would for any client of that server.
async fn load(target: SocketAddr, host: &str, args: &Args) -> Result<Phase, Error> {
    let deadline = Instant::now() + args.duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let host = host.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut connection: Option<SendRequest<Empty<Bytes>>> = None;
            while Instant::now() < deadline {
                let request = Request::get("/")
                    .header("host", host.as_str())
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| Error::Client(e.to_string()))?;
                let t0 = Instant::now();
                let reusable = match connection.as_mut() {
                    Some(sender) => sender.ready().await.is_ok(),
                    None => false,
                };
                let mut sender = match connection.take() {
                    Some(sender) if reusable => sender,
                    _ => match connect(target).await {
                        Ok(sender) => sender,
                        Err(_) => {
                            errors += 1;
                            // A refused connection comes back at once: do not spin.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let ok = match sender.send_request(request).await {
                    Ok(response) => {
                        response.status().is_success()
                            && response.into_body().collect().await.is_ok()
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies.push(t0.elapsed());
                } else {
                    errors += 1;
                }
                connection = Some(sender);
            }
            Ok::<_, Error>((latencies, errors))
        }));
    }
    let mut phase = Phase {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (latencies, errors) = task.await.map_err(|e| Error::Client(e.to_string()))??;
        phase.requests += latencies.len();
        phase.errors += errors;
        phase.latencies.extend(latencies);
    }
    phase.elapsed = started.elapsed();
    Ok(phase)
}

/// Runs both phases and returns the figures.
pub async fn run(args: Args) -> Result<Report, Error> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let backend_addr = match args.backend {
        Some(addr) => addr,
        None => {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            tokio::spawn(backend(
                listener,
                Bytes::from(vec![b'x'; args.body_bytes]),
                stop_rx.clone(),
            ));
            addr
        }
    };
    let controller = Controller::new(&Config::default(), None);
    controller.update(&objects(backend_addr)?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let ingress_addr = listener.local_addr()?;
    let mut stop = stop_rx.clone();
    tokio::spawn(controller.serve_http(listener, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    let direct = load(backend_addr, "bench.local", &args).await?;
    let ingress = load(ingress_addr, "bench.local", &args).await?;
    let _ = stop_tx.send(true);
    Ok(Report {
        args,
        direct,
        ingress,
    })
}

fn objects(backend: SocketAddr) -> Result<Objects, serde_json::Error> {
    use serde_json::json;
    let ingress = serde_json::from_value(json!({
        "metadata": {"name": "bench", "namespace": "bench"},
        "spec": {"ingressClassName": "skiff", "rules": [{"host": "bench.local", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    }))?;
    let service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "bench"},
        "spec": {"clusterIP": "10.43.0.80", "ports": [{"port": 80}]}
    }))?;
    let slice = serde_json::from_value(json!({
        "metadata": {"name": "web-1", "namespace": "bench", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": if backend.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [backend.ip().to_string()], "conditions": {"ready": true}}],
        "ports": [{"port": backend.port()}]
    }))?;
    Ok(Objects {
        ingresses: vec![Arc::new(ingress)],
        classes: Vec::new(),
        services: vec![Arc::new(service)],
        slices: vec![Arc::new(slice)],
        secrets: Vec::new(),
    })
}
