//! The in-memory benchmark schedules everything that fits and spreads it (a correctness check,
//! not a timing assertion).

use super::*;

#[test]
fn small_in_memory_run_schedules_every_pod_evenly() {
    let report = in_memory(10, 200);
    assert_eq!((report.scheduled, report.unschedulable), (200, 0));
    let report = in_memory(2, 300);
    // 2 nodes x 110 pods.
    assert_eq!((report.scheduled, report.unschedulable), (220, 80));
}
