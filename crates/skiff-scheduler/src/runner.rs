//! The scheduler's shell: watch pods, nodes, namespaces, PVCs, PVs, storage classes and PDBs with
//! kube-rs; keep the snapshot and the queue; schedule pending pods (`schedulerName:
//! default-scheduler`, no scheduling gates) in priority order; bind through `pods/{name}/binding`
//! (after setting `volume.kubernetes.io/selected-node` on WaitForFirstConsumer claims); on
//! failure preempt if possible and set `PodScheduled=False` (reason Unschedulable, the aggregate
//! message) and record a `FailedScheduling` event; retry parked pods when nodes or pods change
//! and at least every minute.
//!
//! Invariants: nothing is scheduled before the first lists of nodes and pods are in; an assumed
//! pod counts on its node until the watch confirms or the binding fails; a `FencedOut` refusal
//! stops the runner at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{
    Event, Namespace, Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::metrics::Metrics;
use crate::preemption::{Outcome, PdbInfo, preempt};
use crate::schedule::{Algorithm, Error as ScheduleError, assumed};
use crate::snapshot::{Snapshot, is_terminal};

/// Why the runner stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A write was refused with a stale fence term: a newer leader exists.
    #[error("fenced out")]
    FencedOut,
}

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The scheduler name pods must ask for.
    pub scheduler_name: String,
    /// Concurrent binding requests.
    pub bind_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            scheduler_name: "default-scheduler".into(),
            bind_concurrency: 64,
        }
    }
}

impl Config {
    /// Every problem with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.scheduler_name.is_empty() {
            problems.push("scheduler name must not be empty".into());
        }
        if self.bind_concurrency == 0 {
            problems.push("bind concurrency must be at least 1".into());
        }
        problems
    }
}

#[allow(
    clippy::large_enum_variant,
    reason = "inputs live briefly in one bounded channel; boxing every watch event costs more"
)]
enum Input {
    Pod(watcher::Event<Pod>),
    Node(watcher::Event<Node>),
    Namespace(watcher::Event<Namespace>),
    Claim(watcher::Event<PersistentVolumeClaim>),
    Volume(watcher::Event<PersistentVolume>),
    Class(watcher::Event<StorageClass>),
    Budget(watcher::Event<PodDisruptionBudget>),
    /// A binding failed: forget the assumption and retry.
    BindFailed(String, Arc<Pod>),
    Fenced,
}

fn key_of(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn watch_stream<K>(
    api: Api<K>,
    wrap: fn(watcher::Event<K>) -> Input,
) -> impl Stream<Item = Input> + Send
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| async move { event.ok().map(wrap) })
}

struct State {
    snapshot: Snapshot,
    queue: crate::queue::Queue,
    pending: HashMap<String, Arc<Pod>>,
    budgets: HashMap<String, PodDisruptionBudget>,
    nodes_synced: bool,
    pods_synced: bool,
    changed: bool,
    scheduler_name: String,
    /// While a watch relists: the pods and nodes seen so far (the rest are gone after it).
    relist_pods: Option<HashSet<String>>,
    relist_nodes: Option<HashSet<String>>,
}

impl State {
    fn wants(&self, pod: &Pod) -> bool {
        let spec = pod.spec.as_ref();
        spec.and_then(|s| s.node_name.as_deref())
            .unwrap_or_default()
            .is_empty()
            && spec
                .and_then(|s| s.scheduler_name.as_deref())
                .unwrap_or("default-scheduler")
                == self.scheduler_name
            && spec
                .and_then(|s| s.scheduling_gates.as_ref())
                .is_none_or(Vec::is_empty)
            && pod.metadata.deletion_timestamp.is_none()
            && !is_terminal(pod)
    }

    fn apply_pod(&mut self, pod: Pod) {
        let key = key_of(&pod);
        let pod = Arc::new(pod);
        if self.wants(&pod) {
            self.pending.insert(key.clone(), pod.clone());
            self.queue.add(key, pod);
        } else {
            self.pending.remove(&key);
            self.queue.remove(&key);
            self.snapshot.upsert_pod(pod);
            self.changed = true;
        }
    }

    fn delete_pod(&mut self, pod: &Pod) {
        let key = key_of(pod);
        self.pending.remove(&key);
        self.queue.remove(&key);
        self.snapshot.remove_pod(pod);
        self.changed = true;
    }

    fn handle(&mut self, input: Input) -> bool {
        use watcher::Event::*;
        match input {
            Input::Pod(Init) => self.relist_pods = Some(HashSet::new()),
            Input::Pod(InitApply(pod)) => {
                if let Some(seen) = self.relist_pods.as_mut() {
                    seen.insert(key_of(&pod));
                }
                self.apply_pod(pod);
            }
            Input::Pod(Apply(pod)) => self.apply_pod(pod),
            Input::Pod(Delete(pod)) => self.delete_pod(&pod),
            Input::Pod(InitDone) => {
                if let Some(seen) = self.relist_pods.take() {
                    for gone in self
                        .snapshot
                        .assigned_pods()
                        .filter(|p| !seen.contains(&p.key()))
                        .map(|p| p.pod.clone())
                        .collect::<Vec<_>>()
                    {
                        self.delete_pod(&gone);
                    }
                    let stale: Vec<Arc<Pod>> = self
                        .pending
                        .iter()
                        .filter(|(k, _)| !seen.contains(*k))
                        .map(|(_, p)| p.clone())
                        .collect();
                    for gone in stale {
                        self.delete_pod(&gone);
                    }
                }
                self.pods_synced = true;
            }
            Input::Node(Init) => self.relist_nodes = Some(HashSet::new()),
            Input::Node(InitApply(node)) => {
                if let Some(seen) = self.relist_nodes.as_mut() {
                    seen.insert(node.metadata.name.clone().unwrap_or_default());
                }
                self.snapshot.upsert_node(Arc::new(node));
                self.changed = true;
            }
            Input::Node(Apply(node)) => {
                self.snapshot.upsert_node(Arc::new(node));
                self.changed = true;
            }
            Input::Node(Delete(node)) => {
                self.snapshot
                    .remove_node(node.metadata.name.as_deref().unwrap_or_default());
                self.changed = true;
            }
            Input::Node(InitDone) => {
                if let Some(seen) = self.relist_nodes.take() {
                    let gone: Vec<String> = self
                        .snapshot
                        .nodes()
                        .iter()
                        .map(|n| n.name.clone())
                        .filter(|n| !seen.contains(n))
                        .collect();
                    for name in gone {
                        self.snapshot.remove_node(&name);
                    }
                }
                self.nodes_synced = true;
            }
            Input::Namespace(Apply(ns) | InitApply(ns)) => {
                let name = ns.metadata.name.clone().unwrap_or_default();
                self.snapshot
                    .upsert_namespace(&name, ns.metadata.labels.clone().unwrap_or_default());
            }
            Input::Namespace(Delete(ns)) => self
                .snapshot
                .remove_namespace(ns.metadata.name.as_deref().unwrap_or_default()),
            Input::Claim(Apply(c) | InitApply(c)) => {
                self.snapshot.upsert_pvc(Arc::new(c));
                self.changed = true;
            }
            Input::Claim(Delete(c)) => self.snapshot.remove_pvc(
                c.metadata.namespace.as_deref().unwrap_or_default(),
                c.metadata.name.as_deref().unwrap_or_default(),
            ),
            Input::Volume(Apply(v) | InitApply(v)) => {
                self.snapshot.upsert_pv(Arc::new(v));
                self.changed = true;
            }
            Input::Volume(Delete(v)) => self
                .snapshot
                .remove_pv(v.metadata.name.as_deref().unwrap_or_default()),
            Input::Class(Apply(c) | InitApply(c)) => {
                self.snapshot.upsert_storage_class(Arc::new(c))
            }
            Input::Class(Delete(c)) => self
                .snapshot
                .remove_storage_class(c.metadata.name.as_deref().unwrap_or_default()),
            Input::Budget(Apply(b) | InitApply(b)) => {
                self.budgets.insert(key_of_meta(&b.metadata), b);
            }
            Input::Budget(Delete(b)) => {
                self.budgets.remove(&key_of_meta(&b.metadata));
            }
            Input::BindFailed(key, pod) => {
                self.snapshot.remove_pod(&assumed(&pod, "-"));
                let mut unassumed = (*pod).clone();
                if let Some(spec) = unassumed.spec.as_mut() {
                    spec.node_name = None;
                }
                self.pending
                    .insert(key.clone(), Arc::new(unassumed.clone()));
                self.queue.add(key, Arc::new(unassumed));
            }
            Input::Fenced => return false,
            _ => {}
        }
        true
    }

    fn pdbs(&self) -> Vec<PdbInfo> {
        self.budgets
            .values()
            .map(|b| PdbInfo {
                namespace: b.metadata.namespace.clone().unwrap_or_default(),
                selector: b
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .and_then(|s| serde_json::to_value(s).ok())
                    .and_then(|v| skiff_core::selector::LabelSelector::from_json(&v).ok())
                    .unwrap_or_else(skiff_core::selector::LabelSelector::nothing),
                disruptions_allowed: b
                    .status
                    .as_ref()
                    .map(|s| s.disruptions_allowed)
                    .unwrap_or(0),
            })
            .collect()
    }
}

fn key_of_meta(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn fenced(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 409
        && s.details.as_ref().and_then(|d| d.causes.first()).is_some_and(|c| c.reason == "FencedOut"))
}

/// Run the scheduler until `stop` flips (Ok) or a write is fenced out (Err).
pub async fn run(
    client: Client,
    config: Config,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let (tx, mut rx) = mpsc::channel::<Input>(4096);
    let streams = futures::stream::select_all(vec![
        watch_stream(Api::<Pod>::all(client.clone()), Input::Pod).boxed(),
        watch_stream(Api::<Node>::all(client.clone()), Input::Node).boxed(),
        watch_stream(Api::<Namespace>::all(client.clone()), Input::Namespace).boxed(),
        watch_stream(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            Input::Claim,
        )
        .boxed(),
        watch_stream(Api::<PersistentVolume>::all(client.clone()), Input::Volume).boxed(),
        watch_stream(Api::<StorageClass>::all(client.clone()), Input::Class).boxed(),
        watch_stream(
            Api::<PodDisruptionBudget>::all(client.clone()),
            Input::Budget,
        )
        .boxed(),
    ]);
    let mut streams = std::pin::pin!(streams);
    let mut state = State {
        snapshot: Snapshot::new(),
        queue: crate::queue::Queue::new(),
        pending: HashMap::new(),
        budgets: HashMap::new(),
        nodes_synced: false,
        pods_synced: false,
        changed: false,
        scheduler_name: config.scheduler_name.clone(),
        relist_pods: None,
        relist_nodes: None,
    };
    let mut algorithm = Algorithm::new();
    let binds = Arc::new(Semaphore::new(config.bind_concurrency.max(1)));
    // Scheduled Events are written after their binding, as many at a time as bindings.
    let events = Arc::new(Semaphore::new(config.bind_concurrency.max(1)));
    let mut last_flush = Instant::now();
    loop {
        // Drain everything that arrived, then schedule one pod.
        let ready = state.nodes_synced && state.pods_synced;
        let idle = !ready || state.queue.counts().0 == 0;
        let wait = if idle {
            Duration::from_millis(500)
        } else {
            Duration::ZERO
        };
        tokio::select! {
            biased;
            _ = stop.changed() => return Ok(()),
            Some(input) = rx.recv() => {
                if !state.handle(input) {
                    return Err(Error::FencedOut);
                }
                continue;
            }
            Some(input) = streams.next() => {
                state.handle(input);
                continue;
            }
            _ = tokio::time::sleep(wait) => {}
        }
        if *stop.borrow() {
            return Ok(());
        }
        let now = Instant::now();
        if state.changed || now.duration_since(last_flush) > Duration::from_secs(1) {
            state.queue.retry_parked(now, state.changed);
            state.changed = false;
            last_flush = now;
        }
        let (active, parked) = state.queue.counts();
        metrics
            .pending
            .with_label_values(&["active"])
            .set(active as i64);
        metrics
            .pending
            .with_label_values(&["unschedulable"])
            .set(parked as i64);
        if !ready {
            continue;
        }
        let Some((key, pod)) = state.queue.pop() else {
            continue;
        };
        let started = Instant::now();
        match algorithm.schedule(&state.snapshot, pod.clone()) {
            Ok(decision) => {
                let bound = Arc::new(assumed(&pod, &decision.node));
                state.snapshot.upsert_pod(bound.clone());
                state.pending.remove(&key);
                state.queue.remove(&key);
                let permit = binds.clone().acquire_owned().await;
                let claims = delayed_claims(&state.snapshot, &pod);
                let (client, tx, metrics) = (client.clone(), tx.clone(), metrics.clone());
                let events = events.clone();
                tokio::spawn(async move {
                    match bind(&client, &pod, &decision.node, &claims).await {
                        Ok(()) => {
                            metrics.attempt("scheduled", started.elapsed().as_secs_f64());
                            // The pod is bound: the next binding need not wait for its Event.
                            drop(permit);
                            let Ok(_event) = events.acquire_owned().await else {
                                return;
                            };
                            if let Err(error) =
                                record_scheduled(&client, &pod, &decision.node).await
                            {
                                tracing::debug!(%error, "the Scheduled event was not recorded");
                                if fenced(&error) {
                                    let _ = tx.send(Input::Fenced).await;
                                }
                            }
                        }
                        Err(error) => {
                            metrics.attempt("error", started.elapsed().as_secs_f64());
                            let input = if fenced(&error) {
                                Input::Fenced
                            } else {
                                Input::BindFailed(key, bound)
                            };
                            tracing::warn!(%error, "binding failed");
                            let _ = tx.send(input).await;
                        }
                    }
                });
            }
            Err((error, cycle)) => {
                let mut message = error.to_string();
                let mut nomination = None;
                if let (ScheduleError::Fit(fit), Some(cycle)) = (&error, cycle) {
                    metrics.preemption_attempts.inc();
                    let mut fit = (**fit).clone();
                    match preempt(&state.snapshot, &cycle, &fit, &state.pdbs()) {
                        Outcome::Nominated(n) => nomination = Some(n),
                        Outcome::Failed(post) => fit.post_filter_message = Some(post),
                    }
                    message = fit.message();
                }
                metrics.attempt("unschedulable", started.elapsed().as_secs_f64());
                state.queue.park(&key, Instant::now());
                let (client, tx) = (client.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Err(error) = report_failure(&client, &pod, &message, nomination).await
                        && fenced(&error)
                    {
                        let _ = tx.send(Input::Fenced).await;
                    }
                });
            }
        }
    }
}

fn delayed_claims(snapshot: &Snapshot, pod: &Pod) -> Vec<String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.clone())
        })
        .filter(|claim| {
            snapshot.pvc(namespace, claim).is_some_and(|c| {
                c.spec
                    .as_ref()
                    .and_then(|s| s.volume_name.as_deref())
                    .unwrap_or_default()
                    .is_empty()
                    && c.metadata
                        .annotations
                        .as_ref()
                        .is_none_or(|a| !a.contains_key("volume.kubernetes.io/selected-node"))
            })
        })
        .collect()
}

async fn bind(
    client: &Client,
    pod: &Pod,
    node: &str,
    claims: &[String],
) -> Result<(), kube::Error> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    for claim in claims {
        let patch =
            json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": node}}});
        claims_api
            .patch(claim, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}
    });
    pods.create_subresource::<serde_json::Value, serde_json::Value>(
        "binding",
        &name,
        &PostParams::default(),
        &binding,
    )
    .await?;
    Ok(())
}

/// The `Scheduled` Event of a bound pod.
async fn record_scheduled(client: &Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    record(
        client,
        pod,
        false,
        "Scheduled",
        &format!("Successfully assigned {namespace}/{name} to {node}"),
    )
    .await
}

async fn report_failure(
    client: &Client,
    pod: &Pod,
    message: &str,
    nomination: Option<crate::preemption::Nomination>,
) -> Result<(), kube::Error> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let mut status = json!({"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
        "lastTransitionTime": Timestamp::now().to_string(), "lastProbeTime": null
    }]});
    if let Some(nomination) = &nomination {
        status["nominatedNodeName"] = json!(nomination.node);
        let mut seen = HashSet::new();
        for victim in &nomination.victims {
            let Some((victim_ns, victim_name)) = victim.split_once('/') else {
                continue;
            };
            if !seen.insert(victim.clone()) {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), victim_ns);
            match api.delete(victim_name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(error) if fenced(&error) => return Err(error),
                Err(error) => tracing::debug!(%error, victim, "could not preempt"),
            }
            let mut victim_pod = Pod::default();
            victim_pod.metadata.name = Some(victim_name.into());
            victim_pod.metadata.namespace = Some(victim_ns.into());
            let by = pod.metadata.uid.clone().unwrap_or_default();
            record(
                client,
                &victim_pod,
                false,
                "Preempted",
                &format!("Preempted by pod {by} on node {}", nomination.node),
            )
            .await?;
        }
    }
    let patch = json!({"status": status});
    match pods
        .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        Ok(_) => {}
        Err(error) if fenced(&error) => return Err(error),
        Err(error) => tracing::debug!(%error, "could not set PodScheduled"),
    }
    record(client, pod, true, "FailedScheduling", message).await
}

async fn record(
    client: &Client,
    pod: &Pod,
    warning: bool,
    reason: &str,
    message: &str,
) -> Result<(), kube::Error> {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let now = Timestamp::now();
    let event = Event {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                pod.metadata.name.as_deref().unwrap_or("pod"),
                now.as_nanosecond()
            )),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        source: Some(k8s_openapi::api::core::v1::EventSource {
            component: Some("default-scheduler".into()),
            host: None,
        }),
        reporting_component: Some("default-scheduler".into()),
        first_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
        last_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => Ok(()),
        Err(error) if fenced(&error) => Err(error),
        Err(error) => {
            tracing::debug!(%error, "could not record event");
            Ok(())
        }
    }
}
