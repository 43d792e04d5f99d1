//! skiff-ingress: the HTTP(S) ingress controller of a node.
//!
//! - [`routing::RouteTable`]: the pure routing decision (hosts, wildcards, path types, longest
//!   match, default backend, ready endpoints) from Ingress, IngressClass, Service and
//!   EndpointSlice objects.
//! - [`tls::CertStore`]: certificates from `kubernetes.io/tls` Secrets by host, chosen per SNI
//!   name by [`tls::SniResolver`].
//! - [`proxy`]/[`server`]: hyper HTTP/1.1 and HTTP/2 (TLS with ALPN) listeners, round-robin
//!   balancing with retry on connect failure, WebSocket pass-through, `X-Forwarded-*`.
//! - [`Controller`]: holds the current table and certificates behind `ArcSwap`s; [`Controller::update`]
//!   swaps both atomically from a new set of objects without touching open connections.
//! - [`watch`]: the kube-rs shell (reflectors, status `loadBalancer.ingress`).
//! - [`bench`]: `skiff bench ingress`, ingress versus direct, in one run.

pub mod bench;
pub mod config;
pub mod metrics;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod status;
pub mod tls;
pub mod watch;

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use config::Config;

use crate::metrics::Metrics;
use crate::proxy::{Pool, Shared};
use crate::routing::{ClassSelector, Problem, RouteTable};
use crate::tls::{CertStore, SniResolver};

/// Everything the ingress configuration is computed from.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    pub ingresses: Vec<Arc<Ingress>>,
    pub classes: Vec<Arc<IngressClass>>,
    pub services: Vec<Arc<Service>>,
    pub slices: Vec<Arc<EndpointSlice>>,
    pub secrets: Vec<Arc<Secret>>,
}

/// The running configuration of one ingress process.
pub struct Controller {
    class_name: String,
    routes: Arc<ArcSwap<RouteTable>>,
    certs: Arc<ArcSwap<CertStore>>,
    shared: Arc<Shared>,
}

impl Controller {
    pub fn new(config: &Config, metrics: Option<Metrics>) -> Controller {
        let routes = Arc::new(ArcSwap::from_pointee(RouteTable::default()));
        Controller {
            class_name: config.class_name.clone(),
            certs: Arc::new(ArcSwap::from_pointee(CertStore::default())),
            shared: Arc::new(Shared {
                routes: routes.clone(),
                metrics,
                pool: Arc::new(Pool::new(config.max_idle_per_endpoint)),
                connect_timeout: config.connect_timeout,
                max_attempts: config.max_attempts,
            }),
            routes,
        }
    }

    /// Rebuilds routes and certificates from `objects` and swaps them in. Returns the problems
    /// found (missing Services or Secrets, bad certificates...), which never stop the rest.
    pub fn update(&self, objects: &Objects) -> Vec<Problem> {
        let selector = ClassSelector::from_classes(&self.class_name, &objects.classes);
        let table = RouteTable::build(
            &selector,
            &objects.ingresses,
            &objects.services,
            &objects.slices,
        );
        let certs = CertStore::build(&selector, &objects.ingresses, &objects.secrets);
        let mut problems = table.problems.clone();
        problems.extend(certs.problems.iter().cloned());
        self.routes.store(Arc::new(table));
        self.certs.store(Arc::new(certs));
        problems
    }

    /// The current routing table.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.load_full()
    }

    /// Serves plain HTTP on `listener` until `shutdown`.
    pub fn serve_http<F: Future<Output = ()>>(
        &self,
        listener: TcpListener,
        shutdown: F,
    ) -> impl Future<Output = ()> + use<F> {
        server::serve(listener, None, self.shared.clone(), shutdown)
    }

    /// Serves HTTPS (certificates by SNI) on `listener` until `shutdown`.
    pub fn serve_https<F: Future<Output = ()>>(
        &self,
        listener: TcpListener,
        shutdown: F,
    ) -> Result<impl Future<Output = ()> + use<F>, tls::Error> {
        let config = tls::server_config(SniResolver::new(self.certs.clone()))?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        Ok(server::serve(
            listener,
            Some(acceptor),
            self.shared.clone(),
            shutdown,
        ))
    }
}
