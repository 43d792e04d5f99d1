//! Waiting for a condition with a deadline, reporting the last thing seen on timeout.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` until it returns `Ok(Some(v))`; on timeout fails with the last `Err`/`None`
/// description so the test output says what never happened.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    until_every(what, timeout, Duration::from_millis(25), probe).await
}

/// Like [`until`], probing every `interval` (for probes that cost an API round trip).
pub async fn until_every<T, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "condition not met yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(interval).await;
    }
}
