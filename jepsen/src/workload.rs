//! The clients: register workers (CAS on ConfigMaps with resourceVersion preconditions, reads
//! with and without resourceVersion=0), set workers (creates of unique names), watchers.
//! Each worker talks to one member through its own kube client; every operation is bounded by
//! a timeout and recorded once, never retried.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, GetParams, PostParams, WatchEvent, WatchParams};
use kube::core::ObjectMeta;
use rand::Rng;

use crate::history::{Event, EventKind, Outcome, RegKind, RegOp, SetOp, WatchEntry, WatchLog};

pub const NAMESPACE: &str = "jepsen";
pub const LABEL: &str = "skiff-jepsen";

/// A kube client for one member, with the operation timeout as its read timeout.
pub async fn client(kubeconfig: &Path, timeout: Duration) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    config.read_timeout = Some(timeout);
    config.connect_timeout = Some(Duration::from_secs(2));
    config.write_timeout = Some(timeout);
    // kube retries 429/503/504 by default. A retried conditional write that did commit the
    // first time comes back 409, which would look like a definite failure: the checker must
    // see each answer as the server gave it.
    config.default_retry = false;
    Ok(kube::Client::try_from(config)?)
}

/// How a failed request ended, as far as the client can tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// 409: a precondition (resourceVersion, or create-if-absent) did not hold.
    Conflict,
    NotFound,
    /// The connection was refused (the member is down). Not proof that nothing was sent: the
    /// client may have sent the request on a pooled connection first.
    Refused,
    Other,
}

pub fn classify(e: &kube::Error) -> Failure {
    if let kube::Error::Api(s) = e {
        return match s.code {
            409 => Failure::Conflict,
            404 => Failure::NotFound,
            _ => Failure::Other,
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Failure::Refused;
        }
        source = err.source();
    }
    Failure::Other
}

pub struct Recorder {
    pub start: Instant,
    pub registers: Mutex<Vec<RegOp>>,
    pub sets: Mutex<Vec<SetOp>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            registers: Mutex::new(Vec::new()),
            sets: Mutex::new(Vec::new()),
        }
    }
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn reg(&self, op: RegOp) {
        if let Ok(mut v) = self.registers.lock() {
            v.push(op);
        }
    }
    fn set(&self, op: SetOp) {
        if let Ok(mut v) = self.sets.lock() {
            v.push(op);
        }
    }
}

pub fn rv_of(meta: &ObjectMeta) -> Option<u64> {
    meta.resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
}

pub fn value_of(cm: &ConfigMap) -> Option<u64> {
    cm.data
        .as_ref()
        .and_then(|d| d.get("value"))
        .and_then(|v| v.parse().ok())
}

/// A ConfigMap of the workload.
pub fn config_map(name: &str, value: Option<u64>, rv: Option<u64>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NAMESPACE.into()),
            resource_version: rv.map(|r| r.to_string()),
            labels: Some([(LABEL.to_string(), "1".to_string())].into()),
            ..ObjectMeta::default()
        },
        data: value.map(|v| [("value".to_string(), v.to_string())].into()),
        ..ConfigMap::default()
    }
}

pub struct Worker {
    pub process: u32,
    pub member: usize,
    pub api: Api<ConfigMap>,
    pub timeout: Duration,
    pub rec: Arc<Recorder>,
}

/// A linearizable read (no resourceVersion) or a stale one (resourceVersion=0); recorded.
pub async fn read(w: &Worker, key: &str, stale: bool) -> Option<(Option<u64>, Option<u64>)> {
    let call = w.rec.now();
    let gp = if stale {
        GetParams::any()
    } else {
        GetParams::default()
    };
    let r = tokio::time::timeout(w.timeout, w.api.get_with(key, &gp)).await;
    let ret = w.rec.now();
    let (outcome, value, rv) = match r {
        Ok(Ok(cm)) => (Outcome::Ok, value_of(&cm), rv_of(&cm.metadata)),
        Ok(Err(e)) if classify(&e) == Failure::NotFound => (Outcome::Ok, None, None),
        _ => (Outcome::Unknown, None, None),
    };
    let kind = if stale {
        RegKind::StaleRead { value, rv }
    } else {
        RegKind::Read { value, rv }
    };
    w.rec.reg(RegOp {
        process: w.process,
        member: w.member,
        key: key.into(),
        call,
        ret,
        outcome,
        kind,
    });
    (outcome == Outcome::Ok).then_some((value, rv))
}

/// Runs register operations on `keys` until `stop`.
pub async fn register_worker(w: Worker, keys: Vec<String>, stop: Arc<AtomicBool>, seed: u64) {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // What this worker last saw of each key: (value, rv).
    let mut known: HashMap<String, (u64, u64)> = HashMap::new();
    let mut counter: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = keys[rng.random_range(0..keys.len())].clone();
        let dice: f64 = rng.random();
        if dice < 0.3 || (dice >= 0.45 && !known.contains_key(&key)) {
            match read(&w, &key, false).await {
                Some((Some(v), Some(rv))) => {
                    known.insert(key, (v, rv));
                }
                Some(_) => {
                    known.remove(&key);
                }
                None => {
                    known.remove(&key);
                    tokio::time::sleep(Duration::from_millis(rng.random_range(50..300))).await;
                }
            }
        } else if dice < 0.45 {
            read(&w, &key, true).await;
        } else if let Some(&(expect, expect_rv)) = known.get(&key) {
            counter += 1;
            let new = u64::from(w.process) * 1_000_000 + counter;
            let cm = config_map(&key, Some(new), Some(expect_rv));
            let call = w.rec.now();
            let r =
                tokio::time::timeout(w.timeout, w.api.replace(&key, &PostParams::default(), &cm))
                    .await;
            let ret = w.rec.now();
            let mut unavailable = true;
            let (outcome, new_rv) = match r {
                Ok(Ok(cm)) => {
                    unavailable = false;
                    (Outcome::Ok, rv_of(&cm.metadata))
                }
                Ok(Err(e)) => match classify(&e) {
                    Failure::Conflict => {
                        unavailable = false;
                        (Outcome::Fail, None)
                    }
                    // A refused connection may be hyper retrying a request it already sent
                    // on a pooled connection: not a definite failure.
                    _ => (Outcome::Unknown, None),
                },
                Err(_) => (Outcome::Unknown, None),
            };
            match (outcome, new_rv) {
                (Outcome::Ok, Some(rv)) => {
                    known.insert(key.clone(), (new, rv));
                }
                _ => {
                    known.remove(&key);
                }
            }
            if unavailable {
                // Back off a little from a member that is down or cut off.
                tokio::time::sleep(Duration::from_millis(rng.random_range(50..300))).await;
            }
            w.rec.reg(RegOp {
                process: w.process,
                member: w.member,
                key,
                call,
                ret,
                outcome,
                kind: RegKind::Cas {
                    expect,
                    expect_rv,
                    new,
                    new_rv,
                },
            });
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..20))).await;
    }
}

/// Creates uniquely named ConfigMaps until `stop`.
pub async fn set_worker(w: Worker, stop: Arc<AtomicBool>, seed: u64) {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("set-p{}-{n}", w.process);
        let cm = config_map(&name, None, None);
        let call = w.rec.now();
        let r = tokio::time::timeout(w.timeout, w.api.create(&PostParams::default(), &cm)).await;
        let ret = w.rec.now();
        let (outcome, rv) = match r {
            Ok(Ok(cm)) => (Outcome::Ok, rv_of(&cm.metadata)),
            _ => (Outcome::Unknown, None),
        };
        if outcome != Outcome::Ok {
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..300))).await;
        }
        w.rec.set(SetOp {
            process: w.process,
            member: w.member,
            name,
            call,
            ret,
            outcome,
            rv,
        });
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..40))).await;
    }
}

/// Whether a watch event is about the workload's objects.
pub fn ours(name: &str) -> bool {
    name.starts_with("reg-") || name.starts_with("set-")
}

pub fn event(kind: EventKind, cm: &ConfigMap) -> Option<Event> {
    let name = cm.metadata.name.clone()?;
    Some(Event {
        rv: rv_of(&cm.metadata)?,
        kind,
        value: cm.data.as_ref().and_then(|d| d.get("value")).cloned(),
        name,
    })
}

/// Shared by the harness and the watchers: the final revision (0 until known) and "stop".
pub struct WatchControl {
    pub final_rv: AtomicU64,
    pub stop: AtomicBool,
}

/// Watches from `start_rv`, resuming from the last revision seen (event or bookmark) on the
/// next member after every end or error, until it reached the final revision or is stopped.
pub async fn watcher(
    id: u32,
    apis: Vec<Api<ConfigMap>>,
    start_rv: u64,
    ctl: Arc<WatchControl>,
    rec: Arc<Recorder>,
    seed: u64,
) -> WatchLog {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut log = WatchLog {
        watcher: id,
        ..WatchLog::default()
    };
    let mut last = start_rv;
    let mut member = id as usize % apis.len();
    'outer: loop {
        let target = ctl.final_rv.load(Ordering::SeqCst);
        if target > 0 && last >= target {
            log.caught_up = true;
            break;
        }
        if ctl.stop.load(Ordering::SeqCst) {
            break;
        }
        log.entries.push(WatchEntry::Start {
            member,
            from_rv: last,
            at: rec.now(),
        });
        let wp = WatchParams::default()
            // Bookmarks are on by default.
            .timeout(rng.random_range(10..45));
        let stream = match apis[member].watch(&wp, &last.to_string()).await {
            Ok(s) => s,
            Err(e) => {
                log.entries.push(WatchEntry::Error {
                    message: format!("m{}: {e}", member + 1),
                    gone: false,
                });
                member = (member + 1) % apis.len();
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        loop {
            let target = ctl.final_rv.load(Ordering::SeqCst);
            if (target > 0 && last >= target) || ctl.stop.load(Ordering::SeqCst) {
                continue 'outer;
            }
            let item = match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
                Err(_) => continue,
                Ok(None) => break,
                Ok(Some(item)) => item,
            };
            match item {
                Ok(WatchEvent::Added(cm)) => record(&mut log, &mut last, EventKind::Added, &cm),
                Ok(WatchEvent::Modified(cm)) => {
                    record(&mut log, &mut last, EventKind::Modified, &cm)
                }
                Ok(WatchEvent::Deleted(cm)) => record(&mut log, &mut last, EventKind::Deleted, &cm),
                Ok(WatchEvent::Bookmark(b)) => {
                    if let Ok(rv) = b.metadata.resource_version.parse::<u64>() {
                        log.entries.push(WatchEntry::Bookmark { rv });
                        last = last.max(rv);
                    }
                }
                Ok(WatchEvent::Error(s)) => {
                    let gone = s.code == 410;
                    log.entries.push(WatchEntry::Error {
                        message: format!("m{}: {} {}", member + 1, s.code, s.message),
                        gone,
                    });
                    if gone {
                        break 'outer;
                    }
                    break;
                }
                Err(e) => {
                    log.entries.push(WatchEntry::Error {
                        message: format!("m{}: {e}", member + 1),
                        gone: false,
                    });
                    break;
                }
            }
        }
        member = (member + 1) % apis.len();
    }
    log
}

fn record(log: &mut WatchLog, last: &mut u64, kind: EventKind, cm: &ConfigMap) {
    let Some(e) = event(kind, cm) else {
        return;
    };
    if !ours(&e.name) {
        return;
    }
    *last = e.rv;
    log.entries.push(WatchEntry::Event(e));
}

/// Collects every event of the workload's objects from `from_rv` through `until_rv`; gives up
/// when `limit` passes without a new event (an hour's history takes minutes to replay).
pub async fn reference(
    api: &Api<ConfigMap>,
    from_rv: u64,
    until_rv: u64,
    limit: Duration,
) -> anyhow::Result<Vec<Event>> {
    let mut deadline = Instant::now() + limit;
    let mut events: Vec<Event> = Vec::new();
    let mut last = from_rv;
    while last < until_rv {
        if Instant::now() > deadline {
            anyhow::bail!(
                "the reference watch reached only rv {last} of {until_rv}, and nothing came for {limit:?}"
            );
        }
        let wp = WatchParams::default().timeout(30);
        let Ok(stream) = api.watch(&wp, &last.to_string()).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut stream = std::pin::pin!(stream);
        while last < until_rv {
            let Ok(Some(item)) = tokio::time::timeout(
                deadline.saturating_duration_since(Instant::now()),
                stream.next(),
            )
            .await
            else {
                break;
            };
            let (kind, cm) = match item {
                Ok(WatchEvent::Added(cm)) => (EventKind::Added, cm),
                Ok(WatchEvent::Modified(cm)) => (EventKind::Modified, cm),
                Ok(WatchEvent::Deleted(cm)) => (EventKind::Deleted, cm),
                Ok(WatchEvent::Error(s)) => {
                    anyhow::bail!("reference watch: {} {}", s.code, s.message)
                }
                Ok(WatchEvent::Bookmark(_)) => continue,
                Err(_) => break,
            };
            if let Some(e) = event(kind, &cm)
                && ours(&e.name)
            {
                last = e.rv;
                events.push(e);
            }
            deadline = Instant::now() + limit;
        }
    }
    Ok(events)
}
