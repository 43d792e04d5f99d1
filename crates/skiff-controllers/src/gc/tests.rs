//! Garbage collection with background, foreground and orphan propagation.

use super::*;

fn node(uid: &str, owners: &[(&str, bool)], deleting: bool, finalizers: &[&str]) -> Node {
    Node {
        uid: uid.into(),
        api_version: "v1".into(),
        kind: "Thing".into(),
        plural: "things".into(),
        namespace: Some("default".into()),
        name: uid.into(),
        owners: owners
            .iter()
            .map(|(uid, block)| Owner {
                uid: (*uid).into(),
                api_version: "v1".into(),
                kind: "Thing".into(),
                name: (*uid).into(),
                block_owner_deletion: *block,
            })
            .collect(),
        deleting,
        finalizers: finalizers.iter().map(|f| (*f).to_string()).collect(),
    }
}

#[test]
fn background_deletes_orphaned_dependents() {
    // The deployment is gone: its ReplicaSet goes, and in a later pass its pods.
    let graph = vec![
        node("rs", &[("deploy", true)], false, &[]),
        node("pod", &[("rs", true)], false, &[]),
    ];
    let changes = plan(&graph);
    assert_eq!(changes.len(), 1);
    assert!(matches!(&changes[0], Change::Delete { uid, foreground: false, .. } if uid == "rs"));
    let graph = vec![node("pod", &[("rs", true)], false, &[])];
    assert!(matches!(&plan(&graph)[0], Change::Delete { uid, .. } if uid == "pod"));
}

#[test]
fn a_live_owner_keeps_the_object_and_dangling_references_are_removed() {
    let graph = vec![
        node("a", &[], false, &[]),
        node("x", &[("a", false), ("gone", false)], false, &[]),
    ];
    assert_eq!(
        plan(&graph),
        vec![Change::RemoveOwners {
            uid: "x".into(),
            owners: vec!["gone".into()]
        }]
    );
}

#[test]
fn foreground_deletes_dependents_then_releases_the_owner() {
    let graph = vec![
        node("deploy", &[], true, &[FOREGROUND]),
        node("rs", &[("deploy", true)], false, &[]),
        node("pod", &[("rs", true)], false, &[]),
    ];
    let changes = plan(&graph);
    assert!(changes.contains(&Change::Delete {
        uid: "rs".into(),
        foreground: true,
        absent_owners: vec![]
    }));
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::RemoveFinalizer { .. }))
    );
    // Once the ReplicaSet is gone, the finalizer goes.
    let graph = vec![node("deploy", &[], true, &[FOREGROUND])];
    assert_eq!(
        plan(&graph),
        vec![Change::RemoveFinalizer {
            uid: "deploy".into(),
            finalizer: FOREGROUND.into()
        }]
    );
    // A dependent that does not block does not hold the owner.
    let graph = vec![
        node("deploy", &[], true, &[FOREGROUND]),
        node("cm", &[("deploy", false)], true, &[]),
    ];
    assert!(plan(&graph).contains(&Change::RemoveFinalizer {
        uid: "deploy".into(),
        finalizer: FOREGROUND.into()
    }));
}

#[test]
fn orphan_removes_references_then_the_finalizer() {
    let graph = vec![
        node("rs", &[], true, &[ORPHAN]),
        node("p1", &[("rs", true)], false, &[]),
        node("p2", &[("rs", true)], false, &[]),
    ];
    let changes = plan(&graph);
    assert_eq!(
        changes,
        vec![
            Change::RemoveOwners {
                uid: "p1".into(),
                owners: vec!["rs".into()]
            },
            Change::RemoveOwners {
                uid: "p2".into(),
                owners: vec!["rs".into()]
            },
            Change::RemoveFinalizer {
                uid: "rs".into(),
                finalizer: ORPHAN.into()
            },
        ]
    );
}
