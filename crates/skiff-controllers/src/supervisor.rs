//! The supervisor: runs the scheduler and every controller while this member is the Raft leader,
//! and nothing otherwise.
//!
//! Input: a `watch::Receiver<(is_leader, term)>` and a function that makes a `kube::Client`
//! whose every request carries `x-skiff-fence-term: <term>`. It is an explicit state machine
//! (`State` + `step` over a closed `Event`): on winning it starts the shared caches, waits for
//! them, and starts every loop; on losing (or a new term, or a `FencedOut` refusal) it stops them
//! all and waits for them before it reports the new state through `active()`. While leading it
//! renews the `coordination.k8s.io` Lease `kube-system/skiff-controller-manager` (holder = member
//! name) every 2 s so that `kubectl get lease -n kube-system` shows who acts, logs every change
//! and exports it as metrics.
//!
//! Invariants: at most one set of loops runs per process; `active()` says `Some(term)` only
//! while loops of that term may run, and turns `None` only after they have all returned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::informers::Informers;
use crate::metrics::Metrics;
use crate::shell::{Context, Expectations};

/// Supervisor settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// This member's name (the Lease holder identity).
    pub member_name: String,
    /// Node heartbeat grace period (node lifecycle).
    pub node_grace_period: Duration,
    /// Cluster CIDR for node IPAM.
    pub cluster_cidr: String,
    /// Where local-path volumes live on nodes.
    pub local_path: String,
    /// The scheduler's settings.
    pub scheduler: skiff_scheduler::runner::Config,
    /// How long to wait for caches to sync before giving up on a term.
    pub sync_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            member_name: "skiff".into(),
            node_grace_period: Duration::from_secs(40),
            cluster_cidr: "10.42.0.0/16".into(),
            local_path: crate::pvc::Config::default().base_path,
            scheduler: skiff_scheduler::runner::Config::default(),
            sync_timeout: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// Every problem with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.member_name.is_empty() {
            problems.push("member name must not be empty".to_string());
        }
        if self.node_grace_period < Duration::from_secs(1) {
            problems.push("node grace period must be at least 1s".to_string());
        }
        if let Err(error) = crate::ipam::Cidr::parse(&self.cluster_cidr) {
            problems.push(error.to_string());
        }
        if !self.local_path.starts_with('/') {
            problems.push(format!(
                "local-path base {:?} must be absolute",
                self.local_path
            ));
        }
        problems.extend(self.scheduler.validate());
        problems
    }
}

/// Why the supervisor could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid supervisor config: {0}")]
    Config(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// What the supervisor reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Leadership { leader: bool, term: u64 },
    FencedOut,
    Shutdown,
}

/// Where the supervisor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Leading { term: u64 },
    Stopped,
}

/// What `step` asks the runtime to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start { term: u64 },
    Stop,
    StopThenStart { term: u64 },
    Nothing,
}

/// The pure transition function.
pub fn step(state: State, event: Event) -> (State, Action) {
    match (state, event) {
        (State::Stopped, _) => (State::Stopped, Action::Nothing),
        (State::Idle, Event::Leadership { leader: true, term }) => {
            (State::Leading { term }, Action::Start { term })
        }
        (State::Idle, _) => (State::Idle, Action::Nothing),
        (State::Leading { .. }, Event::Shutdown) => (State::Stopped, Action::Stop),
        (State::Leading { .. }, Event::FencedOut) => (State::Idle, Action::Stop),
        (State::Leading { .. }, Event::Leadership { leader: false, .. }) => {
            (State::Idle, Action::Stop)
        }
        (
            State::Leading { term },
            Event::Leadership {
                leader: true,
                term: new,
            },
        ) if new != term => (
            State::Leading { term: new },
            Action::StopThenStart { term: new },
        ),
        (leading @ State::Leading { .. }, Event::Leadership { .. }) => (leading, Action::Nothing),
    }
}

struct Running {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// The supervisor.
pub struct Supervisor {
    config: Config,
    metrics: Arc<Metrics>,
    scheduler_metrics: skiff_scheduler::metrics::Metrics,
    active: watch::Sender<Option<u64>>,
}

impl Supervisor {
    /// Create a supervisor, registering its metrics (and the scheduler's) in `registry`.
    pub fn new(config: Config, registry: &prometheus::Registry) -> Result<Self, Error> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(Error::Config(problems.join("; ")));
        }
        Ok(Self {
            config,
            metrics: Arc::new(Metrics::new(registry)?),
            scheduler_metrics: skiff_scheduler::metrics::Metrics::new(registry)?,
            active: watch::channel(None).0,
        })
    }

    /// The term whose loops may be running (`None` once all have stopped).
    pub fn active(&self) -> watch::Receiver<Option<u64>> {
        self.active.subscribe()
    }

    /// Run until `shutdown` flips. `make_client(term)` returns a client that sends the fence
    /// header for that term.
    pub async fn run<F>(
        self,
        mut leadership: watch::Receiver<(bool, u64)>,
        make_client: F,
        mut shutdown: watch::Receiver<bool>,
    ) where
        F: Fn(u64) -> Result<Client, String>,
    {
        let mut state = State::Idle;
        let mut running: Option<Running> = None;
        let (fenced_tx, mut fenced_rx) = watch::channel(false);
        let mut event = {
            let (leader, term) = *leadership.borrow_and_update();
            Event::Leadership { leader, term }
        };
        loop {
            let (next, action) = step(state, event);
            if next != state {
                tracing::info!(from = ?state, to = ?next, member = %self.config.member_name, "control loops: leadership change");
                self.metrics.leader_changes.inc();
            }
            state = next;
            match action {
                Action::Start { term } => {
                    running = self.start(term, &make_client, &fenced_tx).await
                }
                Action::Stop => {
                    self.stop(running.take()).await;
                }
                Action::StopThenStart { term } => {
                    self.stop(running.take()).await;
                    running = self.start(term, &make_client, &fenced_tx).await;
                }
                Action::Nothing => {}
            }
            if state == State::Stopped {
                return;
            }
            event = tokio::select! {
                changed = leadership.changed() => match changed {
                    Ok(()) => {
                        let (leader, term) = *leadership.borrow_and_update();
                        Event::Leadership { leader, term }
                    }
                    Err(_) => Event::Shutdown,
                },
                _ = shutdown.changed() => Event::Shutdown,
                _ = fenced_rx.changed() => {
                    if *fenced_rx.borrow_and_update() { Event::FencedOut } else { continue }
                }
            };
        }
    }

    async fn start<F>(
        &self,
        term: u64,
        make_client: &F,
        fenced: &watch::Sender<bool>,
    ) -> Option<Running>
    where
        F: Fn(u64) -> Result<Client, String>,
    {
        let started = Instant::now();
        let client = match make_client(term) {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, term, "control loops: cannot make a client");
                return None;
            }
        };
        let _ = fenced.send(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let informers = Informers::start(&client, &stop_rx);
        match tokio::time::timeout(self.config.sync_timeout, informers.synced()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "control loops: a cache did not sync"),
            Err(_) => tracing::warn!("control loops: caches did not sync in time"),
        }
        let ctx = Arc::new(Context {
            client: client.clone(),
            stop: stop_rx.clone(),
            fenced: fenced.clone(),
            metrics: self.metrics.clone(),
            expectations: Expectations::default(),
        });
        let mut tasks = JoinSet::new();
        let config = &self.config;
        macro_rules! spawn {
            ($name:literal, $fut:expr) => {{
                let fut = $fut;
                tasks.spawn(async move {
                    if let Err(error) = fut.await {
                        tracing::warn!(controller = $name, %error, "controller stopped");
                    }
                });
            }};
        }
        spawn!(
            "deployment",
            crate::deployment::shell::run(ctx.clone(), informers.clone())
        );
        spawn!(
            "replicaset",
            crate::replicaset::shell::run(ctx.clone(), informers.clone())
        );
        spawn!(
            "statefulset",
            crate::statefulset::shell::run(ctx.clone(), informers.clone())
        );
        spawn!(
            "daemonset",
            crate::daemonset::shell::run(ctx.clone(), informers.clone())
        );
        spawn!(
            "job",
            crate::job::shell::run(ctx.clone(), informers.clone())
        );
        spawn!(
            "cronjob",
            crate::cronjob::shell::run(ctx.clone(), informers.clone())
        );
        spawn!(
            "namespace",
            crate::namespace::shell::run(ctx.clone(), informers.clone())
        );
        spawn!(
            "garbagecollector",
            crate::gc::shell::run(ctx.clone(), informers.clone())
        );
        let lifecycle = crate::node_lifecycle::Config {
            grace_period: k8s_openapi::jiff::SignedDuration::try_from(config.node_grace_period)
                .unwrap_or(k8s_openapi::jiff::SignedDuration::from_secs(40)),
            started: Timestamp::now(),
        };
        spawn!(
            "nodelifecycle",
            crate::node_lifecycle::shell::run(ctx.clone(), informers.clone(), lifecycle)
        );
        if let Ok(cidr) = crate::ipam::Cidr::parse(&config.cluster_cidr) {
            spawn!(
                "nodeipam",
                crate::ipam::shell::run(ctx.clone(), informers.clone(), cidr)
            );
        }
        spawn!(
            "endpoints",
            crate::endpoints::shell::run(ctx.clone(), informers.clone())
        );
        spawn!(
            "serviceaccount",
            crate::serviceaccount::shell::run(ctx.clone(), informers.clone())
        );
        let pvc = crate::pvc::Config {
            base_path: config.local_path.clone(),
        };
        spawn!(
            "persistentvolume-binder",
            crate::pvc::shell::run(ctx.clone(), informers.clone(), pvc)
        );
        spawn!(
            "disruption",
            crate::pdb::shell::run(ctx.clone(), informers.clone())
        );
        {
            let (client, scheduler, metrics, stop, fenced) = (
                client.clone(),
                config.scheduler.clone(),
                self.scheduler_metrics.clone(),
                stop_rx.clone(),
                fenced.clone(),
            );
            tasks.spawn(async move {
                if let Err(error) =
                    skiff_scheduler::runner::run(client, scheduler, metrics, stop).await
                {
                    tracing::warn!(%error, "scheduler stopped");
                    let _ = fenced.send(true);
                }
            });
        }
        {
            let (client, member, mut stop, fenced) =
                (client, config.member_name.clone(), stop_rx, fenced.clone());
            tasks.spawn(async move {
                loop {
                    if let Err(error) = renew_lease(&client, &member).await {
                        if crate::shell::is_fenced_out(&error) {
                            let _ = fenced.send(true);
                            return;
                        }
                        tracing::debug!(%error, "could not renew the controller-manager lease");
                    }
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            });
        }
        self.metrics.leader.set(1);
        self.metrics
            .term
            .set(i64::try_from(term).unwrap_or(i64::MAX));
        self.metrics
            .start_latency
            .observe(started.elapsed().as_secs_f64());
        let _ = self.active.send(Some(term));
        tracing::info!(term, member = %self.config.member_name, took = ?started.elapsed(), "control loops started");
        Some(Running {
            stop: stop_tx,
            tasks,
        })
    }

    async fn stop(&self, running: Option<Running>) {
        if let Some(mut running) = running {
            let _ = running.stop.send(true);
            while running.tasks.join_next().await.is_some() {}
            tracing::info!(member = %self.config.member_name, "control loops stopped");
        }
        self.metrics.leader.set(0);
        self.metrics.term.set(0);
        self.metrics.clear_nodes();
        let _ = self.active.send(None);
    }
}

/// Create or renew the `kube-system/skiff-controller-manager` Lease with this member as holder.
pub async fn renew_lease(client: &Client, member: &str) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let now = Timestamp::now().to_string();
    match api.get_opt("skiff-controller-manager").await? {
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": "skiff-controller-manager", "namespace": "kube-system"},
                "spec": {"holderIdentity": member, "leaseDurationSeconds": 15, "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
            }))
            .unwrap_or_default();
            api.create(&PostParams::default(), &lease).await?;
        }
        Some(existing) => {
            let spec = existing.spec.clone().unwrap_or_default();
            let mut patch = json!({"spec": {"holderIdentity": member, "renewTime": now, "leaseDurationSeconds": 15}});
            if spec.holder_identity.as_deref() != Some(member) {
                patch["spec"]["acquireTime"] = json!(now);
                patch["spec"]["leaseTransitions"] = json!(spec.lease_transitions.unwrap_or(0) + 1);
            }
            api.patch(
                "skiff-controller-manager",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        }
    }
    Ok(())
}

/// A `make_client` for `run`: a client for `config` whose every request carries the fence
/// header (`x-skiff-fence-term`).
pub fn fenced_client(config: &kube::Config, term: u64) -> Result<Client, String> {
    let mut config = config.clone();
    let value = http::HeaderValue::from_str(&term.to_string()).map_err(|e| e.to_string())?;
    config
        .headers
        .push((http::HeaderName::from_static("x-skiff-fence-term"), value));
    // The controllers retry by requeueing; kube's built-in retry of 503/504 would resend
    // writes whose outcome is unknown and stall a reconcile for minutes during an outage.
    config.default_retry = false;
    Client::try_from(config).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
