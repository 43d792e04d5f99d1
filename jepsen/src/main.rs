//! The `skiff-jepsen` command: runs the fault-injection suite once and prints the verdict.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use skiff_jepsen::history::History;
use skiff_jepsen::nemesis;
use skiff_jepsen::run::{self, Options};

/// Starts a Skiff cluster in network namespaces (needs root), runs workloads through the
/// Kubernetes API while injecting faults, and checks the history. Exit status 0: no anomaly;
/// 1: anomalies (printed with history excerpts); 2: the run itself failed.
#[derive(Parser, Debug)]
#[command(name = "skiff-jepsen")]
struct Args {
    /// The skiff binary to test.
    #[arg(long, env = "SKIFF_BIN", default_value = "skiff")]
    skiff_bin: PathBuf,
    /// Members (3 or 5).
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// How long the workload and the nemesis run, in seconds.
    #[arg(long, default_value_t = 120)]
    duration: u64,
    /// Comma-separated faults: partition, isolate-leader, isolate-one, bridge, one-way, kill,
    /// kill-leader, kill-all, pause, replace, skew, disk-flip,
    /// disk-torn; or all, or none; and disk-truncate (a disk that loses synced data, not in all).
    #[arg(long, default_value = "all")]
    nemesis: String,
    /// Comma-separated workloads: register, set, watch.
    #[arg(long, default_value = "register,set,watch")]
    workload: String,
    /// Register keys (ConfigMaps).
    #[arg(long, default_value_t = 5)]
    keys: usize,
    #[arg(long, default_value_t = 6)]
    register_clients: usize,
    #[arg(long, default_value_t = 3)]
    set_clients: usize,
    #[arg(long, default_value_t = 3)]
    watchers: usize,
    /// Per-operation timeout in milliseconds (a timed-out operation is "unknown").
    #[arg(long, default_value_t = 5000)]
    op_timeout_ms: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write history.json, report.txt and the members' logs (default: a new temp dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Negative control: members serve linearizable reads from local state.
    #[arg(long)]
    unsafe_local_reads: bool,
    /// Negative control: members never fsync.
    #[arg(long)]
    unsafe_no_fsync: bool,
    /// Negative control: the leader acknowledges writes not committed within 20 ms.
    #[arg(long)]
    unsafe_ack_before_commit: bool,
    /// Seconds the linearizability search may take per key before the run is inconclusive.
    #[arg(long, default_value_t = 120)]
    check_limit: u64,
    /// Apply the listed nemeses in order, round and round, instead of picking at random.
    #[arg(long)]
    cycle: bool,
    /// Run nothing: check the history.json of an earlier run again (e.g. with a larger
    /// --check-limit) and print the report. --workload says which checkers run. Problems the
    /// run itself saw (a fault that failed, an incomplete final watch) are in that run's
    /// report.txt, not in its history.
    #[arg(long, value_name = "HISTORY_JSON")]
    check: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let code = match main_inner(args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("skiff-jepsen: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn main_inner(args: Args) -> anyhow::Result<bool> {
    let nemesis = nemesis::parse_list(&args.nemesis).map_err(anyhow::Error::msg)?;
    let workloads: Vec<&str> = args.workload.split(',').map(str::trim).collect();
    for w in &workloads {
        if !["register", "set", "watch"].contains(w) {
            anyhow::bail!("unknown workload {w:?}: use register, set, watch");
        }
    }
    if !(1..=9).contains(&args.members) {
        anyhow::bail!("--members must be between 1 and 9");
    }
    let mut server_flags = Vec::new();
    if args.unsafe_local_reads {
        server_flags.push("--unsafe-local-reads".to_string());
    }
    if args.unsafe_no_fsync {
        server_flags.push("--unsafe-no-fsync".to_string());
    }
    if args.unsafe_ack_before_commit {
        server_flags.push("--unsafe-ack-before-commit".to_string());
    }
    let check_only = args.check.clone();
    let opts = Options {
        skiff_bin: args.skiff_bin,
        members: args.members,
        duration: Duration::from_secs(args.duration),
        nemesis,
        registers: workloads.contains(&"register"),
        set: workloads.contains(&"set"),
        watch: workloads.contains(&"watch"),
        keys: args.keys.max(1),
        register_clients: args.register_clients,
        set_clients: args.set_clients,
        watchers: args.watchers,
        op_timeout: Duration::from_millis(args.op_timeout_ms),
        seed: args.seed,
        server_flags,
        out: args.out,
        check_limit: Duration::from_secs(args.check_limit),
        cycle: args.cycle,
    };
    if let Some(path) = check_only {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let history: History = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a skiff-jepsen history", path.display()))?;
        let report = run::check(&history, &opts);
        println!("{}", report.text);
        println!(
            "result: {}",
            if report.valid() { "VALID" } else { "INVALID" }
        );
        for a in &report.anomalies {
            println!("\n!! [{}] {}\n{}", a.checker, a.summary, a.excerpt);
        }
        return Ok(report.valid());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run::run(&opts))?;
    println!("{}", report.text);
    Ok(report.valid())
}
