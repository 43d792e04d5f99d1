//! The pod worker: one task per pod that observes its containers, plans ([`plan::plan_pod`]),
//! carries out the actions on the runtime, runs its probes and reports its status.
//!
//! The worker is driven by [`state::Event`]s through [`state::step`]; between events it wakes
//! on its own for probes, back-off expiry and a periodic resync (which also refreshes
//! ConfigMap/Secret volumes in place). The same code path serves the API shell and the tests,
//! which feed pods directly and read statuses from a [`StatusSink`].

mod actions;
mod hooks;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::mpsc;

use crate::container_config::{ClusterFacts, Objects};
use crate::downward::NodeFacts;
use crate::labels::{self, Kind};
use crate::metrics::Metrics;
use crate::plan::{self, PodMemory, Waiting};
use crate::pod;
use crate::probe::{self, ContainerProbes};
use crate::runtime::{ContainerRuntime, ContainerState, ObservedContainer};
use crate::status;
use crate::volumes::{self, Sources, TokenRequest};

pub use state::{Command, Event, State};

/// Where the worker gets the API objects a pod references (the shell reads them from the API;
/// tests from memory). `Ok(None)` means "does not exist".
#[async_trait::async_trait]
pub trait ObjectSource: Send + Sync + 'static {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, String>;
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String>;
    /// A ServiceAccount token bound to the pod (`serviceaccounts/{name}/token`).
    async fn token(&self, pod: &Pod, request: &TokenRequest) -> Result<String, String>;
    /// The host directory of the local PersistentVolume a claim is bound to: `Ok(None)` when the
    /// claim is not bound yet, `Err` when it does not exist.
    async fn claim_path(&self, namespace: &str, claim: &str) -> Result<Option<String>, String>;
}

/// Where pod statuses (and the events `kubectl describe` shows) go.
#[async_trait::async_trait]
pub trait StatusSink: Send + Sync + 'static {
    async fn write_status(&self, pod: &Pod, status: &PodStatus) -> Result<(), String>;
    /// Everything of a deleted pod is gone from the node: the API object may go too.
    async fn pod_finished(&self, pod: &Pod) -> Result<(), String>;
    /// Records an event about the pod (`Pulling`, `Started`, `Killing`, `Unhealthy`, ...).
    /// Must not block: implementations that write to the API do so in the background.
    fn event(&self, pod: &Pod, warning: bool, reason: &str, message: &str);
}

/// The same event again within this window is not repeated.
const EVENT_REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// Node-wide settings every worker shares.
#[derive(Clone, Debug)]
pub struct Settings {
    pub node_name: String,
    pub data_dir: PathBuf,
    /// The Docker network pods get their IPs on.
    pub network: String,
    /// That network's Linux bridge, whose ports get hairpin mode; `None` when unknown.
    pub bridge: Option<String>,
    /// The node's resolv.conf (`dnsPolicy: Default`, search domains for `ClusterFirst`).
    pub node_resolv_conf: PathBuf,
    pub sandbox_image: String,
    pub node: NodeFacts,
    pub cluster: ClusterFacts,
    /// How often a quiet pod is synced anyway (volume refresh, drift).
    pub resync: Duration,
}

impl Settings {
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.data_dir.join("pods").join(uid)
    }

    /// The pod's resolv.conf, bind-mounted into each of its containers.
    pub fn resolv_conf_path(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join("resolv.conf")
    }
}

/// What every worker of an agent shares.
#[derive(Clone)]
pub struct Deps {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub objects: Arc<dyn ObjectSource>,
    pub status: Arc<dyn StatusSink>,
    pub settings: Arc<Settings>,
    pub metrics: Option<Metrics>,
}

/// A running worker.
pub struct Handle {
    pub events: mpsc::UnboundedSender<Event>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Handle {
    pub fn send(&self, event: Event) -> bool {
        self.events.send(event).is_ok()
    }
}

/// Starts a worker for `pod` (or for the leftovers of a pod that is gone).
pub fn spawn(deps: Deps, pod: Pod, gone: bool) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let worker = Worker::new(deps, pod, gone);
    let task = tokio::spawn(worker.run(rx));
    Handle { events: tx, task }
}

struct ProbedContainer {
    name: String,
    started_at: Timestamp,
    probes: ContainerProbes,
}

pub(crate) struct Worker {
    deps: Deps,
    pod: Pod,
    state: State,
    memory: PodMemory,
    probes: HashMap<String, ProbedContainer>,
    last_status: Option<PodStatus>,
    created: Instant,
    start_recorded: bool,
    /// Whether the last sync left something to retry soon (back-off, failure).
    retry_soon: bool,
    last_sync: Instant,
    /// When the observation the last sync acted on began (container events older than this
    /// are in it already).
    observed_at: Option<Timestamp>,
    /// When each (reason, message) event was last emitted.
    events: HashMap<(String, String), Instant>,
}

impl Worker {
    fn new(deps: Deps, pod: Pod, gone: bool) -> Worker {
        let state = if gone {
            State::Terminating { gone: true }
        } else if pod.metadata.deletion_timestamp.is_some() {
            State::Terminating { gone: false }
        } else {
            State::Syncing
        };
        Worker {
            deps,
            pod,
            state,
            memory: PodMemory::default(),
            probes: HashMap::new(),
            last_status: None,
            created: Instant::now(),
            start_recorded: false,
            retry_soon: false,
            last_sync: Instant::now(),
            observed_at: None,
            events: HashMap::new(),
        }
    }

    /// Emits an event unless the same one went out within the last minute.
    pub(crate) fn event(&mut self, warning: bool, reason: &str, message: &str) {
        let key = (reason.to_string(), message.to_string());
        if let Some(at) = self.events.get(&key)
            && at.elapsed() < EVENT_REPEAT_WINDOW
        {
            return;
        }
        self.events
            .retain(|_, at| at.elapsed() < EVENT_REPEAT_WINDOW);
        self.events.insert(key, Instant::now());
        self.deps.status.event(&self.pod, warning, reason, message);
    }

    fn uid(&self) -> String {
        pod::uid(&self.pod).to_string()
    }

    async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        let mut command = Command::Sync;
        loop {
            if command == Command::Exit {
                break;
            }
            if command == Command::Sync {
                let started = Instant::now();
                self.sync().await;
                if let Some(m) = &self.deps.metrics {
                    m.pod_worker_duration
                        .with_label_values(&["sync"])
                        .observe(started.elapsed().as_secs_f64());
                }
                if self.state == State::Finished {
                    break;
                }
            }
            let wake = self.next_wake();
            command = tokio::select! {
                event = events.recv() => {
                    let event = event.unwrap_or(Event::Shutdown);
                    let (next, mut cmd) =
                        state::step(&self.state, &mut self.pod, event, self.observed_at);
                    self.state = next;
                    // Coalesce whatever else is queued.
                    while let Ok(event) = events.try_recv() {
                        let (next, more) =
                            state::step(&self.state, &mut self.pod, event, self.observed_at);
                        self.state = next;
                        if more == Command::Exit || cmd == Command::Nothing {
                            cmd = more;
                        }
                    }
                    cmd
                }
                _ = tokio::time::sleep(wake) => {
                    let changed = self.run_due_probes().await;
                    if changed || self.retry_soon || self.last_sync.elapsed() >= self.deps.settings.resync {
                        Command::Sync
                    } else {
                        Command::Nothing
                    }
                }
            };
        }
    }

    /// How long until the worker should look again.
    fn next_wake(&self) -> Duration {
        let mut wake = if self.retry_soon {
            Duration::from_secs(1)
        } else {
            self.deps
                .settings
                .resync
                .saturating_sub(self.last_sync.elapsed())
        };
        let now = Timestamp::now();
        for probed in self.probes.values() {
            if let Some(at) = probed.probes.next_wake(probed.started_at) {
                let until = at.duration_since(now);
                let until = Duration::try_from(until).unwrap_or(Duration::ZERO);
                wake = wake.min(until.max(Duration::from_millis(20)));
            }
        }
        wake
    }

    /// Lists the pod's containers; on success, remembers when the listing began.
    async fn observe(&mut self) -> Option<Vec<ObservedContainer>> {
        let uid = self.uid();
        let node = self.deps.settings.node_name.clone();
        let began = Timestamp::now();
        let observed = match self
            .deps
            .runtime
            .list_containers(&[
                (labels::POD_UID, uid.as_str()),
                (labels::NODE, node.as_str()),
            ])
            .await
        {
            Ok(list) => Some(list),
            Err(e) => {
                tracing::warn!(pod = %pod::display(&self.pod), error = %e, "listing containers failed");
                None
            }
        };
        if observed.is_some() {
            self.observed_at = Some(began);
        }
        observed
    }

    /// Fetches what the pod references and lays out its volumes.
    async fn prepare(
        &mut self,
        sandbox_ip: Option<String>,
    ) -> Result<
        (
            Objects,
            HashMap<String, crate::container_config::VolumeSource>,
        ),
        String,
    > {
        let requirements = volumes::requirements(&self.pod);
        let namespace = pod::namespace(&self.pod).to_string();
        let mut sources = Sources::default();
        for name in &requirements.config_maps {
            if let Some(cm) = self.deps.objects.config_map(&namespace, name).await? {
                sources.objects.config_maps.insert(name.clone(), cm);
            }
        }
        for name in &requirements.secrets {
            if let Some(secret) = self.deps.objects.secret(&namespace, name).await? {
                sources.objects.secrets.insert(name.clone(), secret);
            }
        }
        for request in &requirements.tokens {
            match self.deps.objects.token(&self.pod, request).await {
                Ok(token) => {
                    sources.tokens.insert(request.clone(), token);
                }
                Err(e) => {
                    tracing::warn!(pod = %pod::display(&self.pod), error = %e, "token request failed")
                }
            }
        }
        for claim in &requirements.claims {
            match self.deps.objects.claim_path(&namespace, claim).await {
                Ok(path) => {
                    sources.claims.insert(claim.clone(), path);
                }
                Err(e) => {
                    tracing::warn!(pod = %pod::display(&self.pod), error = %e, "claim lookup failed")
                }
            }
        }
        let mut facts = self.deps.settings.node.clone();
        facts.pod_ip = sandbox_ip;
        let uid = self.uid();
        let pod_dir = self.deps.settings.pod_dir(&uid);
        let plans = volumes::plan(&self.pod, &pod_dir.to_string_lossy(), &sources, &facts)
            .map_err(|e| e.to_string())?;
        for volume in &plans {
            let plan = volume.clone();
            let result = tokio::task::spawn_blocking(move || volumes::writer::materialize(&plan))
                .await
                .map_err(|e| e.to_string())?;
            match result {
                Ok(true) => {
                    tracing::info!(pod = %pod::display(&self.pod), volume = %volume.name, "volume contents updated")
                }
                Ok(false) => {}
                Err(e) => {
                    return Err(format!(
                        "MountVolume.SetUp failed for volume \"{}\": {e}",
                        volume.name
                    ));
                }
            }
        }
        Ok((sources.objects, volumes::sources_of(&plans)))
    }

    /// Whether each image the pod's containers use is present: asked of the engine only for
    /// images no running container of the pod uses ([`plan::images_to_inspect`]).
    async fn image_presence(&self, observed: &[ObservedContainer]) -> HashMap<String, bool> {
        let mut images: HashMap<String, bool> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
            .map(|c| (c.image.clone().unwrap_or_default(), true))
            .collect();
        for image in plan::images_to_inspect(&self.pod, observed) {
            let present = self
                .deps
                .runtime
                .image_present(&image)
                .await
                .unwrap_or(false);
            images.insert(image, present);
        }
        images
    }

    async fn sync(&mut self) {
        self.last_sync = Instant::now();
        let gone = self.state == State::Terminating { gone: true };
        let Some(mut observed) = self.observe().await else {
            self.retry_soon = true;
            return;
        };
        let sandbox_ip = current_sandbox(&observed).and_then(|s| s.ip.clone());
        let terminating = matches!(self.state, State::Terminating { .. });
        let prepared = if terminating {
            Ok((Objects::default(), HashMap::new()))
        } else {
            self.prepare(sandbox_ip).await
        };
        let (objects, volume_sources, volume_error) = match prepared {
            Ok((o, v)) => (o, v, None),
            Err(e) => {
                self.event(true, "FailedMount", &e);
                (Objects::default(), HashMap::new(), Some(e))
            }
        };
        let images = self.image_presence(&observed).await;
        let mut any_failed = false;
        let mut waiting = BTreeMap::new();
        let mut finished = false;
        for _round in 0..6 {
            let plan = plan::plan_pod(&plan::Input {
                pod: &self.pod,
                observed: &observed,
                memory: &self.memory,
                images: &images,
                gone,
                now: Timestamp::now(),
            });
            for (name, entry) in &plan.backoff_updates {
                self.memory.backoff.insert(name.clone(), *entry);
            }
            waiting = plan.waiting.clone();
            if plan.actions.is_empty() {
                finished = plan.finished;
                break;
            }
            // Containers cannot start while their volumes are not ready.
            let blocked = volume_error.is_some();
            let outcome = actions::execute(
                self,
                &plan.actions,
                &observed,
                &objects,
                &volume_sources,
                blocked,
            )
            .await;
            any_failed |= outcome.failed;
            if let Some(message) = &volume_error {
                for c in self.pod.spec.iter().flat_map(|s| s.containers.iter()) {
                    waiting.entry(c.name.clone()).or_insert(Waiting {
                        reason: "ContainerCreating".into(),
                        message: message.clone(),
                    });
                }
            }
            match self.observe().await {
                Some(fresh) => observed = fresh,
                None => {
                    any_failed = true;
                    break;
                }
            }
            if outcome.failed || outcome.executed == 0 {
                break;
            }
            if plan.finished && !outcome.failed {
                finished = true;
                break;
            }
        }
        self.update_probes(&observed);
        for (name, w) in &waiting {
            match w.reason.as_str() {
                "CrashLoopBackOff" => {
                    let message = format!(
                        "Back-off restarting failed container {name} in pod {}",
                        pod::display(&self.pod)
                    );
                    self.event(true, "BackOff", &message);
                }
                "ImagePullBackOff" => self.event(false, "BackOff", &w.message),
                "ErrImageNeverPull" => self.event(true, "ErrImageNeverPull", &w.message),
                _ => {}
            }
        }
        self.retry_soon = any_failed
            || waiting.values().any(|w| {
                matches!(
                    w.reason.as_str(),
                    "CrashLoopBackOff" | "ImagePullBackOff" | "ErrImagePull" | "ContainerCreating"
                )
            })
            || self.memory.failures.values().any(|f| f.fresh);
        if finished {
            if let Err(e) = self.deps.status.pod_finished(&self.pod).await {
                tracing::warn!(pod = %pod::display(&self.pod), error = %e, "finishing the pod's deletion failed");
            }
            self.state = State::Finished;
            return;
        }
        if gone {
            return;
        }
        self.report(&observed, &waiting).await;
    }

    async fn report(
        &mut self,
        observed: &[ObservedContainer],
        waiting: &BTreeMap<String, Waiting>,
    ) {
        let status = status::compute(&status::Input {
            pod: &self.pod,
            observed,
            memory: &self.memory,
            waiting,
            host_ip: &self.deps.settings.node.host_ip,
            now: Timestamp::now(),
        });
        if !self.start_recorded && status.phase.as_deref() == Some("Running") {
            let all_running = status
                .container_statuses
                .iter()
                .flatten()
                .all(|c| c.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
            if all_running {
                self.start_recorded = true;
                if let Some(m) = &self.deps.metrics {
                    m.pod_start_duration
                        .with_label_values::<&str>(&[])
                        .observe(self.created.elapsed().as_secs_f64());
                }
            }
        }
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        match self.deps.status.write_status(&self.pod, &status).await {
            Ok(()) => {
                for failure in self.memory.failures.values_mut() {
                    failure.fresh = false;
                }
                let mut pod_status = status.clone();
                // Our own next computation starts from what we wrote (transition times).
                pod_status.conditions = status.conditions.clone();
                self.pod.status = Some(pod_status);
                self.last_status = Some(status);
            }
            Err(e) => {
                tracing::warn!(pod = %pod::display(&self.pod), error = %e, "writing the pod status failed");
                self.retry_soon = true;
            }
        }
    }

    /// Keeps one probe state per running app container instance.
    fn update_probes(&mut self, observed: &[ObservedContainer]) {
        let Some(spec) = self.pod.spec.clone() else {
            return;
        };
        let mut live = HashMap::new();
        for c in observed.iter().filter(|c| c.identity.kind == Kind::App) {
            let ContainerState::Running { started_at } = c.state else {
                continue;
            };
            let Some(container) = spec
                .containers
                .iter()
                .find(|s| s.name == c.identity.container_name)
            else {
                continue;
            };
            let entry = self
                .probes
                .remove(&c.id)
                .unwrap_or_else(|| ProbedContainer {
                    name: container.name.clone(),
                    started_at,
                    probes: ContainerProbes::new(container),
                });
            live.insert(c.id.clone(), entry);
        }
        self.probes = live;
        self.memory.probes = self
            .probes
            .iter()
            .map(|(id, p)| (id.clone(), p.probes.verdicts()))
            .collect();
    }

    /// Runs the probes that are due; returns whether any verdict changed.
    async fn run_due_probes(&mut self) -> bool {
        let now = Timestamp::now();
        let Some(spec) = self.pod.spec.clone() else {
            return false;
        };
        let pod_ip = if pod::host_network(&self.pod) {
            Some(self.deps.settings.node.host_ip.clone())
        } else {
            self.pod.status.as_ref().and_then(|s| s.pod_ip.clone())
        };
        let mut changed = false;
        let ids: Vec<String> = self.probes.keys().cloned().collect();
        for id in ids {
            let Some(probed) = self.probes.get(&id) else {
                continue;
            };
            let due = probed.probes.due(probed.started_at, now);
            let Some(container) = spec
                .containers
                .iter()
                .find(|c| c.name == probed.name)
                .cloned()
            else {
                continue;
            };
            for kind in due {
                let probe_spec = match kind {
                    probe::ProbeKind::Startup => container.startup_probe.clone(),
                    probe::ProbeKind::Liveness => container.liveness_probe.clone(),
                    probe::ProbeKind::Readiness => container.readiness_probe.clone(),
                };
                let Some(probe_spec) = probe_spec else {
                    continue;
                };
                let timing = probe::Timing::of(&probe_spec, kind);
                let (outcome, message) = probe::prober::run(
                    self.deps.runtime.as_ref(),
                    &probe_spec,
                    &container,
                    &id,
                    pod_ip.as_deref().unwrap_or("127.0.0.1"),
                    timing.timeout,
                )
                .await;
                if let Some(m) = &self.deps.metrics {
                    let result = if outcome == probe::Outcome::Success {
                        "successful"
                    } else {
                        "failed"
                    };
                    m.probe_total
                        .with_label_values(&[
                            kind.as_str(),
                            result,
                            &container.name,
                            pod::name(&self.pod),
                            pod::namespace(&self.pod),
                        ])
                        .inc();
                }
                if outcome == probe::Outcome::Failure {
                    tracing::info!(pod = %pod::display(&self.pod), container = %container.name, probe = kind.as_str(), %message, "probe failed");
                    self.event(
                        true,
                        "Unhealthy",
                        &format!("{} probe failed: {message}", kind.as_str()),
                    );
                }
                if let Some(state) = self
                    .probes
                    .get_mut(&id)
                    .and_then(|p| p.probes.get_mut(kind))
                {
                    changed |= state.record(outcome, Timestamp::now());
                }
            }
        }
        if changed {
            self.memory.probes = self
                .probes
                .iter()
                .map(|(id, p)| (id.clone(), p.probes.verdicts()))
                .collect();
        }
        changed
    }
}

fn current_sandbox(observed: &[ObservedContainer]) -> Option<&ObservedContainer> {
    observed
        .iter()
        .filter(|c| c.identity.kind == Kind::Sandbox && c.state.is_running())
        .max_by_key(|c| c.identity.attempt)
}
