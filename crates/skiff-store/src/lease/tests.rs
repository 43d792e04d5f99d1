//! Unit tests of lease deadlines with an explicit clock.

use std::time::{Duration, Instant};

use super::LeaseClock;

#[test]
fn expires_after_ttl_unless_kept_alive() {
    let t0 = Instant::now();
    let mut c = LeaseClock::default();
    c.granted(1, 10, t0);
    c.granted(2, 10, t0);
    assert!(c.expired(t0 + Duration::from_secs(9)).is_empty());
    assert_eq!(c.keep_alive(2, t0 + Duration::from_secs(9)), Some(10));
    assert_eq!(c.expired(t0 + Duration::from_secs(10)), vec![1]);
    assert_eq!(c.expired(t0 + Duration::from_secs(19)), vec![1, 2]);
    assert_eq!(c.keep_alive(3, t0), None);
}

#[test]
fn a_new_leader_restarts_every_ttl() {
    let t0 = Instant::now();
    let mut c = LeaseClock::default();
    c.granted(1, 5, t0);
    c.restart_all(t0 + Duration::from_secs(4));
    assert!(c.expired(t0 + Duration::from_secs(8)).is_empty());
    assert_eq!(c.expired(t0 + Duration::from_secs(9)), vec![1]);
    c.revoked(1);
    assert!(c.is_empty());
}

#[test]
fn reload_replaces_known_leases() {
    let t0 = Instant::now();
    let mut c = LeaseClock::default();
    c.granted(1, 5, t0);
    c.reload([(7, 3)], t0);
    assert_eq!(c.len(), 1);
    assert_eq!(c.remaining(7, t0), Some(3));
    assert_eq!(c.remaining(1, t0), None);
}
