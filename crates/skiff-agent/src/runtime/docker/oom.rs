//! When a container's kill may still be waiting for Docker's OOM flag: the engine handles the
//! kernel's OOM event and the container's exit separately, so the flag can land just after.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::parse_time;

/// How long a fresh SIGKILL exit under a memory limit waits for Docker's OOM flag.
pub(super) const OOM_REPORT_GRACE: Duration = Duration::from_millis(300);

/// True for a container that exited with 137 (SIGKILL) less than two seconds before `now`,
/// has a memory limit, and is not (yet) marked OOM-killed.
pub(super) fn oom_report_may_be_late(
    inspect: &bollard::models::ContainerInspectResponse,
    now: Timestamp,
) -> bool {
    let Some(state) = inspect.state.as_ref() else {
        return false;
    };
    let limited = inspect
        .host_config
        .as_ref()
        .and_then(|h| h.memory)
        .is_some_and(|m| m > 0);
    let recent = parse_time(state.finished_at.as_deref()).is_some_and(|finished| {
        let ago = now.duration_since(finished);
        ago >= k8s_openapi::jiff::SignedDuration::ZERO
            && ago < k8s_openapi::jiff::SignedDuration::from_secs(2)
    });
    state.running != Some(true)
        && state.exit_code == Some(137)
        && state.oom_killed != Some(true)
        && limited
        && recent
}
