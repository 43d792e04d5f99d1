//! The aggregate failure message, word for word as kube-scheduler's.

use super::*;

fn st(code: Code, reasons: &[&'static str]) -> Status {
    Status {
        code,
        reasons: reasons.iter().map(|r| Cow::Borrowed(*r)).collect(),
    }
}

#[test]
fn histogram_is_sorted_as_strings_and_counts_every_reason() {
    let fit = FitError {
        num_all_nodes: 3,
        pre_filter_message: None,
        node_statuses: vec![
            ("a".into(), st(Code::Unschedulable, &["Insufficient cpu"])),
            ("b".into(), st(Code::Unschedulable, &["Insufficient cpu", "Insufficient memory"])),
            ("c".into(), Status::new(Code::UnschedulableAndUnresolvable, reasons::untolerated_taint("key", "value"))),
        ],
        post_filter_message: Some("preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.".into()),
    };
    assert_eq!(
        fit.message(),
        "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {key: value}, \
         2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
         2 No preemption victims found for incoming pod.."
    );
}

#[test]
fn pre_filter_message_replaces_the_histogram() {
    let fit = FitError {
        num_all_nodes: 2,
        pre_filter_message: Some("persistentvolumeclaim \"data\" not found".into()),
        node_statuses: vec![("a".into(), st(Code::UnschedulableAndUnresolvable, &["x"]))],
        post_filter_message: None,
    };
    assert_eq!(
        fit.message(),
        "0/2 nodes are available: persistentvolumeclaim \"data\" not found."
    );
}

#[test]
fn empty_cases() {
    let fit = FitError {
        num_all_nodes: 0,
        ..Default::default()
    };
    assert_eq!(fit.message(), "0/0 nodes are available:");
    assert_eq!(reasons::NO_NODES, "no nodes available to schedule pods");
}
