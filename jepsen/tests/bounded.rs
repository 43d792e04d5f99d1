//! The bounded suite CI runs (needs root for network namespaces, and the skiff binary: set
//! SKIFF_BIN or build it into the same target directory): a few minutes of every nemesis must
//! find nothing, and the negative control (linearizable reads served locally) must be caught.

use std::path::PathBuf;
use std::time::Duration;

use skiff_jepsen::nemesis::{self, Fault};
use skiff_jepsen::run::{Options, run};

fn skiff_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SKIFF_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/bounded-<hash> -> target/<profile>/skiff
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("skiff"))
        .unwrap_or_default()
}

fn secs_from_env(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bounded_run_under_every_nemesis_finds_no_anomaly() -> anyhow::Result<()> {
    let opts = Options {
        skiff_bin: skiff_bin(),
        duration: secs_from_env("SKIFF_JEPSEN_SECS", 150),
        nemesis: nemesis::ALL.to_vec(),
        keys: 4,
        seed: rand::random(),
        ..Options::default()
    };
    eprintln!("seed {}", opts.seed);
    let report = run(&opts).await?;
    eprintln!("{}", report.text);
    assert!(report.valid(), "anomalies found:\n{}", report.text);
    assert!(
        report.stats.cas_ok > 50,
        "too few acknowledged writes to mean anything:\n{}",
        report.text
    );
    assert!(report.stats.creates_ok > 50, "{}", report.text);
    assert!(report.stats.watch_events > 50, "{}", report.text);
    assert!(report.stats.faults >= 5, "{}", report.text);
    Ok(())
}

/// Membership changes, clock skew and disk damage, each applied in turn (so each is applied
/// at least once), under the full workload.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bounded_run_of_membership_skew_and_disk_faults_finds_no_anomaly() -> anyhow::Result<()> {
    let opts = Options {
        skiff_bin: skiff_bin(),
        duration: secs_from_env("SKIFF_JEPSEN_MEMBERSHIP_SECS", 100),
        nemesis: vec![
            Fault::Replace,
            Fault::DiskFlip,
            Fault::Skew,
            Fault::DiskTorn,
        ],
        cycle: true,
        keys: 3,
        seed: rand::random(),
        ..Options::default()
    };
    eprintln!("seed {}", opts.seed);
    let report = run(&opts).await?;
    eprintln!("{}", report.text);
    assert!(report.valid(), "anomalies found:\n{}", report.text);
    assert!(report.stats.cas_ok > 30, "{}", report.text);
    assert!(report.stats.creates_ok > 30, "{}", report.text);
    assert!(
        report.stats.faults >= 4,
        "every kind must have run once:\n{}",
        report.text
    );
    Ok(())
}

/// The second negative control: a leader that acknowledges writes before they commit. Cut off
/// from the majority, it keeps acknowledging creates and CASes that the new leader never sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn negative_control_ack_before_commit_under_partition_is_caught() -> anyhow::Result<()> {
    let opts = Options {
        skiff_bin: skiff_bin(),
        duration: secs_from_env("SKIFF_JEPSEN_CONTROL_SECS", 45),
        nemesis: vec![Fault::IsolateLeader],
        watch: false,
        keys: 2,
        seed: rand::random(),
        server_flags: vec!["--unsafe-ack-before-commit".into()],
        ..Options::default()
    };
    eprintln!("seed {}", opts.seed);
    let report = run(&opts).await?;
    eprintln!("{}", report.text);
    assert!(
        report.count("set") + report.count("linearizability") > 0,
        "the checkers missed writes acknowledged before commit by an isolated leader:\n{}",
        report.text
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn negative_control_local_reads_under_partition_is_caught() -> anyhow::Result<()> {
    let opts = Options {
        skiff_bin: skiff_bin(),
        duration: secs_from_env("SKIFF_JEPSEN_CONTROL_SECS", 45),
        nemesis: vec![Fault::IsolateLeader, Fault::IsolateOne],
        set: false,
        watch: false,
        keys: 2,
        seed: rand::random(),
        server_flags: vec!["--unsafe-local-reads".into()],
        ..Options::default()
    };
    eprintln!("seed {}", opts.seed);
    let report = run(&opts).await?;
    eprintln!("{}", report.text);
    assert!(
        report.count("linearizability") > 0,
        "the checker missed stale reads from an isolated member serving local reads:\n{}",
        report.text
    );
    Ok(())
}
