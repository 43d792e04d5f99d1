//! The plain-HTTP Prometheus endpoint every long-running subcommand serves (`--metrics-listen`):
//! `/metrics` (text format) and `/healthz`, loopback by default.
//!
//! Decision: metrics are served without TLS or credentials on a separate listener that binds
//! 127.0.0.1 unless told otherwise, like etcd's `--listen-metrics-urls` and kube-proxy's
//! `--metrics-bind-address`. A Prometheus on another host either gets a wider bind address
//! behind a firewall, or scrapes the API server's `/metrics` over HTTPS with a `system:masters`
//! client certificate (same registry, same series).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// `--metrics-listen`: an address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" | "off" | "none" => Ok(Listen(None)),
            other => other.parse().map(|a| Listen(Some(a))).map_err(|_| {
                format!("`{other}` is not an address like 127.0.0.1:2381 (or `off` to disable)")
            }),
        }
    }
}

/// Where `skiff server` and `skiff up` serve metrics unless told (etcd's metrics port).
pub const SERVER_DEFAULT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2381);
/// Where `skiff agent` serves metrics unless told (the kubelet's read-only port).
pub const AGENT_DEFAULT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 10255);

/// Registers `skiff_build_info` in `registry`, binds the listener and serves the registry there
/// until the process exits; returns the bound address (None when disabled).
///
/// `listen` is the flag as given. When it was not given, `default` is tried and a failure to
/// bind it (another skiff on this machine has it) is only a warning: metrics are not worth
/// refusing to start for. An address the operator asked for must bind.
pub async fn serve(
    listen: Option<Listen>,
    default: SocketAddr,
    registry: &prometheus::Registry,
    component: &str,
) -> anyhow::Result<Option<SocketAddr>> {
    let (addr, explicit) = match listen {
        Some(Listen(None)) => return Ok(None),
        Some(Listen(Some(addr))) => (addr, true),
        None => (default, false),
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if !explicit => {
            tracing::warn!(
                %addr,
                "no metrics endpoint: cannot bind the default address ({e}); pass --metrics-listen"
            );
            return Ok(None);
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "binding the metrics listener {addr} (pass another --metrics-listen, or `off`)"
            )));
        }
    };
    let info = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "skiff_build_info",
            "1, labelled with the skiff version and the component serving these metrics",
        ),
        &["version", "component"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), component])
        .set(1);
    // A registry that already has it keeps the first one.
    let _ = registry.register(Box::new(info));
    let bound = listener.local_addr()?;
    tokio::spawn(skiff_proxy::metrics::serve(
        listener,
        registry.clone(),
        std::future::pending(),
    ));
    Ok(Some(bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_parses_addresses_and_off() {
        assert_eq!(
            "127.0.0.1:2381".parse::<Listen>(),
            Ok(Listen(Some(SocketAddr::from(([127, 0, 0, 1], 2381)))))
        );
        assert_eq!("off".parse::<Listen>(), Ok(Listen(None)));
        assert_eq!("".parse::<Listen>(), Ok(Listen(None)));
        assert!("localhost".parse::<Listen>().is_err());
    }
}
