//! Tests for the pod worker state machine.

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn pod(deleting: bool) -> Pod {
    let mut p = Pod::default();
    p.metadata.uid = Some("u".into());
    if deleting {
        p.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    }
    p
}

#[test]
fn transitions() {
    let mut current = pod(false);
    assert_eq!(
        step(&State::Syncing, &mut current, Event::Wake),
        (State::Syncing, Command::Sync)
    );
    assert_eq!(
        step(
            &State::Syncing,
            &mut current,
            Event::Update(Box::new(pod(true)))
        ),
        (State::Terminating { gone: false }, Command::Sync)
    );
    assert!(current.metadata.deletion_timestamp.is_some());
    assert_eq!(
        step(
            &State::Terminating { gone: false },
            &mut current,
            Event::Update(Box::new(pod(false)))
        ),
        (State::Terminating { gone: false }, Command::Sync),
        "deletion is never undone"
    );
    assert_eq!(
        step(&State::Syncing, &mut current, Event::Gone),
        (State::Terminating { gone: true }, Command::Sync)
    );
    assert_eq!(
        step(&State::Syncing, &mut current, Event::Shutdown),
        (State::Finished, Command::Exit)
    );
    assert_eq!(
        step(&State::Finished, &mut current, Event::Wake),
        (State::Finished, Command::Exit)
    );
}
