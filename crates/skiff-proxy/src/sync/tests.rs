//! Tests for the sync pacer: coalescing, minimum interval, back-off on failure.

use std::time::{Duration, Instant};

use super::Pacer;

const MS: Duration = Duration::from_millis(1);

#[test]
fn nothing_due_until_a_change() {
    let pacer = Pacer::new(50 * MS, 5000 * MS);
    assert_eq!(pacer.next_sync(Instant::now()), None);
}

#[test]
fn first_change_syncs_at_once_then_changes_coalesce_within_the_interval() {
    let t0 = Instant::now();
    let mut pacer = Pacer::new(50 * MS, 5000 * MS);
    pacer.changed();
    assert_eq!(pacer.next_sync(t0), Some(t0));
    pacer.started(t0);
    pacer.finished(true);
    assert_eq!(pacer.next_sync(t0 + 10 * MS), None);
    // Three changes 10 ms after the sync: one sync, 50 ms after the previous one.
    pacer.changed();
    pacer.changed();
    pacer.changed();
    assert_eq!(pacer.next_sync(t0 + 10 * MS), Some(t0 + 50 * MS));
    // A change long after the last sync is applied immediately.
    pacer.started(t0 + 50 * MS);
    pacer.finished(true);
    pacer.changed();
    assert_eq!(pacer.next_sync(t0 + 500 * MS), Some(t0 + 500 * MS));
}

#[test]
fn failures_back_off_exponentially_up_to_the_cap_and_reset_on_success() {
    let t0 = Instant::now();
    let mut pacer = Pacer::new(50 * MS, 300 * MS);
    pacer.changed();
    pacer.started(t0);
    pacer.finished(false);
    assert_eq!(pacer.next_sync(t0), Some(t0 + 100 * MS));
    pacer.started(t0);
    pacer.finished(false);
    assert_eq!(pacer.next_sync(t0), Some(t0 + 200 * MS));
    pacer.started(t0);
    pacer.finished(false);
    assert_eq!(pacer.next_sync(t0), Some(t0 + 300 * MS));
    pacer.started(t0);
    pacer.finished(true);
    assert_eq!(pacer.next_sync(t0), None);
    pacer.changed();
    assert_eq!(pacer.next_sync(t0), Some(t0 + 50 * MS));
}

#[test]
fn a_change_during_a_sync_makes_another_sync_due() {
    let t0 = Instant::now();
    let mut pacer = Pacer::new(50 * MS, 5000 * MS);
    pacer.changed();
    pacer.started(t0);
    pacer.changed();
    pacer.finished(true);
    assert_eq!(pacer.next_sync(t0 + MS), Some(t0 + 50 * MS));
}
