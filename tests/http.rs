//! A plain HTTP/1.0 GET, for the members' metrics and health endpoints (plain HTTP; the
//! metrics listener answers HTTP/1.0 and closes).

use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GETs `path` from `addr` (host:port): (status, body). Gives up after 5 s.
pub async fn get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .context("no end of the response head")?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no status code")?;
        anyhow::Ok((status, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .with_context(|| format!("GET http://{addr}{path} timed out"))?
}

/// The value of an unlabelled sample `name` in a Prometheus text exposition.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}
