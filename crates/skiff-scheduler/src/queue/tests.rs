//! Priority order, parking and retry.

use super::*;

fn pod(priority: i32) -> Arc<Pod> {
    let mut pod = Pod::default();
    pod.spec.get_or_insert_with(Default::default).priority = Some(priority);
    Arc::new(pod)
}

#[test]
fn higher_priority_first_then_fifo() {
    let mut q = Queue::new();
    q.add("a".into(), pod(0));
    q.add("b".into(), pod(10));
    q.add("c".into(), pod(0));
    let order: Vec<String> = std::iter::from_fn(|| q.pop().map(|(k, _)| k)).collect();
    assert_eq!(order, vec!["b", "a", "c"]);
}

#[test]
fn parked_pods_wait_for_a_change_and_their_backoff() {
    let mut q = Queue::new();
    let t0 = Instant::now();
    q.add("a".into(), pod(0));
    assert!(q.pop().is_some());
    q.park("a", t0);
    assert_eq!(q.counts(), (0, 1));
    assert!(q.pop().is_none());
    // A change before the back-off ends does not release it; after, it does.
    assert_eq!(q.retry_parked(t0 + Duration::from_millis(500), true), 0);
    assert_eq!(q.retry_parked(t0 + Duration::from_secs(1), true), 1);
    assert_eq!(q.pop().map(|(k, _)| k), Some("a".to_string()));
    // Second failure: 2 s back-off; without a change it waits MAX_PARKED.
    q.park("a", t0);
    assert_eq!(q.next_retry(), Some(t0 + Duration::from_secs(2)));
    assert_eq!(q.retry_parked(t0 + Duration::from_secs(30), false), 0);
    assert_eq!(q.retry_parked(t0 + MAX_PARKED, false), 1);
    q.remove("a");
    assert!(q.pop().is_none());
}

#[test]
fn counts_follow_parking_updates_and_removals() {
    let mut q = Queue::new();
    let t0 = Instant::now();
    for key in ["a", "b", "c"] {
        q.add(key.into(), pod(0));
    }
    assert_eq!(q.counts(), (3, 0));
    while q.pop().is_some() {}
    q.park("a", t0);
    q.park("b", t0);
    assert_eq!(q.counts(), (1, 2));
    // An updated pod is active again, at once.
    q.add("a".into(), pod(0));
    assert_eq!(q.counts(), (2, 1));
    assert_eq!(q.pop().map(|(k, _)| k), Some("a".to_string()));
    // A removed parked pod is neither counted nor retried.
    q.remove("b");
    assert_eq!(q.counts(), (2, 0));
    assert_eq!(q.next_retry(), None);
    assert_eq!(q.retry_parked(t0 + MAX_PARKED, true), 0);
    // Parking an unknown key changes nothing.
    q.park("zzz", t0);
    assert_eq!(q.counts(), (2, 0));
}
