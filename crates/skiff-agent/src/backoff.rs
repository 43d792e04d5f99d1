//! Kubernetes' container restart and image pull back-off, as pure arithmetic over timestamps.
//!
//! A failure at `event_time` is in back-off while `now - event_time < delay`. Each restart after
//! a back-off doubles the delay (10 s, 20 s, ... capped at 5 min); an entry is forgotten when
//! the next failure comes more than twice the cap (10 min) after the last restart, so a
//! container that ran for 10 minutes starts over at 10 s.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

/// One container's (or image's) back-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub delay: Duration,
    /// When the last restart (or pull attempt) happened.
    pub last_update: Timestamp,
}

fn since(later: Timestamp, earlier: Timestamp) -> SignedDuration {
    later.duration_since(earlier)
}

fn expired(entry: &Backoff, event_time: Timestamp) -> bool {
    since(event_time, entry.last_update)
        > SignedDuration::try_from(MAX * 2).unwrap_or(SignedDuration::MAX)
}

/// `Some(until)` when a failure at `event_time` must still wait.
pub fn in_backoff(
    entry: Option<&Backoff>,
    event_time: Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    let entry = entry?;
    if expired(entry, event_time) {
        return None;
    }
    let delay = SignedDuration::try_from(entry.delay).ok()?;
    let until = event_time.checked_add(delay).ok()?;
    (now < until).then_some(until)
}

/// The entry after restarting (or retrying) at `now` following a failure at `event_time`.
pub fn next(entry: Option<&Backoff>, event_time: Timestamp, now: Timestamp) -> Backoff {
    match entry {
        Some(entry) if !expired(entry, event_time) => Backoff {
            delay: (entry.delay * 2).min(MAX),
            last_update: now,
        },
        _ => Backoff {
            delay: INITIAL,
            last_update: now,
        },
    }
}

#[cfg(test)]
mod tests;
