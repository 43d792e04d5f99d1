//! StatefulSet ordering, claims, condemned pods and the partitioned rolling update.

use serde_json::json;

use super::*;

fn now() -> Timestamp {
    "2024-01-01T00:00:00Z".parse().unwrap_or_default()
}

fn set(replicas: i32, parallel: bool, partition: i32) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "ss-uid", "generation": 1},
        "spec": {
            "replicas": replicas, "serviceName": "web",
            "podManagementPolicy": if parallel { "Parallel" } else { "OrderedReady" },
            "selector": {"matchLabels": {"app": "web"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "v1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }
    }))
    .unwrap_or_default()
}

/// A small world: applies the plan, makes created pods Running and Ready at once if `healthy`.
struct World {
    set: StatefulSet,
    pods: Vec<Pod>,
    claims: Vec<PersistentVolumeClaim>,
    revisions: Vec<ControllerRevision>,
    created: Vec<String>,
    deleted: Vec<String>,
}

impl World {
    fn pass(&mut self, healthy: bool) -> Vec<Change> {
        let plan = plan(&self.set, &self.pods, &self.claims, &self.revisions, now());
        for change in &plan.changes {
            match change {
                Change::CreateRevision(r) => {
                    let mut r = (**r).clone();
                    r.metadata.uid = Some(format!("rev-{}", r.revision));
                    self.revisions.push(r);
                }
                Change::UpdateRevision { name, revision } => {
                    if let Some(r) = self
                        .revisions
                        .iter_mut()
                        .find(|r| r.metadata.name.as_deref() == Some(name))
                    {
                        r.revision = *revision;
                    }
                }
                Change::DeleteRevision { name } => self
                    .revisions
                    .retain(|r| r.metadata.name.as_deref() != Some(name)),
                Change::CreateClaim(c) => self.claims.push((**c).clone()),
                Change::CreatePod(p) => {
                    let mut p = (**p).clone();
                    p.metadata.uid = p.metadata.name.clone();
                    if healthy {
                        p.status = serde_json::from_value(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})).ok();
                    }
                    self.created
                        .push(p.metadata.name.clone().unwrap_or_default());
                    self.pods.push(p);
                }
                Change::DeletePod { name, .. } => {
                    self.deleted.push(name.clone());
                    self.pods
                        .retain(|p| p.metadata.name.as_deref() != Some(name));
                }
                Change::UpdateStatus(s) => self.set.status = Some((**s).clone()),
                Change::Event(_) => {}
            }
        }
        plan.changes
    }

    fn image_of(&self, name: &str) -> Option<String> {
        let pod = self
            .pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))?;
        pod.spec.as_ref()?.containers.first()?.image.clone()
    }
}

fn world(s: StatefulSet) -> World {
    World {
        set: s,
        pods: vec![],
        claims: vec![],
        revisions: vec![],
        created: vec![],
        deleted: vec![],
    }
}

#[test]
fn ordered_ready_creates_one_at_a_time_with_claims_first() {
    let mut w = world(set(3, false, 0));
    let changes = w.pass(false);
    let kinds: Vec<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::CreateClaim(c) => c.metadata.name.as_deref(),
            Change::CreatePod(p) => p.metadata.name.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec!["data-web-0", "web-0"]);
    // web-0 not ready yet: nothing more.
    w.pass(false);
    assert_eq!(w.created, vec!["web-0"]);
    // Make it ready: web-1 follows.
    for p in &mut w.pods {
        p.status = serde_json::from_value(
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
        )
        .ok();
    }
    w.pass(true);
    w.pass(true);
    assert_eq!(w.created, vec!["web-0", "web-1", "web-2"]);
    let pod = w
        .pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("web-1"))
        .cloned()
        .unwrap_or_default();
    let spec = pod.spec.unwrap_or_default();
    assert_eq!(
        (spec.hostname.as_deref(), spec.subdomain.as_deref()),
        (Some("web-1"), Some("web"))
    );
    let volume = spec
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "data");
    assert_eq!(
        volume
            .and_then(|v| v.persistent_volume_claim)
            .map(|c| c.claim_name),
        Some("data-web-1".to_string())
    );
    let labels = pod.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("statefulset.kubernetes.io/pod-name")
            .map(String::as_str),
        Some("web-1")
    );
    assert_eq!(
        labels
            .get("apps.kubernetes.io/pod-index")
            .map(String::as_str),
        Some("1")
    );
    assert!(labels.contains_key(REVISION_LABEL));
}

#[test]
fn parallel_creates_all_at_once() {
    let mut w = world(set(3, true, 0));
    w.pass(false);
    assert_eq!(w.created, vec!["web-0", "web-1", "web-2"]);
}

#[test]
fn scale_down_deletes_the_highest_ordinal_first_one_at_a_time() {
    let mut w = world(set(3, false, 0));
    for _ in 0..4 {
        w.pass(true);
    }
    if let Some(spec) = w.set.spec.as_mut() {
        spec.replicas = Some(1);
    }
    w.pass(true);
    assert_eq!(w.deleted, vec!["web-2"]);
    w.pass(true);
    assert_eq!(w.deleted, vec!["web-2", "web-1"]);
    assert_eq!(w.claims.len(), 3, "claims are retained");
}

#[test]
fn partitioned_rolling_update_goes_down_by_ordinal() {
    let mut w = world(set(3, false, 1));
    for _ in 0..4 {
        w.pass(true);
    }
    let first_revision = w
        .set
        .status
        .as_ref()
        .and_then(|s| s.update_revision.clone());
    if let Some(spec) = w.set.spec.as_mut()
        && let Some(c) = spec
            .template
            .spec
            .as_mut()
            .and_then(|s| s.containers.first_mut())
    {
        c.image = Some("v2".into());
    }
    for _ in 0..10 {
        w.pass(true);
    }
    assert_eq!(w.deleted, vec!["web-2", "web-1"]);
    assert_eq!(w.image_of("web-2").as_deref(), Some("v2"));
    assert_eq!(w.image_of("web-1").as_deref(), Some("v2"));
    assert_eq!(
        w.image_of("web-0").as_deref(),
        Some("v1"),
        "below the partition"
    );
    let status = w.set.status.clone().unwrap_or_default();
    assert_eq!(status.updated_replicas, Some(2));
    assert_eq!(status.current_revision, first_revision);
    // Lowering the partition finishes the rollout and the current revision moves.
    if let Some(spec) = w.set.spec.as_mut() {
        spec.update_strategy = serde_json::from_value(
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
        )
        .ok();
    }
    for _ in 0..4 {
        w.pass(true);
    }
    assert_eq!(w.image_of("web-0").as_deref(), Some("v2"));
    let status = w.set.status.clone().unwrap_or_default();
    assert_eq!(status.current_revision, status.update_revision);
    assert_eq!(w.revisions.len(), 2);
}
