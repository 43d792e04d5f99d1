//! Tests of the agent-cost readers: Prometheus counters and `/proc/<pid>/stat`.

use super::{Operations, difference, parse, parse_cpu_seconds};

const BEFORE: &str = r#"# HELP kubelet_docker_operations_total Cumulative number of Docker operations by operation type
# TYPE kubelet_docker_operations_total counter
kubelet_docker_operations_total{operation_type="create_container"} 2
kubelet_docker_operations_total{operation_type="list_containers"} 10
kubelet_docker_operations_duration_seconds_bucket{operation_type="list_containers",le="0.005"} 3
kubelet_docker_operations_duration_seconds_sum{operation_type="create_container"} 0.5
kubelet_docker_operations_duration_seconds_sum{operation_type="list_containers"} 1.25
kubelet_docker_operations_duration_seconds_count{operation_type="list_containers"} 10
kubelet_pod_worker_duration_seconds_sum{operation_type="sync"} 0.75
kubelet_pod_worker_duration_seconds_count{operation_type="sync"} 3
kubelet_running_pods 1
"#;

#[test]
fn reads_counts_and_summed_durations_by_operation() {
    let ops = parse(BEFORE);
    assert_eq!(
        ops,
        Operations::from([
            ("create_container".to_string(), (2.0, 0.5)),
            ("list_containers".to_string(), (10.0, 1.25)),
            ("worker sync".to_string(), (3.0, 0.75)),
        ])
    );
}

#[test]
fn the_difference_keeps_only_operations_with_new_calls() {
    let before = parse(BEFORE);
    let after = parse(
        &BEFORE
            .replace("\"list_containers\"} 10", "\"list_containers\"} 40")
            .replace("\"list_containers\"} 1.25", "\"list_containers\"} 4.25")
            .replace(
                "kubelet_running_pods 1",
                "kubelet_docker_operations_total{operation_type=\"start_container\"} 3",
            ),
    );
    assert_eq!(
        difference(&before, &after),
        Operations::from([
            ("list_containers".to_string(), (30.0, 3.0)),
            ("start_container".to_string(), (3.0, 0.0)),
        ])
    );
    assert!(parse("").is_empty());
    assert!(parse("kubelet_docker_operations_total{operation_type=\"x\"} nope\n").is_empty());
}

#[test]
fn cpu_seconds_come_after_the_command_name() {
    // A name with spaces and a parenthesis must not shift the fields.
    let stat =
        "4242 (skiff (a) b) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 0 0";
    assert_eq!(parse_cpu_seconds(stat, 100.0), Some(3.0));
    assert_eq!(parse_cpu_seconds("4242 (x) S 1", 100.0), None);
    assert_eq!(parse_cpu_seconds("garbage", 100.0), None);
}
