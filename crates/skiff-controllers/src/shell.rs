//! What every controller shell shares: the shared informer caches (kube-rs reflectors, one per
//! kind, started once per term), the level-triggered loop (wake on a cache change or a requeue
//! deadline, coalesce bursts, back off on errors), expectations for writes the caches have not
//! seen yet, event recording, and the recognition of a `FencedOut` refusal.
//!
//! Invariants: a loop acts only after every cache it reads has synced; plans get clones of cached
//! objects; a `FencedOut` conflict stops the loop and tells the supervisor; other errors are
//! retried with exponential back-off (0.5 s doubling to 30 s).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};

use crate::events::{Record, event};
use crate::index::NamespaceIndex;
use crate::metrics::Metrics;

/// Why a shell stopped or a write failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused a write with a stale fence term: this member is no longer the leader.
    #[error("fenced out: a newer leader term exists")]
    FencedOut,
    /// The supervisor asked us to stop.
    #[error("stopped")]
    Stopped,
    /// Any other API error (retried).
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A cache never synced.
    #[error("cache did not sync: {0}")]
    CacheSync(String),
}

/// Result of shell operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether an API error is the store's fence refusal (409, `details.causes[0].reason: FencedOut`).
pub fn is_fenced_out(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => {
            status.code == 409
                && status
                    .details
                    .as_ref()
                    .and_then(|d| d.causes.first())
                    .is_some_and(|c| c.reason == "FencedOut")
        }
        _ => false,
    }
}

/// Whether an API error means "not found".
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Whether an API error means "already exists" or a stale resourceVersion (level-triggered
/// loops just try again on the next pass).
pub fn is_benign_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409 && !is_fenced_out(error))
}

/// Map a kube error: FencedOut becomes `Error::FencedOut`.
pub fn classify(error: kube::Error) -> Error {
    if is_fenced_out(&error) {
        Error::FencedOut
    } else {
        Error::Kube(error)
    }
}

/// One shared cache: a reflector store, an index of its objects by namespace (holding the
/// store's own `Arc`s) and a notification on every change.
#[derive(Clone)]
pub struct Cache<K: Resource + Clone + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    pub store: Store<K>,
    subscribers: Arc<Mutex<Vec<Arc<Notify>>>>,
    index: Arc<RwLock<NamespaceIndex<K>>>,
    /// True once the index holds the first list (it is built right after the store's).
    indexed: watch::Receiver<bool>,
}

impl<K> Cache<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Default,
{
    /// Start a reflector over all namespaces (or one) until `stop` flips.
    pub fn start(api: Api<K>, mut stop: watch::Receiver<bool>) -> Self {
        let (store, writer) = reflector::store();
        let subscribers: Arc<Mutex<Vec<Arc<Notify>>>> = Arc::default();
        let index: Arc<RwLock<NamespaceIndex<K>>> = Arc::default();
        let (indexed_tx, indexed) = watch::channel(false);
        let notify = subscribers.clone();
        let (reader, task_index) = (store.clone(), index.clone());
        // The reflector applies each event to the store before passing it on, so the store
        // already holds the object (as the `Arc` the index keeps) when the index sees it.
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    item = stream.next() => match item {
                        None => break,
                        Some(Ok(event)) => {
                            if let Ok(mut index) = task_index.write() {
                                match &event {
                                    watcher::Event::Apply(object) => {
                                        if let Some(stored) = reader.get(&ObjectRef::from_obj(object)) {
                                            index.upsert(stored);
                                        }
                                    }
                                    watcher::Event::Delete(object) => index.remove(object),
                                    watcher::Event::InitDone => {
                                        index.rebuild(reader.state());
                                        indexed_tx.send_replace(true);
                                    }
                                    watcher::Event::Init | watcher::Event::InitApply(_) => {}
                                }
                            }
                            if matches!(event, watcher::Event::Init) {
                                continue;
                            }
                            if let Ok(list) = notify.lock() {
                                for n in list.iter() {
                                    n.notify_one();
                                }
                            }
                        }
                        Some(Err(error)) => tracing::debug!(%error, "watch error (retrying)"),
                    }
                }
            }
        });
        Self {
            store,
            subscribers,
            index,
            indexed,
        }
    }

    /// Be woken on every change.
    pub fn subscribe(&self, wake: &Arc<Notify>) {
        if let Ok(mut list) = self.subscribers.lock() {
            list.push(wake.clone());
        }
    }

    /// Wait (at most 60 s) for the first list, in the store and in the namespace index.
    pub async fn synced(&self) -> Result<()> {
        let kind = std::any::type_name::<K>();
        let timeout = || Error::CacheSync(kind.to_string());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        tokio::time::timeout_at(deadline, self.store.wait_until_ready())
            .await
            .map_err(|_| timeout())?
            .map_err(|e| Error::CacheSync(e.to_string()))?;
        let mut indexed = self.indexed.clone();
        tokio::time::timeout_at(deadline, indexed.wait_for(|ready| *ready))
            .await
            .map_err(|_| timeout())?
            .map_err(|_| Error::CacheSync(format!("{kind} (its watch stopped)")))?;
        Ok(())
    }

    /// Clones of every cached object.
    pub fn list(&self) -> Vec<K> {
        self.store.state().iter().map(|o| (**o).clone()).collect()
    }

    /// Every cached object, shared rather than copied: for a pass that reads a few of many
    /// (a deep copy of 10,000 pods on every node lifecycle pass took 12% of the leader's CPU
    /// while the scheduler bench ran).
    pub fn shared(&self) -> Vec<Arc<K>> {
        self.store.state()
    }

    /// Clones of the cached objects in these namespaces only, from the namespace index: objects
    /// elsewhere cost nothing. A controller woken by every pod change must not copy, or even
    /// look at, thousands of pods it has no owner for (with 10,000 pods, whole copies by seven
    /// controllers on every wake starved the API server of CPU; a scan without copies still
    /// took a tenth of the leader's CPU while the scheduler bench ran).
    pub fn list_in(&self, namespaces: &HashSet<String>) -> Vec<K> {
        if namespaces.is_empty() {
            return Vec::new();
        }
        if let Ok(index) = self.index.read() {
            return index
                .in_namespaces(namespaces)
                .map(|o| (**o).clone())
                .collect();
        }
        // A poisoned lock (a panic while indexing): scan the store instead.
        self.store
            .state()
            .iter()
            .filter(|o| {
                o.meta()
                    .namespace
                    .as_ref()
                    .is_some_and(|ns| namespaces.contains(ns))
            })
            .map(|o| (**o).clone())
            .collect()
    }
}

/// The namespaces these objects live in.
pub fn namespaces_of<K: Resource>(objects: &[K]) -> HashSet<String> {
    objects
        .iter()
        .filter_map(|o| o.meta().namespace.clone())
        .collect()
}

/// What a controller loop needs.
pub struct Context {
    pub client: Client,
    pub stop: watch::Receiver<bool>,
    pub fenced: watch::Sender<bool>,
    pub metrics: Arc<Metrics>,
    pub expectations: Expectations,
}

impl Context {
    /// Record an event about an object.
    pub async fn record(&self, object: &ObjectReference, record: &Record) {
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.client.clone(), &namespace);
        let event = event(record, object, "skiff-controller-manager", Timestamp::now());
        if let Err(error) = api.create(&Default::default(), &event).await {
            if is_fenced_out(&error) {
                let _ = self.fenced.send(true);
            }
            tracing::debug!(%error, reason = %record.reason, "could not record event");
        }
    }
}

/// Names expected to appear, uids expected to disappear, and since when.
type Expected = (HashSet<String>, HashSet<String>, Instant);

/// Writes a controller made that its caches have not shown yet, per owner (kube's
/// "expectations"): planning for that owner waits until they are seen or 30 s pass.
#[derive(Default, Clone)]
pub struct Expectations {
    inner: Arc<Mutex<HashMap<String, Expected>>>,
}

impl Expectations {
    /// Expect these names to appear and these uids to disappear for `owner`.
    pub fn expect(&self, owner: &str, created: Vec<String>, deleted: Vec<String>) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        if let Ok(mut map) = self.inner.lock() {
            let entry = map
                .entry(owner.to_string())
                .or_insert_with(|| (HashSet::new(), HashSet::new(), Instant::now()));
            entry.0.extend(created);
            entry.1.extend(deleted);
            entry.2 = Instant::now();
        }
    }

    /// Whether `owner`'s expectations are met given the names and uids now cached (live means
    /// not being deleted).
    pub fn satisfied(
        &self,
        owner: &str,
        present_names: &HashSet<String>,
        live_uids: &HashSet<String>,
    ) -> bool {
        let Ok(mut map) = self.inner.lock() else {
            return true;
        };
        let Some((created, deleted, since)) = map.get_mut(owner) else {
            return true;
        };
        created.retain(|n| !present_names.contains(n));
        deleted.retain(|u| live_uids.contains(u));
        let done =
            (created.is_empty() && deleted.is_empty()) || since.elapsed() > Duration::from_secs(30);
        if done {
            map.remove(owner);
        }
        done
    }
}

/// Run a level-triggered loop: call `pass` after any of `wake` fires (coalescing bursts for
/// 20 ms) or when the requeue it returned is due; stop on `Stopped`/`FencedOut`.
pub async fn run_loop<F, Fut>(
    ctx: Arc<Context>,
    name: &'static str,
    wake: Arc<Notify>,
    mut pass: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<Duration>>>,
{
    let mut stop = ctx.stop.clone();
    let mut backoff = Duration::from_millis(500);
    let mut next: Option<Instant> = Some(Instant::now());
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let sleep = match next {
            Some(at) => tokio::time::sleep_until(at.into()),
            None => tokio::time::sleep(Duration::from_secs(300)),
        };
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = wake.notified() => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ = sleep => {}
        }
        ctx.metrics.queue_depth.with_label_values(&[name]).set(1);
        let started = Instant::now();
        let result = pass().await;
        ctx.metrics.queue_depth.with_label_values(&[name]).set(0);
        ctx.metrics
            .observe_reconcile(name, started.elapsed(), result.is_ok());
        match result {
            Ok(requeue) => {
                backoff = Duration::from_millis(500);
                next = requeue.map(|d| Instant::now() + d);
            }
            Err(Error::FencedOut) => {
                tracing::warn!(controller = name, "fenced out: stopping");
                let _ = ctx.fenced.send(true);
                return Err(Error::FencedOut);
            }
            Err(Error::Stopped) => return Ok(()),
            Err(error) => {
                tracing::warn!(controller = name, %error, retry_in = ?backoff, "reconcile failed");
                next = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The smaller of two optional requeue delays (in seconds) as a Duration.
pub fn sooner(a: Option<Duration>, seconds: Option<i64>) -> Option<Duration> {
    let b = seconds.map(|s| Duration::from_secs(s.max(0) as u64));
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Apply a write, mapping a fence refusal to `FencedOut` and ignoring benign conflicts and
/// not-found (the next pass sees the new state); returns whether it succeeded.
pub async fn write<T>(
    what: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<Option<T>> {
    match call.await {
        Ok(value) => Ok(Some(value)),
        Err(error) if is_fenced_out(&error) => Err(Error::FencedOut),
        Err(error) if is_benign_conflict(&error) || is_not_found(&error) => {
            tracing::debug!(%error, what, "write skipped; next pass will retry");
            Ok(None)
        }
        Err(error) => Err(Error::Kube(error)),
    }
}

#[cfg(test)]
mod tests;
