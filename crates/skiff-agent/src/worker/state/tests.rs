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
        step(&State::Syncing, &mut current, Event::Wake, None),
        (State::Syncing, Command::Sync)
    );
    assert_eq!(
        step(
            &State::Syncing,
            &mut current,
            Event::Update(Box::new(pod(true))),
            None
        ),
        (State::Terminating { gone: false }, Command::Sync)
    );
    assert!(current.metadata.deletion_timestamp.is_some());
    assert_eq!(
        step(
            &State::Terminating { gone: false },
            &mut current,
            Event::Update(Box::new(pod(false))),
            None
        ),
        (State::Terminating { gone: false }, Command::Sync),
        "deletion is never undone"
    );
    assert_eq!(
        step(&State::Syncing, &mut current, Event::Gone, None),
        (State::Terminating { gone: true }, Command::Sync)
    );
    assert_eq!(
        step(&State::Syncing, &mut current, Event::Shutdown, None),
        (State::Finished, Command::Exit)
    );
    assert_eq!(
        step(&State::Finished, &mut current, Event::Wake, None),
        (State::Finished, Command::Exit)
    );
}

fn at(second: i64) -> Option<k8s_openapi::jiff::Timestamp> {
    k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + second).ok()
}

#[test]
fn container_events_already_observed_cause_no_sync() {
    let mut current = pod(false);
    let cases = [
        // (event recorded at, last observation began at, command)
        (at(5), at(10), Command::Nothing),
        (at(10), at(10), Command::Sync),
        (at(11), at(10), Command::Sync),
        (at(5), None, Command::Sync),
        (None, at(10), Command::Sync),
        (None, None, Command::Sync),
    ];
    for (event_at, observed_at, want) in cases {
        for state in [State::Syncing, State::Terminating { gone: false }] {
            assert_eq!(
                step(
                    &state,
                    &mut current,
                    Event::ContainerChanged { at: event_at },
                    observed_at
                ),
                (state.clone(), want),
                "event at {event_at:?}, observed at {observed_at:?}"
            );
        }
    }
    assert_eq!(
        step(
            &State::Finished,
            &mut current,
            Event::ContainerChanged { at: at(11) },
            at(10)
        ),
        (State::Finished, Command::Exit)
    );
}
