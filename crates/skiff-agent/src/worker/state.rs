//! The pod worker's lifecycle as an explicit state machine: which pod version it holds and
//! whether it syncs, tears down or has finished, driven by a closed set of events.
//!
//! A container event the engine recorded before the worker's last observation began is already
//! in that observation (Docker records an event after the change it reports, and the observation
//! inspects each container): it causes no sync. The worker's own creates and starts would
//! otherwise sync every new pod once more for nothing. The periodic resync stays the safety net.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

#[derive(Clone, Debug)]
pub enum Event {
    /// A new version of the pod from the API.
    Update(Box<Pod>),
    /// The pod is no longer in the API (deleted, possibly while the agent was down).
    Gone,
    /// Something may have changed (a timer, a test): sync again.
    Wake,
    /// A container of the pod changed; `at` is when the engine recorded it, if it says.
    ContainerChanged { at: Option<Timestamp> },
    /// The agent stops: leave containers as they are (a restarted agent re-adopts them).
    Shutdown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Drives the pod towards its spec.
    Syncing,
    /// The pod is being deleted (or gone): stops and removes its containers.
    Terminating { gone: bool },
    /// Nothing of the pod is left (or the agent is stopping); the worker ends.
    Finished,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Sync,
    Exit,
    Nothing,
}

/// One transition. `pod` is the worker's current pod, replaced on updates; `observed_at` is when
/// the observation the worker last acted on began (`None` before the first).
pub fn step(
    state: &State,
    pod: &mut Pod,
    event: Event,
    observed_at: Option<Timestamp>,
) -> (State, Command) {
    match (state, event) {
        (State::Finished, _) => (State::Finished, Command::Exit),
        (_, Event::Shutdown) => (State::Finished, Command::Exit),
        (State::Terminating { gone: true }, Event::Update(_)) => (state.clone(), Command::Sync),
        (_, Event::Update(new)) => {
            // A pod with another uid under the same name is another pod: the shell routes by uid,
            // so an update here always has ours.
            *pod = *new;
            if pod.metadata.deletion_timestamp.is_some() {
                (State::Terminating { gone: false }, Command::Sync)
            } else if matches!(state, State::Terminating { .. }) {
                // Deletion is never undone.
                (state.clone(), Command::Sync)
            } else {
                (State::Syncing, Command::Sync)
            }
        }
        (_, Event::Gone) => (State::Terminating { gone: true }, Command::Sync),
        (s, Event::Wake) => (s.clone(), Command::Sync),
        (s, Event::ContainerChanged { at }) => {
            let seen = matches!((at, observed_at), (Some(at), Some(observed)) if at < observed);
            let command = if seen {
                Command::Nothing
            } else {
                Command::Sync
            };
            (s.clone(), command)
        }
    }
}

#[cfg(test)]
mod tests;
