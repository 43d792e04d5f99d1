//! The ingress configuration: plain data with defaults and a `validate()` reporting every
//! problem. Listeners are bound by the caller (default ports 80 and 443).

use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("invalid ingress configuration: {}", .problems.join("; "))]
pub struct Error {
    pub problems: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The IngressClass served (default `skiff`).
    pub class_name: String,
    /// Written to `status.loadBalancer.ingress[].ip` of served Ingresses (none: no status).
    pub node_address: Option<IpAddr>,
    /// How long a backend connect may take before the next endpoint is tried (default 2 s).
    pub connect_timeout: Duration,
    /// Endpoints tried per request at most (default 3).
    pub max_attempts: usize,
    /// Idle keep-alive connections kept per backend endpoint (default 32).
    pub max_idle_per_endpoint: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            class_name: "skiff".into(),
            node_address: None,
            connect_timeout: Duration::from_secs(2),
            max_attempts: 3,
            max_idle_per_endpoint: 32,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        if self.class_name.is_empty() {
            problems.push("ingress class name is empty".to_string());
        }
        if self.connect_timeout.is_zero() {
            problems.push("connect timeout must be above zero".into());
        }
        if self.max_attempts == 0 {
            problems.push("at least one attempt per request is needed".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error { problems })
        }
    }
}
