//! The pod manager: one worker per pod uid, fed by whoever knows the pods (the API shell, or a
//! test feeding pod objects directly). It also finds orphans: containers on this node whose
//! pod is not known (deleted while the agent was down, or force-deleted) get a worker that
//! tears them down.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Pod;

use crate::labels;
use crate::pod;
use crate::worker::{self, Deps, Event, Handle};

pub struct PodManager {
    deps: Deps,
    workers: HashMap<String, Handle>,
}

impl PodManager {
    pub fn new(deps: Deps) -> PodManager {
        PodManager {
            deps,
            workers: HashMap::new(),
        }
    }

    fn reap(&mut self) {
        self.workers.retain(|_, w| !w.task.is_finished());
    }

    /// A pod (new or changed) bound to this node.
    pub fn apply(&mut self, pod: Pod) {
        self.reap();
        let uid = pod::uid(&pod).to_string();
        if uid.is_empty() {
            return;
        }
        if let Some(worker) = self.workers.get(&uid)
            && worker.send(Event::Update(Box::new(pod.clone())))
        {
            return;
        }
        self.workers
            .insert(uid, worker::spawn(self.deps.clone(), pod, false));
    }

    /// The pod is gone from the API.
    pub fn delete(&mut self, pod: &Pod) {
        let uid = pod::uid(pod).to_string();
        match self.workers.get(&uid) {
            Some(worker) if worker.send(Event::Gone) => {}
            _ => {
                self.workers
                    .insert(uid, worker::spawn(self.deps.clone(), pod.clone(), true));
            }
        }
    }

    /// Wakes the worker of `uid`: it syncs.
    pub fn wake(&self, uid: &str) {
        if let Some(worker) = self.workers.get(uid) {
            worker.send(Event::Wake);
        }
    }

    /// A container of `uid` changed (the engine recorded it `at`): its worker syncs unless its
    /// last observation already shows the change.
    pub fn container_changed(&self, uid: &str, at: Option<k8s_openapi::jiff::Timestamp>) {
        if let Some(worker) = self.workers.get(uid) {
            worker.send(Event::ContainerChanged { at });
        }
    }

    pub fn has_worker(&self, uid: &str) -> bool {
        self.workers
            .get(uid)
            .map(|w| !w.task.is_finished())
            .unwrap_or(false)
    }

    /// Starts teardown workers for containers on this node whose pod uid is not in `known`.
    pub async fn collect_orphans(
        &mut self,
        known: &HashSet<String>,
    ) -> crate::runtime::Result<usize> {
        self.reap();
        let node = self.deps.settings.node_name.clone();
        let containers = self
            .deps
            .runtime
            .list_containers(&[(labels::NODE, node.as_str())])
            .await?;
        let mut orphans: HashMap<String, Pod> = HashMap::new();
        for c in containers {
            let uid = c.identity.pod_uid.clone();
            if known.contains(&uid) || self.workers.contains_key(&uid) {
                continue;
            }
            orphans.entry(uid.clone()).or_insert_with(|| {
                let mut p = Pod::default();
                p.metadata.uid = Some(uid);
                p.metadata.name = Some(c.identity.pod_name.clone());
                p.metadata.namespace = Some(c.identity.namespace.clone());
                p
            });
        }
        let count = orphans.len();
        for (uid, pod) in orphans {
            tracing::info!(pod = %pod::display(&pod), "removing the containers of a pod that no longer exists");
            self.workers
                .insert(uid, worker::spawn(self.deps.clone(), pod, true));
        }
        Ok(count)
    }

    /// Stops every worker, leaving containers running (a restarted agent re-adopts them).
    /// Dropping the manager without this aborts the workers instead.
    pub async fn shutdown(&mut self) {
        for worker in self.workers.values() {
            worker.send(Event::Shutdown);
        }
        for (_, worker) in self.workers.drain() {
            let _ = worker.task.await;
        }
    }
}

impl Drop for PodManager {
    fn drop(&mut self) {
        for worker in self.workers.values() {
            worker.task.abort();
        }
    }
}
