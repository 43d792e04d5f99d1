//! Prints the in-memory scheduler throughput: `cargo run --release -p skiff-scheduler --example
//! bench_in_memory -- [nodes] [pods]` (defaults 1000 and 10000). `skiff bench scheduler` prints
//! the same figures (and the API mode) from the binary.

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let nodes = args.next().flatten().unwrap_or(1000);
    let pods = args.next().flatten().unwrap_or(10_000);
    let report = skiff_scheduler::bench::in_memory(nodes, pods);
    println!(
        "nodes={} pods={} scheduled={} unschedulable={} elapsed={:.3}s pods/s={:.0}",
        report.nodes,
        report.pods,
        report.scheduled,
        report.unschedulable,
        report.elapsed.as_secs_f64(),
        report.pods_per_second()
    );
}
