//! Deployment plan details: fenceposts, the new ReplicaSet, annotations, events.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::simulation::{World, deployment};
use super::*;

#[test]
fn fenceposts_use_kubernetes_rounding() {
    let cases = [
        (
            10,
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into()),
            (3, 2),
        ),
        (
            1,
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into()),
            (1, 0),
        ),
        (
            3,
            IntOrString::Int(0),
            IntOrString::String("10%".into()),
            (0, 1),
        ),
        (5, IntOrString::Int(2), IntOrString::Int(9), (2, 5)),
    ];
    for (replicas, surge, unavailable, want) in cases {
        let d = deployment(replicas, surge, unavailable, "v1");
        assert_eq!((max_surge(&d), max_unavailable(&d)), want, "{replicas}");
    }
}

#[test]
fn first_pass_creates_the_new_replica_set() {
    let d = deployment(3, IntOrString::Int(1), IntOrString::Int(0), "nginx");
    let now = "2024-01-01T00:00:00Z".parse().unwrap_or_default();
    let plan = plan(&d, &[], &[], now);
    let Some(Change::CreateReplicaSet(rs)) = plan.changes.first() else {
        panic!("{:?}", plan.changes);
    };
    let hash = crate::hash::pod_template_hash(&d.spec.clone().unwrap_or_default().template, None);
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    let annotations = rs.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get(REVISION).map(String::as_str), Some("1"));
    assert_eq!(
        annotations.get(DESIRED_REPLICAS).map(String::as_str),
        Some("3")
    );
    assert_eq!(annotations.get(MAX_REPLICAS).map(String::as_str), Some("4"));
    let spec = rs.spec.clone().unwrap_or_default();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(
        spec.selector
            .match_labels
            .unwrap_or_default()
            .get(POD_TEMPLATE_HASH),
        Some(&hash)
    );
    let labels = spec
        .template
        .and_then(|t| t.metadata)
        .and_then(|m| m.labels)
        .unwrap_or_default();
    assert_eq!(labels.get(POD_TEMPLATE_HASH), Some(&hash));
    let owner = rs.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(
        owner
            .first()
            .map(|o| (o.kind.as_str(), o.controller, o.block_owner_deletion)),
        Some(("Deployment", Some(true), Some(true)))
    );
    assert!(plan.changes.contains(&Change::SetRevision("1".into())));
    assert!(plan.changes.contains(&Change::Event(Record::normal(
        "ScalingReplicaSet",
        format!("Scaled up replica set web-{hash} from 0 to 3")
    ))));
    let status = plan.changes.iter().find_map(|c| match c {
        Change::UpdateStatus(s) => Some(s.clone()),
        _ => None,
    });
    let conditions = status.and_then(|s| s.conditions).unwrap_or_default();
    let progressing = conditions.iter().find(|c| c.type_ == "Progressing");
    assert_eq!(
        progressing.and_then(|c| c.reason.as_deref()),
        Some("NewReplicaSetCreated")
    );
    assert_eq!(
        progressing.and_then(|c| c.message.clone()),
        Some(format!("Created new replica set \"web-{hash}\""))
    );
}

#[test]
fn status_counts_and_observed_generation() {
    let mut world = World::new(deployment(
        3,
        IntOrString::Int(1),
        IntOrString::Int(0),
        "v1",
    ));
    world.settle(10);
    let status = world.d.status.clone().unwrap_or_default();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas,
            status.unavailable_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3), Some(0))
    );
    let available = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Available");
    assert_eq!(
        available.and_then(|c| c.reason.as_deref()),
        Some("MinimumReplicasAvailable")
    );
    assert!(
        world
            .events
            .iter()
            .any(|e| e.starts_with("Scaled up replica set web-"))
    );
}

#[test]
fn revision_history_annotation() {
    assert_eq!(append_revision_history("", "1").as_deref(), Some("1"));
    assert_eq!(
        append_revision_history("1,3", "4").as_deref(),
        Some("1,3,4")
    );
    let long = vec!["12345"; 400].join(",");
    let appended = append_revision_history(&long, "9").unwrap_or_default();
    assert!(appended.len() <= 2000 && appended.ends_with(",9"));
}

#[test]
fn templates_equal_ignoring_the_hash_label() {
    let d = deployment(1, IntOrString::Int(1), IntOrString::Int(0), "v1");
    let a = d.spec.clone().unwrap_or_default().template;
    let mut b = a.clone();
    b.metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.into(), "abc".into());
    assert!(equal_ignore_hash(&a, &b));
    let mut c = a.clone();
    if let Some(container) = c.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        container.image = Some("v2".into());
    }
    assert!(!equal_ignore_hash(&a, &c));
}

#[test]
fn waits_for_replica_set_status_to_catch_up() {
    let mut world = World::new(deployment(
        3,
        IntOrString::Int(1),
        IntOrString::Int(0),
        "v1",
    ));
    world.settle(5);
    if let Some(rs) = world.rss.first_mut() {
        rs.metadata.generation = Some(9);
    }
    let plan = plan(&world.d, &world.rss, &world.pods, world.now);
    assert!(plan.changes.is_empty());
    assert_eq!(plan.requeue_after_seconds, Some(1));
}
