//! One run: network, cluster, setup, workload under the nemesis, healing, final reads, checks.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use rand::{Rng, SeedableRng};

use crate::cluster::Cluster;
use crate::history::{Event, EventKind, History, NemesisEvent, Outcome, RegKind, secs};
use crate::nemesis::{self, Action, Fault};
use crate::net::Net;
use crate::registers::Anomaly;
use crate::workload::{self, NAMESPACE, Recorder, WatchControl, Worker};

#[derive(Debug, Clone)]
pub struct Options {
    pub skiff_bin: PathBuf,
    pub members: usize,
    pub duration: Duration,
    pub nemesis: Vec<Fault>,
    pub registers: bool,
    pub set: bool,
    pub watch: bool,
    pub keys: usize,
    pub register_clients: usize,
    pub set_clients: usize,
    pub watchers: usize,
    pub op_timeout: Duration,
    pub seed: u64,
    /// Extra `skiff server` flags (e.g. the unsafe negative controls).
    pub server_flags: Vec<String>,
    /// Where to keep the history, the report and the members' logs (a temp dir if None).
    pub out: Option<PathBuf>,
    /// How long the checker may search per key.
    pub check_limit: Duration,
    /// Apply the nemeses in the listed order, round and round, instead of at random.
    pub cycle: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            skiff_bin: PathBuf::from("skiff"),
            members: 3,
            duration: Duration::from_secs(60),
            nemesis: nemesis::ALL.to_vec(),
            registers: true,
            set: true,
            watch: true,
            keys: 5,
            register_clients: 6,
            set_clients: 3,
            watchers: 3,
            op_timeout: Duration::from_secs(5),
            seed: 1,
            server_flags: Vec::new(),
            out: None,
            check_limit: Duration::from_secs(60),
            cycle: false,
        }
    }
}

/// What a run did (so a test can tell a run that tested nothing from a good one).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub cas_ok: usize,
    pub creates_ok: usize,
    pub watch_events: usize,
    pub faults: usize,
}

#[derive(Debug, Default)]
pub struct Report {
    pub stats: Stats,
    pub anomalies: Vec<Anomaly>,
    /// Keys whose linearizability search ran out of time.
    pub inconclusive: Vec<String>,
    pub text: String,
    pub out_dir: PathBuf,
}

impl Report {
    pub fn valid(&self) -> bool {
        self.anomalies.is_empty() && self.inconclusive.is_empty()
    }
    pub fn count(&self, checker: &str) -> usize {
        self.anomalies
            .iter()
            .filter(|a| a.checker == checker)
            .count()
    }
}

fn log(msg: &str, start: Instant) {
    eprintln!(
        "[jepsen {:>7}] {msg}",
        secs(start.elapsed().as_nanos() as u64)
    );
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let start = Instant::now();
    let tmp;
    let out_dir = match &opts.out {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("skiff-jepsen-").tempdir()?;
            tmp.keep()
        }
    };
    let skiff_bin = std::fs::canonicalize(&opts.skiff_bin).with_context(|| {
        format!(
            "the skiff binary {} does not exist (cargo build -p skiff)",
            opts.skiff_bin.display()
        )
    })?;
    let net = Net::create(opts.members)?;
    log(
        &format!(
            "network {}: members at {}..{}, clients at {}; output in {}",
            net.tag,
            net.ip(0),
            net.ip(opts.members - 1),
            net.host_ip(),
            out_dir.display()
        ),
        start,
    );
    let mut flags: Vec<String> = [
        "--history-window-secs",
        "7200",
        "--snapshot-after-logs",
        "5000",
        "--logs-kept",
        "1000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    flags.extend(opts.server_flags.iter().cloned());
    let mut cluster = Cluster::start(net, &out_dir, &skiff_bin, flags).await?;
    log(&format!("{} members up", opts.members), start);

    let n = opts.members;
    let mut apis = Vec::new();
    for i in 0..n {
        let c = workload::client(&cluster.kubeconfig(i), opts.op_timeout).await?;
        apis.push(c);
    }
    // Setup through m1 (retried: nothing is concurrent yet).
    let ns_api: Api<Namespace> = Api::all(apis[0].clone());
    let ns = Namespace {
        metadata: kube::core::ObjectMeta {
            name: Some(NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    retry("creating the namespace", || async {
        match ns_api.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            Err(e) if workload::classify(&e) == workload::Failure::Conflict => Ok(()),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    let cm_api = |i: usize| -> Api<ConfigMap> { Api::namespaced(apis[i].clone(), NAMESPACE) };
    let mut history = History::default();
    let keys: Vec<String> = (0..opts.keys).map(|k| format!("reg-{k}")).collect();
    for key in &keys {
        let api = cm_api(0);
        let cm = retry("creating a register", || async {
            Ok(api
                .create(
                    &PostParams::default(),
                    &workload::config_map(key, Some(0), None),
                )
                .await?)
        })
        .await?;
        let rv = workload::rv_of(&cm.metadata).context("a created register has no rv")?;
        history.initial.insert(key.clone(), (0, rv));
        history.start_rv = history.start_rv.max(rv);
    }
    log(
        &format!(
            "{} registers created; workload starts after rv {}",
            keys.len(),
            history.start_rv
        ),
        start,
    );

    // The workload.
    let rec = Arc::new(Recorder::new(start));
    let stop = Arc::new(AtomicBool::new(false));
    let ctl = Arc::new(WatchControl {
        final_rv: 0.into(),
        stop: false.into(),
    });
    let mut tasks = Vec::new();
    let mut process = 0u32;
    if opts.registers {
        for c in 0..opts.register_clients {
            process += 1;
            let member = c % n;
            let w = Worker {
                process,
                member,
                api: cm_api(member),
                timeout: opts.op_timeout,
                rec: rec.clone(),
            };
            tasks.push(tokio::spawn(workload::register_worker(
                w,
                keys.clone(),
                stop.clone(),
                opts.seed ^ u64::from(process),
            )));
        }
    }
    if opts.set {
        for c in 0..opts.set_clients {
            process += 1;
            let member = c % n;
            let w = Worker {
                process,
                member,
                api: cm_api(member),
                timeout: opts.op_timeout,
                rec: rec.clone(),
            };
            tasks.push(tokio::spawn(workload::set_worker(
                w,
                stop.clone(),
                opts.seed ^ u64::from(process),
            )));
        }
    }
    let mut watchers = Vec::new();
    if opts.watch {
        for id in 0..opts.watchers {
            watchers.push(tokio::spawn(workload::watcher(
                id as u32 + 1,
                (0..n).map(cm_api).collect(),
                history.start_rv,
                ctl.clone(),
                rec.clone(),
                opts.seed ^ (1000 + id as u64),
            )));
        }
    }

    // The nemesis, in this task.
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let end = Instant::now() + opts.duration;
    let mut leader = cluster.status().await.and_then(|s| s.leader);
    let mut nemesis_err = None;
    let mut faults_applied = 0usize;
    while Instant::now() < end {
        let (hold, quiet) = nemesis::hold(&mut rng);
        tokio::time::sleep(quiet.min(end.saturating_duration_since(Instant::now()))).await;
        if opts.nemesis.is_empty() || Instant::now() >= end {
            continue;
        }
        let pick = rng.random_range(0..opts.nemesis.len());
        let fault = if opts.cycle {
            opts.nemesis[faults_applied % opts.nemesis.len()]
        } else {
            opts.nemesis[pick]
        };
        faults_applied += 1;
        if let Some(s) = cluster.status().await {
            leader = s.leader;
        }
        let action = nemesis::plan(fault, n, leader, &mut rng);
        history.nemesis.push(NemesisEvent {
            at: rec.now(),
            what: action.what().to_string(),
        });
        log(action.what(), start);
        match apply(&mut cluster, &action, hold, &mut rng).await {
            Ok(outcome) => {
                for note in outcome.notes {
                    log(&note, start);
                    history.nemesis.push(NemesisEvent {
                        at: rec.now(),
                        what: format!("note: {note}"),
                    });
                }
                history.disk.extend(outcome.disk_anomalies);
            }
            Err(e) => {
                // The faults stop here, but what was recorded is still checked.
                log(&format!("applying a fault failed: {e:#}"), start);
                history.nemesis.push(NemesisEvent {
                    at: rec.now(),
                    what: format!("failed: {e:#}"),
                });
                nemesis_err = Some(e);
                break;
            }
        }
        history.nemesis.push(NemesisEvent {
            at: rec.now(),
            what: "healed".into(),
        });
    }
    stop.store(true, Ordering::SeqCst);
    log("workload stopping; healing everything", start);
    for t in tasks {
        let _ = t.await;
    }
    cluster.heal_all()?;
    cluster
        .wait_status(Duration::from_secs(120), |s| s.leader.is_some())
        .await
        .context("the cluster did not recover after healing")?;
    // Writes with unknown outcomes may still land; let them before the final reads.
    tokio::time::sleep(opts.op_timeout * 2).await;

    // Final reads (recorded as ordinary reads; retried, which is safe for reads).
    let final_process = process + 1;
    for key in &keys {
        let mut i = 0usize;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let w = Worker {
                process: final_process,
                member: i % n,
                api: cm_api(i % n),
                timeout: opts.op_timeout,
                rec: rec.clone(),
            };
            if workload::read(&w, key, false).await.is_some() {
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "no final read of {key} succeeded in 120 s\n{}",
                    cluster.log_tails()
                );
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    // Any member may answer (a list is a linearizable read); one that is overloaded or still
    // catching up must not fail the run after an hour of work.
    let asked = std::sync::atomic::AtomicUsize::new(0);
    // In pages: an hour's run leaves a few hundred thousand objects, which one response would
    // take longer than a client timeout to build (and its work starves the member's heartbeats).
    // The continue tokens keep every page at the first page's revision.
    let items = retry("listing the final state", || async {
        let api = cm_api(asked.fetch_add(1, Ordering::Relaxed) % n);
        let mut items = Vec::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await?;
            items.extend(page.items);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        Ok(items)
    })
    .await?;
    let mut final_set = Vec::new();
    for cm in &items {
        let name = cm.metadata.name.clone().unwrap_or_default();
        if workload::ours(&name) {
            history.final_rv = history
                .final_rv
                .max(workload::rv_of(&cm.metadata).unwrap_or(0));
        }
        if name.starts_with("set-") {
            final_set.push(name);
        }
    }
    history.final_rv = history.final_rv.max(history.start_rv);
    history.final_set = Some(final_set);
    log(
        &format!(
            "final state read at rv {}; waiting for watchers",
            history.final_rv
        ),
        start,
    );
    ctl.final_rv.store(history.final_rv, Ordering::SeqCst);
    let catch_up = Instant::now() + Duration::from_secs(60);
    for w in &watchers {
        while !w.is_finished() && Instant::now() < catch_up {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    ctl.stop.store(true, Ordering::SeqCst);
    for w in watchers {
        if let Ok(l) = w.await {
            history.watches.push(l);
        }
    }
    let mut reference_problem = None;
    if opts.watch {
        match workload::reference(
            &cm_api(0),
            history.start_rv,
            history.final_rv,
            Duration::from_secs(60),
        )
        .await
        {
            Ok(r) => history.reference = r,
            Err(e) => reference_problem = Some(e.to_string()),
        }
    }
    history.registers = rec.registers.lock().map(|v| v.clone()).unwrap_or_default();
    history.sets = rec.sets.lock().map(|v| v.clone()).unwrap_or_default();
    drop(cluster);
    // Kept before checking, so a check that runs out of time can be repeated offline
    // (`skiff-jepsen --check`) with a larger limit.
    std::fs::write(out_dir.join("history.json"), serde_json::to_vec(&history)?)?;
    log("cluster stopped; checking", start);

    let mut report = check(&history, opts);
    if let Some(p) = reference_problem {
        report.anomalies.push(Anomaly {
            checker: "watch",
            summary: format!("no complete final history: {p}"),
            excerpt: String::new(),
        });
    }
    if let Some(e) = nemesis_err {
        // The cluster refused or never finished what a fault asked of it (a membership change,
        // a restart): a liveness failure, reported with the safety checks rather than instead
        // of them.
        report.anomalies.push(Anomaly {
            checker: "liveness",
            summary: format!("applying a fault failed, so the faults stopped early: {e:#}"),
            excerpt: String::new(),
        });
    }
    report.out_dir = out_dir.clone();
    report.text.push_str(&format!(
        "\nresult: {}\nhistory: {}\n",
        if report.valid() { "VALID" } else { "INVALID" },
        out_dir.join("history.json").display()
    ));
    for a in &report.anomalies {
        report.text.push_str(&format!(
            "\n!! [{}] {}\n{}\n",
            a.checker, a.summary, a.excerpt
        ));
    }
    std::fs::write(out_dir.join("report.txt"), &report.text)?;
    Ok(report)
}

/// What applying a fault observed beyond the fault itself.
#[derive(Default)]
struct Applied {
    notes: Vec<String>,
    disk_anomalies: Vec<String>,
}

/// Removes member `m`, deletes its data and joins it again empty; waits for every voter.
async fn replace(cluster: &mut Cluster, m: usize, hold: Duration) -> anyhow::Result<()> {
    let n = cluster.members.len();
    cluster.remove_and_wipe(m, Duration::from_secs(60)).await?;
    tokio::time::sleep(hold).await;
    cluster.join_fresh(m)?;
    cluster
        .wait_status(Duration::from_secs(120), |s| s.voters == n && !s.changing)
        .await
        .with_context(|| format!("waiting for m{} to join again as a voter", m + 1))?;
    Ok(())
}

async fn apply(
    cluster: &mut Cluster,
    action: &Action,
    hold: Duration,
    rng: &mut impl Rng,
) -> anyhow::Result<Applied> {
    use rand::seq::SliceRandom;
    let mut applied = Applied::default();
    match action {
        Action::Partition { drops, .. } => {
            cluster.net.partition(drops)?;
            tokio::time::sleep(hold).await;
            cluster.net.heal()?;
        }
        Action::Kill { members, .. } => {
            for &m in members {
                cluster.kill(m);
            }
            tokio::time::sleep(hold).await;
            let mut order = members.clone();
            order.shuffle(rng);
            for m in order {
                cluster.restart(m)?;
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..1000))).await;
            }
        }
        Action::Pause { members, .. } => {
            for &m in members {
                cluster.pause(m)?;
            }
            tokio::time::sleep(hold).await;
            for &m in members {
                cluster.resume(m)?;
            }
        }
        Action::Replace { member, .. } => replace(cluster, *member, hold).await?,
        Action::Skew {
            member, faketime, ..
        } => {
            anyhow::ensure!(
                std::path::Path::new(crate::cluster::LIBFAKETIME).exists(),
                "{} is missing: install Debian's faketime package (ops/deps does)",
                crate::cluster::LIBFAKETIME
            );
            let from = cluster.log_len(*member);
            cluster.restart_with_clock(*member, Some(faketime.clone()))?;
            tokio::time::sleep(hold).await;
            // The member must really run on the skewed clock: its log's timestamps show it.
            let offset = cluster.log_clock_offset(*member, from);
            applied.notes.push(format!(
                "m{}'s log clock is {offset:?} s from the harness's",
                member + 1
            ));
            // "+300s" / "-300s" are offsets; "+0 x2" (a rate) has nothing to compare.
            let offset_fault = faketime.trim_start_matches('+').strip_suffix('s');
            if let Some(want) = offset_fault.and_then(|f| f.parse::<i64>().ok()) {
                let got = offset.unwrap_or(0);
                anyhow::ensure!(
                    (got - want).abs() < 20,
                    "m{} was started with FAKETIME={faketime:?} but its log clock is {got} s off; libfaketime did not take effect",
                    member + 1
                );
            }
            if let Some(status) = cluster.exited(*member) {
                anyhow::bail!(
                    "m{} exited ({status}) while its clock was skewed\n{}",
                    member + 1,
                    cluster.log_tails()
                );
            }
            cluster.restart_with_clock(*member, None)?;
        }
        Action::Disk { member, damage, .. } => {
            let m = *member;
            cluster.kill(m);
            let db = cluster.members[m].data_dir.join("db");
            let did = nemesis::damage_wal(&db, *damage)
                .with_context(|| format!("damaging m{}'s write-ahead log", m + 1))?;
            applied.notes.push(format!("m{}: {did}", m + 1));
            cluster.restart(m)?;
            let until = Instant::now() + Duration::from_secs(10).max(hold);
            let mut exit = None;
            while Instant::now() < until && exit.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                exit = cluster.exited(m);
            }
            let log = std::fs::read_to_string(cluster.log_path(m)).unwrap_or_default();
            match exit {
                Some(status) => {
                    let refusal = log
                        .lines()
                        .rev()
                        .find(|l| l.contains("corrupt"))
                        .map(str::to_string);
                    let Some(refusal) = refusal else {
                        anyhow::bail!(
                            "m{} exited ({status}) after {did} without saying its database is corrupt\n{}",
                            m + 1,
                            cluster.log_tails()
                        );
                    };
                    applied
                        .notes
                        .push(format!("m{} refused to start: {}", m + 1, refusal.trim()));
                    if matches!(damage, nemesis::Damage::Torn { .. }) {
                        applied.disk_anomalies.push(format!(
                            "m{} refused to start after {did}: a torn last record, which any crash can leave, must be dropped",
                            m + 1
                        ));
                    }
                    replace(cluster, m, Duration::ZERO).await?;
                    applied
                        .notes
                        .push(format!("m{} replaced by an empty member", m + 1));
                }
                None => {
                    applied
                        .notes
                        .push(format!("m{} recovered and is running", m + 1));
                    if matches!(damage, nemesis::Damage::Flip { .. }) {
                        applied.disk_anomalies.push(format!(
                            "m{} started and served after {did}: a checksum mismatch in its log went undetected",
                            m + 1
                        ));
                    }
                }
            }
        }
    }
    Ok(applied)
}

async fn retry<T, F, Fut>(what: &str, f: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => return Err(e.context(what.to_string())),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Runs every checker over a recorded history.
pub fn check(h: &History, opts: &Options) -> Report {
    let mut report = Report::default();
    let mut text = String::new();
    let regs = crate::registers::check(&h.initial, &h.registers, opts.check_limit);
    let count = |o: Outcome| h.registers.iter().filter(|r| r.outcome == o).count();
    text.push_str(&format!(
        "registers: {} keys, {} ops ({} ok, {} failed, {} unknown), {} checked for linearizability, {} unobserved unknown writes dropped, {} anomalies{}\n",
        regs.keys,
        h.registers.len(),
        count(Outcome::Ok),
        count(Outcome::Fail),
        count(Outcome::Unknown),
        regs.ops_checked,
        regs.unknown_dropped,
        regs.anomalies.len(),
        if regs.timeouts.is_empty() {
            String::new()
        } else {
            format!(", search timed out on {:?}", regs.timeouts)
        }
    ));
    report.inconclusive = regs.timeouts;
    report.anomalies.extend(regs.anomalies);
    if opts.set {
        let s = crate::set::check(&h.sets, h.final_set.as_deref());
        text.push_str(&format!(
            "set: {} creates, {} acknowledged, unknown: {} present / {} absent, {} anomalies\n",
            s.attempted,
            s.acknowledged,
            s.unknown_present,
            s.unknown_absent,
            s.anomalies.len()
        ));
        report.anomalies.extend(s.anomalies);
    }
    if opts.watch {
        let mut acked = Vec::new();
        let mut attempted = HashSet::new();
        for op in &h.registers {
            if let RegKind::Cas { new, new_rv, .. } = op.kind {
                attempted.insert((op.key.clone(), Some(new.to_string())));
                if op.outcome == Outcome::Ok
                    && let Some(rv) = new_rv
                {
                    acked.push(Event {
                        rv,
                        kind: EventKind::Modified,
                        name: op.key.clone(),
                        value: Some(new.to_string()),
                    });
                }
            }
        }
        for op in &h.sets {
            attempted.insert((op.name.clone(), None));
            if op.outcome == Outcome::Ok
                && let Some(rv) = op.rv
            {
                acked.push(Event {
                    rv,
                    kind: EventKind::Added,
                    name: op.name.clone(),
                    value: None,
                });
            }
        }
        let w = crate::watch::check(&crate::watch::Input {
            start_rv: h.start_rv,
            final_rv: h.final_rv,
            reference: &h.reference,
            watches: &h.watches,
            acked: &acked,
            attempted: &attempted,
        });
        text.push_str(&format!(
            "watch: {} events in the final history, {} watchers saw {} events over {} watches with {} bookmarks, {} anomalies\n",
            w.reference_events, w.watchers, w.events_seen, w.restarts, w.bookmarks, w.anomalies.len()
        ));
        report.anomalies.extend(w.anomalies);
    }
    let faults: BTreeMap<String, usize> = h
        .nemesis
        .iter()
        .filter(|e| e.what != "healed" && !e.what.starts_with("note: "))
        .fold(BTreeMap::new(), |mut m, e| {
            let kind = e.what.split(' ').take(2).collect::<Vec<_>>().join(" ");
            *m.entry(kind).or_insert(0) += 1;
            m
        });
    text.push_str(&format!("nemesis: {faults:?}\n"));
    for e in h.nemesis.iter().filter(|e| e.what.starts_with("note: ")) {
        text.push_str(&format!("  [{}] {}\n", secs(e.at), &e.what[6..]));
    }
    text.push_str(&format!(
        "disk: {} anomalies (damaged logs served, torn tails refused)\n",
        h.disk.len()
    ));
    report.anomalies.extend(h.disk.iter().map(|d| Anomaly {
        checker: "disk",
        summary: d.clone(),
        excerpt: String::new(),
    }));
    report.stats = Stats {
        cas_ok: h
            .registers
            .iter()
            .filter(|o| o.outcome == Outcome::Ok && matches!(o.kind, RegKind::Cas { .. }))
            .count(),
        creates_ok: h.sets.iter().filter(|o| o.outcome == Outcome::Ok).count(),
        watch_events: h
            .watches
            .iter()
            .flat_map(|w| &w.entries)
            .filter(|e| matches!(e, crate::history::WatchEntry::Event(_)))
            .count(),
        faults: faults.values().sum(),
    };
    report.text = text;
    report
}
