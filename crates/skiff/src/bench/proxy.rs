//! `skiff bench proxy`: rule sync latency and full resync time on real nftables in a network
//! namespace (see `skiff_proxy::bench`).

use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Endpoint changes to time.
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Milliseconds between two changes.
    #[arg(long, default_value_t = 100)]
    change_interval_ms: u64,
    /// Full resyncs to time.
    #[arg(long, default_value_t = 5)]
    resyncs: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let report = skiff_proxy::bench::run(skiff_proxy::bench::Args {
        services: args.services,
        endpoints: args.endpoints,
        changes: args.changes,
        change_interval: Duration::from_millis(args.change_interval_ms),
        resyncs: args.resyncs,
    })
    .await?;
    println!("{report}");
    Ok(())
}
