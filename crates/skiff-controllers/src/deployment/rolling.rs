//! One Deployment pass: finding or creating the new ReplicaSet, proportional scaling, the
//! RollingUpdate and Recreate steps and history cleanup (kube-controller-manager's `sync`,
//! `rolloutRolling`, `rolloutRecreate`, `scale`, `cleanupDeployment`).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use super::status::{self, new_condition};
use super::*;
use crate::hash::pod_template_hash;
use crate::workload::{is_controlled_by, is_terminal, owner_reference};

pub(super) struct Working {
    pub rs: ReplicaSet,
    pub created: bool,
    pub dirty: bool,
}

impl Working {
    pub fn name(&self) -> &str {
        self.rs.metadata.name.as_deref().unwrap_or_default()
    }
    pub fn spec_replicas(&self) -> i32 {
        self.rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
    }
    pub fn status_replicas(&self) -> i32 {
        self.rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
    }
    pub fn available(&self) -> i32 {
        self.rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
    }
    pub fn ready(&self) -> i32 {
        self.rs
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    }
    fn annotation(&self, key: &str) -> Option<i32> {
        self.rs
            .metadata
            .annotations
            .as_ref()?
            .get(key)?
            .parse()
            .ok()
    }
    fn created_at(&self) -> (i64, String) {
        (
            crate::workload::seconds(self.rs.metadata.creation_timestamp.as_ref()),
            self.name().to_string(),
        )
    }
}

pub(super) struct Pass<'a> {
    pub d: &'a Deployment,
    pub rss: Vec<Working>,
    pub new: Option<usize>,
    pub pods: &'a [Pod],
    pub now: Timestamp,
    pub changes: Vec<Change>,
    pub events: Vec<Record>,
    pub status: DeploymentStatus,
    pub revision: Option<String>,
    pub requeue: Option<i64>,
    pub deletes: Vec<(String, String)>,
}

impl<'a> Pass<'a> {
    pub fn new(
        d: &'a Deployment,
        owned: Vec<&ReplicaSet>,
        pods: &'a [Pod],
        now: Timestamp,
    ) -> Self {
        let mut rss: Vec<Working> = owned
            .into_iter()
            .map(|rs| Working {
                rs: rs.clone(),
                created: false,
                dirty: false,
            })
            .collect();
        rss.sort_by_key(|w| w.created_at());
        let new = rss.iter().position(|w| {
            match (
                w.rs.spec.as_ref().and_then(|s| s.template.as_ref()),
                d.spec.as_ref(),
            ) {
                (Some(t), Some(spec)) => equal_ignore_hash(t, &spec.template),
                _ => false,
            }
        });
        Self {
            d,
            rss,
            new,
            pods,
            now,
            changes: Vec::new(),
            events: Vec::new(),
            status: d.status.clone().unwrap_or_default(),
            revision: None,
            requeue: None,
            deletes: Vec::new(),
        }
    }

    fn olds(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.rss.len()).filter(move |i| Some(*i) != self.new)
    }

    fn paused(&self) -> bool {
        self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
    }

    pub fn run(&mut self) {
        if self.d.metadata.deletion_timestamp.is_some() {
            self.sync_status(false);
            return;
        }
        status::paused_conditions(self);
        if self.paused() {
            self.sync_revision(false);
            self.scale();
            self.cleanup();
            self.sync_status(false);
            return;
        }
        if self.is_scaling_event() {
            self.sync_revision(false);
            self.scale();
            self.sync_status(false);
            return;
        }
        if is_recreate(self.d) {
            self.recreate();
        } else {
            self.rolling();
        }
    }

    pub fn finish(mut self) -> Plan {
        let mut changes = std::mem::take(&mut self.changes);
        for w in &self.rss {
            if w.created {
                changes.insert(0, Change::CreateReplicaSet(Box::new(w.rs.clone())));
            } else if w.dirty {
                changes.push(Change::UpdateReplicaSet(Box::new(w.rs.clone())));
            }
        }
        for (name, uid) in self.deletes {
            changes.push(Change::DeleteReplicaSet { name, uid });
        }
        if let Some(revision) = self.revision {
            changes.push(Change::SetRevision(revision));
        }
        if Some(&self.status) != self.d.status.as_ref() {
            changes.push(Change::UpdateStatus(Box::new(self.status)));
        }
        changes.extend(self.events.into_iter().map(Change::Event));
        Plan {
            changes,
            requeue_after_seconds: self.requeue,
        }
    }

    fn is_scaling_event(&self) -> bool {
        let desired = replicas(self.d);
        self.rss
            .iter()
            .filter(|w| w.spec_replicas() > 0)
            .any(|w| w.annotation(DESIRED_REPLICAS).is_some_and(|a| a != desired))
    }

    fn set_annotation(&mut self, i: usize, key: &str, value: String) -> bool {
        let annotations = self.rss[i]
            .rs
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        if annotations.get(key) == Some(&value) {
            return false;
        }
        annotations.insert(key.to_string(), value);
        self.rss[i].dirty = true;
        true
    }

    /// Find the new ReplicaSet's revision and annotations, creating it if asked.
    pub fn sync_revision(&mut self, create: bool) {
        let max_old = self
            .olds()
            .map(|i| revision(&self.rss[i].rs.metadata))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        if let Some(i) = self.new {
            let current = revision(&self.rss[i].rs.metadata);
            let had = self.rss[i]
                .rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .cloned();
            for (k, v) in copyable_annotations(self.d) {
                self.set_annotation(i, &k, v);
            }
            if current < new_revision {
                self.set_annotation(i, REVISION, new_revision.to_string());
                if let Some(old) = had {
                    let history = self.rss[i]
                        .rs
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(REVISION_HISTORY))
                        .cloned()
                        .unwrap_or_default();
                    if let Some(history) = append_revision_history(&history, &old) {
                        self.set_annotation(i, REVISION_HISTORY, history);
                    }
                }
            }
            let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if let Some(spec) = self.rss[i].rs.spec.as_mut()
                && spec.min_ready_seconds != min_ready
            {
                spec.min_ready_seconds = min_ready;
                self.rss[i].dirty = true;
            }
            let rs_revision = revision(&self.rss[i].rs.metadata).to_string();
            self.set_deployment_revision(rs_revision);
            if status::has_progress_deadline(self.d)
                && status::condition(&self.status, "Progressing").is_none()
            {
                let message = format!("Found new replica set \"{}\"", self.rss[i].name());
                status::set(
                    &mut self.status,
                    new_condition(
                        "Progressing",
                        "True",
                        "FoundNewReplicaSet",
                        message,
                        self.now,
                    ),
                );
            }
            return;
        }
        if !create {
            return;
        }
        self.create_new(new_revision);
    }

    fn set_deployment_revision(&mut self, value: String) {
        let current = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION));
        if current != Some(&value) {
            self.revision = Some(value);
        }
    }

    fn create_new(&mut self, new_revision: i64) {
        let Some(spec) = self.d.spec.as_ref() else {
            return;
        };
        let collision = self.status.collision_count;
        let hash = pod_template_hash(&spec.template, collision);
        let name = format!(
            "{}-{}",
            self.d.metadata.name.as_deref().unwrap_or_default(),
            hash
        );
        if self.rss.iter().any(|w| w.name() == name) {
            // Same name, different template: a hash collision. Bump the count and retry.
            self.status.collision_count = Some(collision.unwrap_or(0) + 1);
            self.requeue = Some(0);
            return;
        }
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut annotations = copyable_annotations(self.d);
        annotations.insert(REVISION.into(), new_revision.to_string());
        let desired = replicas(self.d);
        annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
        annotations.insert(
            MAX_REPLICAS.into(),
            (desired + max_surge(self.d)).to_string(),
        );
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                owner_references: Some(vec![owner_reference(
                    "apps/v1",
                    "Deployment",
                    &self.d.metadata,
                )]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        self.rss.push(Working {
            rs,
            created: true,
            dirty: false,
        });
        let index = self.rss.len() - 1;
        self.new = Some(index);
        let count = if is_recreate(self.d) {
            desired
        } else {
            self.new_rs_new_replicas()
        };
        if let Some(spec) = self.rss[index].rs.spec.as_mut() {
            spec.replicas = Some(count);
        }
        if count > 0 {
            self.events.push(Record::normal(
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {count}"),
            ));
        }
        if status::has_progress_deadline(self.d) {
            status::set(
                &mut self.status,
                new_condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    format!("Created new replica set \"{name}\""),
                    self.now,
                ),
            );
        }
        self.set_deployment_revision(new_revision.to_string());
    }

    /// kube-controller-manager's `NewRSNewReplicas` for RollingUpdate.
    fn new_rs_new_replicas(&self) -> i32 {
        let Some(new) = self.new else { return 0 };
        let desired = replicas(self.d);
        let current: i32 = self.rss.iter().map(Working::spec_replicas).sum();
        let max_total = desired + max_surge(self.d);
        let new_replicas = self.rss[new].spec_replicas();
        if current >= max_total {
            return new_replicas;
        }
        let scale_up = (max_total - current).min(desired - new_replicas);
        new_replicas + scale_up.max(0)
    }

    /// Scale a ReplicaSet (and refresh its replica annotations); returns whether the size changed.
    pub fn scale_rs(&mut self, i: usize, size: i32) -> bool {
        let old = self.rss[i].spec_replicas();
        let desired = replicas(self.d);
        self.set_annotation(i, DESIRED_REPLICAS, desired.to_string());
        self.set_annotation(i, MAX_REPLICAS, (desired + max_surge(self.d)).to_string());
        if old == size {
            return false;
        }
        if let Some(spec) = self.rss[i].rs.spec.as_mut() {
            spec.replicas = Some(size);
        }
        self.rss[i].dirty = true;
        let direction = if size > old { "up" } else { "down" };
        let name = self.rss[i].name().to_string();
        self.events.push(Record::normal(
            "ScalingReplicaSet",
            format!("Scaled {direction} replica set {name} from {old} to {size}"),
        ));
        true
    }

    fn rolling(&mut self) {
        self.sync_revision(true);
        if self.requeue == Some(0) && self.new.is_none() {
            return;
        }
        if self.reconcile_new() || self.reconcile_olds() {
            self.sync_status(true);
            return;
        }
        if deployment_complete(self.d, &status::calculate(self)) {
            self.cleanup();
        }
        self.sync_status(true);
    }

    fn reconcile_new(&mut self) -> bool {
        let Some(new) = self.new else { return false };
        let desired = replicas(self.d);
        let current = self.rss[new].spec_replicas();
        if current == desired {
            return false;
        }
        if current > desired {
            return self.scale_rs(new, desired);
        }
        let count = self.new_rs_new_replicas();
        self.scale_rs(new, count)
    }

    fn reconcile_olds(&mut self) -> bool {
        let Some(new) = self.new else { return false };
        let old_count: i32 = self.olds().map(|i| self.rss[i].spec_replicas()).sum();
        if old_count == 0 {
            return false;
        }
        let all: i32 = self.rss.iter().map(Working::spec_replicas).sum();
        let min_available = replicas(self.d) - max_unavailable(self.d);
        let new_unavailable = self.rss[new].spec_replicas() - self.rss[new].available();
        let max_scaled_down = all - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        // Clean up unhealthy old replicas first, oldest ReplicaSets first.
        let mut cleaned = 0;
        let olds: Vec<usize> = self.olds().collect();
        let mut scaled = false;
        for &i in &olds {
            if cleaned >= max_scaled_down {
                break;
            }
            let spec = self.rss[i].spec_replicas();
            let available = self.rss[i].available();
            if spec == 0 || available >= spec {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(spec - available);
            scaled |= self.scale_rs(i, spec - down);
            cleaned += down;
        }
        // Then scale down healthy old replicas while availability allows.
        let available: i32 = self.rss.iter().map(Working::available).sum();
        if available > min_available {
            let total = available - min_available;
            let mut done = 0;
            for &i in &olds {
                if done >= total {
                    break;
                }
                let spec = self.rss[i].spec_replicas();
                if spec == 0 {
                    continue;
                }
                let down = spec.min(total - done);
                scaled |= self.scale_rs(i, spec - down);
                done += down;
            }
        }
        scaled
    }

    fn recreate(&mut self) {
        self.sync_revision(false);
        let mut scaled = false;
        let olds: Vec<usize> = self.olds().collect();
        for i in olds.iter().copied() {
            if self.rss[i].spec_replicas() > 0 {
                scaled |= self.scale_rs(i, 0);
            }
        }
        if scaled {
            self.sync_status(true);
            return;
        }
        if self.old_pods_running(&olds) {
            self.sync_status(true);
            return;
        }
        if self.new.is_none() {
            self.sync_revision(true);
        }
        if let Some(new) = self.new {
            let desired = replicas(self.d);
            self.scale_rs(new, desired);
        }
        if deployment_complete(self.d, &status::calculate(self)) {
            self.cleanup();
        }
        self.sync_status(true);
    }

    fn old_pods_running(&self, olds: &[usize]) -> bool {
        if olds.iter().any(|&i| self.rss[i].status_replicas() > 0) {
            return true;
        }
        olds.iter().any(|&i| {
            let uid = self.rss[i].rs.metadata.uid.as_deref().unwrap_or_default();
            self.pods
                .iter()
                .any(|p| is_controlled_by(&p.metadata, uid) && !is_terminal(p))
        })
    }

    /// Proportional scaling (kube-controller-manager's `scale`).
    pub fn scale(&mut self) {
        let desired = replicas(self.d);
        let active: Vec<usize> = (0..self.rss.len())
            .filter(|&i| self.rss[i].spec_replicas() > 0)
            .collect();
        let active_or_latest = match active.as_slice() {
            [] => self
                .new
                .or_else(|| (0..self.rss.len()).max_by_key(|&i| self.rss[i].created_at())),
            [one] => Some(*one),
            _ => None,
        };
        if let Some(i) = active_or_latest {
            if self.rss[i].spec_replicas() != desired {
                self.scale_rs(i, desired);
            }
            return;
        }
        if let Some(new) = self.new
            && self.is_saturated(new)
        {
            let olds: Vec<usize> = self
                .olds()
                .filter(|&i| self.rss[i].spec_replicas() > 0)
                .collect();
            for i in olds {
                self.scale_rs(i, 0);
            }
            return;
        }
        if is_recreate(self.d) {
            return;
        }
        let mut active = active;
        let total: i32 = active.iter().map(|&i| self.rss[i].spec_replicas()).sum();
        let allowed = if desired > 0 {
            desired + max_surge(self.d)
        } else {
            0
        };
        let to_add = allowed - total;
        if to_add > 0 {
            // Larger first; for equal sizes, newer first.
            active.sort_by(|&a, &b| {
                self.rss[b]
                    .spec_replicas()
                    .cmp(&self.rss[a].spec_replicas())
                    .then_with(|| self.rss[b].created_at().cmp(&self.rss[a].created_at()))
            });
        } else if to_add < 0 {
            // Larger first; for equal sizes, older first.
            active.sort_by(|&a, &b| {
                self.rss[b]
                    .spec_replicas()
                    .cmp(&self.rss[a].spec_replicas())
                    .then_with(|| self.rss[a].created_at().cmp(&self.rss[b].created_at()))
            });
        }
        let mut added = 0;
        let mut sizes = Vec::new();
        for &i in &active {
            let current = self.rss[i].spec_replicas();
            if to_add != 0 {
                let proportion = self.proportion(i, to_add, added);
                sizes.push(current + proportion);
                added += proportion;
            } else {
                sizes.push(current);
            }
        }
        for (position, &i) in active.iter().enumerate() {
            let mut size = sizes[position];
            if position == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_rs(i, size);
        }
    }

    fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
        let current = self.rss[i].spec_replicas();
        if current == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let desired = replicas(self.d);
        let fraction = if desired == 0 {
            -current
        } else {
            let max_now = desired + max_surge(self.d);
            let before = self.rss[i]
                .annotation(MAX_REPLICAS)
                .filter(|m| *m != 0)
                .unwrap_or_else(|| self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
            if before == 0 {
                0
            } else {
                let size = f64::from(current) * f64::from(max_now) / f64::from(before);
                size.round() as i32 - current
            }
        };
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    fn is_saturated(&self, new: usize) -> bool {
        let desired = replicas(self.d);
        let w = &self.rss[new];
        w.spec_replicas() == desired
            && w.annotation(DESIRED_REPLICAS) == Some(desired)
            && w.available() == desired
    }

    /// Delete old ReplicaSets beyond `revisionHistoryLimit` (default 10).
    pub fn cleanup(&mut self) {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let mut cleanable: Vec<usize> = self
            .olds()
            .filter(|&i| {
                let w = &self.rss[i];
                !w.created
                    && w.spec_replicas() == 0
                    && w.status_replicas() == 0
                    && w.rs.metadata.deletion_timestamp.is_none()
            })
            .collect();
        if cleanable.len() <= limit {
            return;
        }
        cleanable.sort_by_key(|&i| (revision(&self.rss[i].rs.metadata), self.rss[i].created_at()));
        let excess = cleanable.len() - limit;
        for &i in cleanable.iter().take(excess) {
            let meta = &self.rss[i].rs.metadata;
            self.deletes.push((
                meta.name.clone().unwrap_or_default(),
                meta.uid.clone().unwrap_or_default(),
            ));
        }
    }

    fn sync_status(&mut self, rollout: bool) {
        status::sync(self, rollout);
    }
}
