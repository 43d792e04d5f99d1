//! A small world that runs the real Deployment and ReplicaSet plans against each other, with a
//! fake kubelet that makes pods ready a few steps after they are created, and checks at every
//! step that a rollout never exceeds `replicas + maxSurge` pods nor drops below
//! `replicas - maxUnavailable` available ones.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::*;
use crate::replicaset;
use crate::workload::{is_available, is_controlled_by};

pub(super) struct World {
    pub d: Deployment,
    pub rss: Vec<ReplicaSet>,
    pub pods: Vec<Pod>,
    pub now: Timestamp,
    pub next_uid: u64,
    /// Steps after creation at which a pod turns ready.
    pub ready_after: u64,
    pub created_at_step: Vec<(String, u64)>,
    pub step: u64,
    pub events: Vec<String>,
}

pub(super) fn deployment(
    replicas: i32,
    surge: IntOrString,
    unavailable: IntOrString,
    image: &str,
) -> Deployment {
    let mut d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 10,
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}}
        }
    }))
    .unwrap_or_default();
    if let Some(spec) = d.spec.as_mut() {
        spec.strategy = Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(k8s_openapi::api::apps::v1::RollingUpdateDeployment {
                max_surge: Some(surge),
                max_unavailable: Some(unavailable),
            }),
        });
    }
    d
}

impl World {
    pub fn new(d: Deployment) -> Self {
        Self {
            d,
            rss: Vec::new(),
            pods: Vec::new(),
            now: "2024-01-01T00:00:00Z".parse().unwrap_or_default(),
            next_uid: 0,
            ready_after: 2,
            created_at_step: Vec::new(),
            step: 0,
            events: Vec::new(),
        }
    }

    fn uid(&mut self, prefix: &str) -> String {
        self.next_uid += 1;
        format!("{prefix}-{}", self.next_uid)
    }

    pub fn deployment_pass(&mut self) {
        let plan = plan(&self.d, &self.rss, &self.pods, self.now);
        for change in plan.changes {
            match change {
                Change::CreateReplicaSet(rs) => {
                    let mut rs = *rs;
                    rs.metadata.uid = Some(self.uid("rs"));
                    rs.metadata.generation = Some(1);
                    rs.metadata.creation_timestamp = Some(crate::workload::time(self.now));
                    self.rss.push(rs);
                }
                Change::UpdateReplicaSet(rs) => {
                    if let Some(existing) = self
                        .rss
                        .iter_mut()
                        .find(|r| r.metadata.name == rs.metadata.name)
                    {
                        let generation = existing.metadata.generation.unwrap_or(1)
                            + i64::from(existing.spec != rs.spec);
                        *existing = *rs;
                        existing.metadata.generation = Some(generation);
                    }
                }
                Change::DeleteReplicaSet { name, .. } => self
                    .rss
                    .retain(|r| r.metadata.name.as_deref() != Some(&name)),
                Change::SetRevision(r) => {
                    self.d
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(REVISION.into(), r);
                }
                Change::UpdateStatus(status) => self.d.status = Some(*status),
                Change::Event(e) => self.events.push(e.message),
            }
        }
    }

    pub fn replicaset_pass(&mut self) {
        for i in 0..self.rss.len() {
            let plan = replicaset::plan(&self.rss[i], &self.pods, self.now);
            for change in plan.changes {
                match change {
                    replicaset::Change::CreatePod(pod) => {
                        let mut pod = *pod;
                        let uid = self.uid("pod");
                        pod.metadata.name = Some(format!(
                            "{}{uid}",
                            pod.metadata.generate_name.clone().unwrap_or_default()
                        ));
                        pod.metadata.uid = Some(uid);
                        pod.metadata.creation_timestamp = Some(crate::workload::time(self.now));
                        self.created_at_step
                            .push((pod.metadata.name.clone().unwrap_or_default(), self.step));
                        self.pods.push(pod);
                    }
                    replicaset::Change::DeletePod { uid, .. } => self
                        .pods
                        .retain(|p| p.metadata.uid.as_deref() != Some(&uid)),
                    replicaset::Change::UpdateStatus(status) => self.rss[i].status = Some(*status),
                    _ => {}
                }
            }
        }
    }

    pub fn kubelet_pass(&mut self) {
        for pod in &mut self.pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let born = self
                .created_at_step
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| *s)
                .unwrap_or(0);
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some();
            if !ready && self.step >= born + self.ready_after {
                pod.status = Some(PodStatus {
                    phase: Some("Running".into()),
                    conditions: Some(vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(crate::workload::time(self.now)),
                        ..Default::default()
                    }]),
                    ..Default::default()
                });
            }
        }
    }

    pub fn tick(&mut self) {
        self.deployment_pass();
        self.replicaset_pass();
        self.kubelet_pass();
        self.replicaset_pass();
        self.step += 1;
        self.now += SignedDuration::from_secs(1);
    }

    pub fn available(&self) -> i32 {
        self.pods
            .iter()
            .filter(|p| is_available(p, 0, self.now))
            .count() as i32
    }

    pub fn pods_of_image(&self, image: &str) -> usize {
        self.pods
            .iter()
            .filter(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.image.as_deref())
                    == Some(image)
            })
            .count()
    }

    pub fn pods_of(&self, rs: &ReplicaSet) -> usize {
        let uid = rs.metadata.uid.as_deref().unwrap_or_default();
        self.pods
            .iter()
            .filter(|p| is_controlled_by(&p.metadata, uid))
            .count()
    }

    pub fn set_image(&mut self, image: &str) {
        if let Some(spec) = self.d.spec.as_mut()
            && let Some(c) = spec
                .template
                .spec
                .as_mut()
                .and_then(|s| s.containers.first_mut())
        {
            c.image = Some(image.into());
        }
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap_or(1) + 1);
    }

    pub fn settle(&mut self, steps: usize) {
        for _ in 0..steps {
            self.tick();
        }
    }

    pub fn complete(&self) -> bool {
        self.d
            .status
            .as_ref()
            .is_some_and(|s| deployment_complete(&self.d, s))
    }
}

fn rollout_respects_bounds(replicas: i32, surge: IntOrString, unavailable: IntOrString) {
    let d = deployment(replicas, surge, unavailable, "v1");
    let (max_surge, max_unavailable) = (super::max_surge(&d), super::max_unavailable(&d));
    let mut world = World::new(d);
    world.settle(20);
    assert!(world.complete(), "initial rollout did not complete");
    assert_eq!(world.pods_of_image("v1"), replicas as usize);
    world.set_image("v2");
    let mut steps = 0;
    while !(world.complete() && world.pods_of_image("v1") == 0) {
        world.tick();
        steps += 1;
        assert!(steps < 200, "rollout stuck: {:?}", world.d.status);
        let total = world.pods.len() as i32;
        assert!(
            total <= replicas + max_surge,
            "step {steps}: {total} pods > {replicas}+{max_surge}"
        );
        let available = world.available();
        assert!(
            available >= replicas - max_unavailable,
            "step {steps}: {available} available < {replicas}-{max_unavailable}"
        );
    }
    assert_eq!(world.pods_of_image("v2"), replicas as usize);
    let status = world.d.status.clone().unwrap_or_default();
    assert_eq!(status.updated_replicas, Some(replicas));
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing");
    assert_eq!(
        progressing.and_then(|c| c.reason.as_deref()),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(
        world
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .map(String::as_str),
        Some("2")
    );
}

#[test]
fn rolling_updates_never_break_the_bounds() {
    let cases = [
        (
            3,
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into()),
        ),
        (3, IntOrString::Int(1), IntOrString::Int(0)),
        (3, IntOrString::Int(0), IntOrString::Int(1)),
        (
            10,
            IntOrString::String("30%".into()),
            IntOrString::String("20%".into()),
        ),
        (5, IntOrString::Int(2), IntOrString::Int(2)),
        (
            4,
            IntOrString::String("0%".into()),
            IntOrString::String("10%".into()),
        ),
        (
            1,
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into()),
        ),
        (6, IntOrString::String("100%".into()), IntOrString::Int(0)),
    ];
    for (replicas, surge, unavailable) in cases {
        rollout_respects_bounds(replicas, surge, unavailable);
    }
}

#[test]
fn rollback_reuses_the_old_replica_set_with_the_next_revision() {
    let mut world = World::new(deployment(
        2,
        IntOrString::Int(1),
        IntOrString::Int(0),
        "v1",
    ));
    world.settle(20);
    world.set_image("v2");
    world.settle(40);
    assert!(world.complete());
    assert_eq!(world.rss.len(), 2);
    let v1_name = world.rss[0].metadata.name.clone();
    // `kubectl rollout undo` copies the old template back.
    world.set_image("v1");
    world.settle(40);
    assert!(world.complete());
    assert_eq!(world.rss.len(), 2, "no third ReplicaSet");
    let v1 = world
        .rss
        .iter()
        .find(|r| r.metadata.name == v1_name)
        .cloned()
        .unwrap_or_default();
    let annotations = v1.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get(REVISION).map(String::as_str), Some("3"));
    assert_eq!(
        annotations.get(REVISION_HISTORY).map(String::as_str),
        Some("1")
    );
    assert_eq!(world.pods_of(&v1), 2);
    assert_eq!(
        world
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .map(String::as_str),
        Some("3")
    );
}

#[test]
fn recreate_stops_all_old_pods_before_starting_new_ones() {
    let mut d = deployment(3, IntOrString::Int(1), IntOrString::Int(0), "v1");
    if let Some(spec) = d.spec.as_mut() {
        spec.strategy = Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
    }
    let mut world = World::new(d);
    world.settle(20);
    assert!(world.complete());
    world.set_image("v2");
    for _ in 0..40 {
        world.tick();
        let old = world.pods_of_image("v1");
        let new = world.pods_of_image("v2");
        assert!(
            old == 0 || new == 0,
            "old and new pods together: {old} + {new}"
        );
    }
    assert!(world.complete());
    assert_eq!(world.pods_of_image("v2"), 3);
}

#[test]
fn paused_deployments_scale_but_do_not_roll_out() {
    let mut world = World::new(deployment(
        2,
        IntOrString::Int(1),
        IntOrString::Int(0),
        "v1",
    ));
    world.settle(20);
    if let Some(spec) = world.d.spec.as_mut() {
        spec.paused = Some(true);
        spec.replicas = Some(4);
    }
    world.set_image("v2");
    world.settle(20);
    assert_eq!(world.pods_of_image("v1"), 4);
    assert_eq!(world.pods_of_image("v2"), 0);
    let progressing = world
        .d
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    assert!(
        progressing
            .iter()
            .any(|c| c.reason.as_deref() == Some("DeploymentPaused"))
    );
    if let Some(spec) = world.d.spec.as_mut() {
        spec.paused = Some(false);
    }
    world.settle(60);
    assert!(world.complete());
    assert_eq!(world.pods_of_image("v2"), 4);
}

#[test]
fn scaling_during_a_rollout_is_proportional() {
    let mut world = World::new(deployment(
        10,
        IntOrString::Int(3),
        IntOrString::Int(2),
        "v1",
    ));
    world.ready_after = 1000; // new pods never become ready: the rollout stalls midway
    world.settle(3);
    for pod in &mut world.pods {
        pod.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
    }
    world.settle(3);
    assert!(world.complete());
    world.set_image("v2");
    world.settle(5);
    let before: Vec<i32> = world
        .rss
        .iter()
        .map(|r| r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
        .collect();
    assert_eq!(before.iter().sum::<i32>(), 13);
    if let Some(spec) = world.d.spec.as_mut() {
        spec.replicas = Some(20);
    }
    world.deployment_pass();
    let after: Vec<i32> = world
        .rss
        .iter()
        .map(|r| r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
        .collect();
    // allowed = 20 + 3 = 23: ten more spread over both ReplicaSets in proportion.
    assert_eq!(after.iter().sum::<i32>(), 23, "{before:?} -> {after:?}");
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "{before:?} -> {after:?}"
    );
}

#[test]
fn progress_deadline_exceeded() {
    let mut d = deployment(2, IntOrString::Int(1), IntOrString::Int(0), "v1");
    if let Some(spec) = d.spec.as_mut() {
        spec.progress_deadline_seconds = Some(10);
    }
    let mut world = World::new(d);
    world.ready_after = 10_000;
    world.settle(30);
    let conditions = world
        .d
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let progressing = conditions.iter().find(|c| c.type_ == "Progressing");
    assert_eq!(progressing.map(|c| c.status.as_str()), Some("False"));
    assert_eq!(
        progressing.and_then(|c| c.reason.as_deref()),
        Some(TIMED_OUT_REASON)
    );
    let available = conditions.iter().find(|c| c.type_ == "Available");
    assert_eq!(available.map(|c| c.status.as_str()), Some("False"));
}

#[test]
fn revision_history_limit_deletes_the_oldest() {
    let mut d = deployment(1, IntOrString::Int(1), IntOrString::Int(0), "v0");
    if let Some(spec) = d.spec.as_mut() {
        spec.revision_history_limit = Some(2);
    }
    let mut world = World::new(d);
    world.settle(10);
    for v in 1..=5 {
        world.set_image(&format!("v{v}"));
        world.settle(20);
    }
    assert!(world.complete());
    // The current one plus two old ones.
    assert_eq!(world.rss.len(), 3);
    let revisions: Vec<i64> = world.rss.iter().map(|r| revision(&r.metadata)).collect();
    assert!(
        revisions.contains(&6) && revisions.contains(&5) && revisions.contains(&4),
        "{revisions:?}"
    );
}
