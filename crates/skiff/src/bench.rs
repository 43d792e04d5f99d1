//! `skiff bench`: programs that measure Skiff and print figures (never timed assertions).
//!
//! Every bench starts what it measures itself (local members on loopback in temporary
//! directories, with fsync on) and removes it afterwards, also on failure and Ctrl-C.

mod api;
mod backup;
mod controllers;
mod etcd;
mod failover;
mod ingress;
mod local;
mod member;
mod pods;
mod proxy;
mod scheduler;
mod startup;
mod stats;
mod store;
mod timeline;

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
    /// A member's idle resident memory and its cold start (process start to serving).
    Member(member::Args),
    /// Write unavailability when the leader is killed, and a check that no write was lost.
    Failover(failover::Args),
    /// Leader kill -9 to the new leader's controllers acting (a scaled Deployment's new pod).
    ControllerFailover(controllers::Args),
    /// Time from an EndpointSlice change to rules in effect, and full resync time (nftables).
    Proxy(proxy::Args),
    /// Requests/s and latency through the ingress versus direct to the backend.
    Ingress(ingress::Args),
    /// Pod create-to-Running latency and total against `docker run` in parallel; agent RSS.
    Pods(pods::Args),
    /// Pods scheduled per second: in memory, and on a cluster with N Node objects (no agents).
    Scheduler(scheduler::Args),
    /// A Deployment's apply → all Running on `skiff up`, versus a Docker Swarm service.
    Startup(startup::Args),
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let work = async move {
        match args.command {
            Command::Store(a) => store::run(a).await,
            Command::Api(a) => api::run(a).await,
            Command::Backup(a) => backup::run(a).await,
            Command::Failover(a) => failover::run(a).await,
            Command::Member(a) => member::run(a).await,
            Command::ControllerFailover(a) => controllers::run(a).await,
            Command::Proxy(a) => proxy::run(a).await,
            Command::Ingress(a) => ingress::run(a).await,
            Command::Pods(a) => pods::run(a).await,
            Command::Scheduler(a) => scheduler::run(a).await,
            Command::Startup(a) => startup::run(a).await,
        }
    };
    // Ctrl-C drops the bench future, whose guards kill every process and remove every
    // directory it started.
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; cleaned up"),
    }
}
