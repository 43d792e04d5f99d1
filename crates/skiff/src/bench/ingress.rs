//! `skiff bench ingress`: throughput and latency through the ingress versus straight to the
//! backend, in one run (see `skiff_ingress::bench`).

use std::net::SocketAddr;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    #[arg(long, default_value_t = 128)]
    body_bytes: usize,
    /// Use this HTTP backend (e.g. a busybox httpd) instead of the built-in one.
    #[arg(long)]
    backend: Option<SocketAddr>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let report = skiff_ingress::bench::run(skiff_ingress::bench::Args {
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.duration_secs),
        body_bytes: args.body_bytes,
        backend: args.backend,
    })
    .await?;
    println!("{report}");
    Ok(())
}
