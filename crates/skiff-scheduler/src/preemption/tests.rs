//! Victim choice, PDBs, node choice and the "preemption: ..." messages.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::*;
use crate::schedule::{Algorithm, Error};
use crate::testing::*;

fn attempt(snap: &Snapshot, p: Pod, pdbs: &[PdbInfo]) -> (String, Outcome) {
    match Algorithm::new().schedule(snap, Arc::new(p)) {
        Err((Error::Fit(fit), Some(cycle))) => {
            let outcome = preempt(snap, &cycle, &fit, pdbs);
            (fit.message(), outcome)
        }
        other => panic!("expected a fit error, got {other:?}"),
    }
}

fn victim(name: &str, node: &str, cpu: &str, prio: i32) -> Pod {
    priority(on(pod(name, cpu, ""), node), prio)
}

#[test]
fn evicts_the_fewest_lowest_priority_pods() {
    let snap = snapshot(
        vec![node("n1", "2", "4Gi")],
        vec![
            victim("low", "n1", "500m", 1),
            victim("lower", "n1", "500m", 0),
            victim("mid", "n1", "1", 5),
        ],
    );
    let (_, outcome) = attempt(&snap, priority(pod("p", "1", ""), 10), &[]);
    // Removing "mid" alone is enough, but kube-scheduler reprieves the most important first:
    // mid is given back first and fits, then low, then lower don't fit -> victims low and lower.
    assert_eq!(
        outcome,
        Outcome::Nominated(Nomination {
            node: "n1".into(),
            victims: vec!["default/low".into(), "default/lower".into()],
            pdb_violations: 0
        })
    );
}

#[test]
fn only_lower_priority_pods_are_victims() {
    let snap = snapshot(
        vec![node("n1", "1", "4Gi")],
        vec![victim("same", "n1", "1", 10)],
    );
    let (message, outcome) = attempt(&snap, priority(pod("p", "1", ""), 10), &[]);
    assert_eq!(message, "0/1 nodes are available: 1 Insufficient cpu.");
    assert_eq!(
        outcome,
        Outcome::Failed(
            "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
                .into()
        )
    );
}

#[test]
fn unresolvable_nodes_are_not_helpful() {
    let snap = snapshot(
        vec![
            with_taint(node("n1", "1", "4Gi"), "a", "b", "NoSchedule"),
            node("n2", "1", "4Gi"),
        ],
        vec![victim("big", "n2", "1", 10)],
    );
    let (_, outcome) = attempt(&snap, priority(pod("p", "1", ""), 5), &[]);
    assert_eq!(
        outcome,
        Outcome::Failed("preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling.".into())
    );
}

#[test]
fn preemption_policy_never() {
    let snap = snapshot(
        vec![node("n1", "1", "4Gi")],
        vec![victim("low", "n1", "1", 0)],
    );
    let mut p = priority(pod("p", "1", ""), 10);
    p.spec
        .get_or_insert_with(Default::default)
        .preemption_policy = Some("Never".into());
    let (message, outcome) = attempt(&snap, p, &[]);
    let Outcome::Failed(post) = outcome else {
        panic!("nominated")
    };
    let full = crate::status::FitError {
        num_all_nodes: 1,
        pre_filter_message: None,
        node_statuses: vec![(
            "n1".into(),
            crate::status::Status::new(crate::status::Code::Unschedulable, "Insufficient cpu"),
        )],
        post_filter_message: Some(post),
    };
    assert_eq!(message, "0/1 nodes are available: 1 Insufficient cpu.");
    assert_eq!(
        full.message(),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.."
    );
}

#[test]
fn prefers_nodes_without_pdb_violations_then_lower_victim_priority() {
    let app = |p: Pod| labelled(p, &[("app", "db")]);
    let snap = snapshot(
        vec![
            node("n1", "1", "4Gi"),
            node("n2", "1", "4Gi"),
            node("n3", "1", "4Gi"),
        ],
        vec![
            app(victim("protected", "n1", "1", 1)),
            victim("important", "n2", "1", 4),
            victim("cheap", "n3", "1", 2),
        ],
    );
    let pdb = PdbInfo {
        namespace: "default".into(),
        selector: skiff_core::selector::LabelSelector::parse("app=db").unwrap_or_default(),
        disruptions_allowed: 0,
    };
    let (_, outcome) = attempt(
        &snap,
        priority(pod("p", "1", ""), 10),
        std::slice::from_ref(&pdb),
    );
    assert_eq!(
        outcome,
        Outcome::Nominated(Nomination {
            node: "n3".into(),
            victims: vec!["default/cheap".into()],
            pdb_violations: 0
        })
    );
    // With a PDB violation everywhere, the violating node is still used when it is the only one.
    let snap = snapshot(
        vec![node("n1", "1", "4Gi")],
        vec![app(victim("protected", "n1", "1", 1))],
    );
    let (_, outcome) = attempt(&snap, priority(pod("p", "1", ""), 10), &[pdb]);
    assert_eq!(
        outcome,
        Outcome::Nominated(Nomination {
            node: "n1".into(),
            victims: vec!["default/protected".into()],
            pdb_violations: 1
        })
    );
}

#[test]
fn prefers_fewer_victims_when_priorities_tie() {
    let snap = snapshot(
        vec![node("n1", "1", "4Gi"), node("n2", "1", "4Gi")],
        vec![
            victim("a", "n1", "500m", 1),
            victim("b", "n1", "500m", 1),
            victim("c", "n2", "1", 1),
        ],
    );
    // Sum of priorities is lower on n2 (one victim).
    let (_, outcome) = attempt(&snap, priority(pod("p", "1", ""), 10), &[]);
    assert_eq!(
        outcome,
        Outcome::Nominated(Nomination {
            node: "n2".into(),
            victims: vec!["default/c".into()],
            pdb_violations: 0
        })
    );
}
