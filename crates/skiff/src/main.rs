//! `skiff`: the one Skiff binary. Subcommands: `up` (an all-in-one cluster), `server` (a
//! control-plane member), `cluster`
//! (membership operations against any member), `backup` (save, list, verify, prune, restore), `bench` (measuring tools).
//!
//! This is the only crate that reads flags, the environment and files, and the only one that
//! installs the tracing subscriber; components receive plain config structs.

mod agent_cmd;
mod backup_cmd;
mod bench;
mod cluster_cmd;
mod control_plane;
mod endpoints;
mod ingress_cmd;
mod kube_client;
mod memory;
mod metrics_endpoint;
mod proxy_cmd;
mod server;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "Skiff: a Kubernetes-compatible orchestrator in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start an all-in-one cluster (one control-plane member) and print how to use it.
    Up(up::Args),
    /// Run a control-plane member (creates a cluster with --init, joins one with --join).
    Server(server::Args),
    /// Show and change the control plane's membership.
    Cluster(cluster_cmd::Args),
    /// Save, list, verify, prune and restore backups.
    Backup(backup_cmd::Args),
    /// Measure Skiff (and compare it with peers) on this machine.
    Bench(bench::Args),
    /// Run a node agent: join a cluster, register a Node, run its pods on Docker.
    Agent(agent_cmd::Args),
    /// Run the node's service proxy (Service IPs, NodePorts) and cluster DNS.
    Proxy(proxy_cmd::Args),
    /// Run the node's ingress controller (Ingresses of class `skiff`, HTTP and HTTPS).
    Ingress(ingress_cmd::Args),
}

impl Command {
    /// The long-running processes (as opposed to one-shot commands and benchmarks).
    fn runs_until_stopped(&self) -> bool {
        matches!(
            self,
            Command::Up(_)
                | Command::Server(_)
                | Command::Agent(_)
                | Command::Proxy(_)
                | Command::Ingress(_)
        )
    }
}

/// The log filter when `SKIFF_LOG` is unset.
const LOG_FILTER: &str = "info,openraft=warn,h2=warn,tower=warn,hyper=warn";

/// The log filter when `SKIFF_LOG` is unset, for `command`. Benchmarks leave out the ingress's
/// access log (one line per request would bury their figures); `SKIFF_LOG` puts it back.
fn default_log_filter(command: &Command) -> String {
    match command {
        Command::Bench(_) => format!("{LOG_FILTER},skiff_ingress::access=warn"),
        _ => LOG_FILTER.to_owned(),
    }
}

fn init_tracing(command: &Command) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log_filter(command)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if cli.command.runs_until_stopped() {
        memory::restart_with_arena_cap();
    }
    init_tracing(&cli.command);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(args).await,
            Command::Server(args) => server::run(args).await,
            Command::Cluster(args) => cluster_cmd::run(args).await,
            Command::Backup(args) => backup_cmd::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Agent(args) => agent_cmd::run(args).await,
            Command::Proxy(args) => proxy_cmd::run(args).await,
            Command::Ingress(args) => ingress_cmd::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
