//! Tests for the restart back-off: doubling, the cap, and the reset after ten quiet minutes.

use super::*;

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("valid timestamp")
}

#[test]
fn first_failure_restarts_at_once() {
    assert_eq!(in_backoff(None, t(0), t(0)), None);
    assert_eq!(next(None, t(0), t(0)).delay, INITIAL);
}

#[test]
fn delays_double_up_to_the_cap() {
    let mut entry = next(None, t(0), t(0));
    let mut clock = 0;
    let mut seen = vec![entry.delay.as_secs()];
    for _ in 0..8 {
        // The container crashes 1 s after each restart.
        let crash = clock + 1;
        let until =
            in_backoff(Some(&entry), t(crash), t(crash)).expect("in back-off right after a crash");
        assert_eq!(until, t(crash + entry.delay.as_secs() as i64));
        assert_eq!(
            in_backoff(Some(&entry), t(crash), until),
            None,
            "back-off ends at its deadline"
        );
        clock = crash + entry.delay.as_secs() as i64;
        entry = next(Some(&entry), t(crash), t(clock));
        seen.push(entry.delay.as_secs());
    }
    assert_eq!(seen, vec![10, 20, 40, 80, 160, 300, 300, 300, 300]);
}

#[test]
fn ten_minutes_of_running_resets() {
    let entry = Backoff {
        delay: Duration::from_secs(160),
        last_update: t(0),
    };
    // Crash 601 s after the last restart: forgotten, restart at once with the initial delay.
    assert_eq!(in_backoff(Some(&entry), t(601), t(601)), None);
    assert_eq!(next(Some(&entry), t(601), t(601)).delay, INITIAL);
    // Crash 599 s after: still counts.
    assert!(in_backoff(Some(&entry), t(599), t(600)).is_some());
    assert_eq!(
        next(Some(&entry), t(599), t(800)).delay,
        Duration::from_secs(300)
    );
}
