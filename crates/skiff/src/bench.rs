//! `skiff bench`: programs that measure Skiff and print figures (never timed assertions).
//!
//! Every bench starts what it measures itself (local members on loopback in temporary
//! directories, with fsync on) and removes it afterwards, also on failure and Ctrl-C.

mod api;
mod backup;
mod etcd;
mod failover;
mod ingress;
mod local;
mod proxy;
mod stats;
mod store;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Write and linearizable-read throughput and latency of the replicated store.
    Store(store::Args),
    /// The Kubernetes API of a 3-member cluster: creates, gets, lists, watch fan-out, memory.
    Api(api::Args),
    /// Backup save and restore times for many objects.
    Backup(backup::Args),
    /// Write unavailability when the leader is killed, and a check that no write was lost.
    Failover(failover::Args),
    /// Time from an EndpointSlice change to rules in effect, and full resync time (nftables).
    Proxy(proxy::Args),
    /// Requests/s and latency through the ingress versus direct to the backend.
    Ingress(ingress::Args),
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let work = async move {
        match args.command {
            Command::Store(a) => store::run(a).await,
            Command::Api(a) => api::run(a).await,
            Command::Backup(a) => backup::run(a).await,
            Command::Failover(a) => failover::run(a).await,
            Command::Proxy(a) => proxy::run(a).await,
            Command::Ingress(a) => ingress::run(a).await,
        }
    };
    // Ctrl-C drops the bench future, whose guards kill every process and remove every
    // directory it started.
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; cleaned up"),
    }
}
