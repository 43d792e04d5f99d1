//! Where the benches' pod start time goes: per pod, the moments it passed each milestone (its
//! create request or first sighting, its binding, the Docker events of its sandbox and app
//! container, Running seen on a watch), cut into consecutive phases.
//!
//! Pure: [`parse_event`] reads one line of `docker events --format '{{json .}}'` (matched by the
//! agent's `io.skiff.pod.name` and `io.skiff.kind` labels), [`container_milestones`] turns
//! events into milestones, [`phases`] turns milestones into per-phase samples. A pod missing a
//! milestone contributes to no phase that needs it. [`docker_events`] is the thin I/O.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::stats::Samples;

/// One container event of a pod, as `docker events` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerEvent {
    pub pod: String,
    /// The `io.skiff.kind` label: `sandbox`, `container` or `init`.
    pub kind: String,
    /// `create`, `start`, `die`, ...
    pub action: String,
    pub at: SystemTime,
}

/// When each pod (by name) passed one point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Milestone {
    pub name: String,
    pub at: HashMap<String, SystemTime>,
}

impl Milestone {
    pub fn new(name: &str, at: HashMap<String, SystemTime>) -> Milestone {
        Milestone {
            name: name.to_string(),
            at,
        }
    }
}

/// One line of `docker events --format '{{json .}}'`; `None` for anything that is not a
/// container event of a Skiff pod.
pub fn parse_event(line: &str) -> Option<ContainerEvent> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("Type")?.as_str()? != "container" {
        return None;
    }
    let attributes = value.get("Actor")?.get("Attributes")?;
    let label = |name: &str| Some(attributes.get(name)?.as_str()?.to_string());
    let nanos = value.get("timeNano")?.as_u64()?;
    Some(ContainerEvent {
        pod: label("io.skiff.pod.name")?,
        kind: label("io.skiff.kind")?,
        action: value.get("Action")?.as_str()?.to_string(),
        at: UNIX_EPOCH + Duration::from_nanos(nanos),
    })
}

/// "sandbox created", "sandbox started", "app created", "app started": each pod's first such
/// event (a restart does not move a milestone).
pub fn container_milestones(events: &[ContainerEvent]) -> Vec<Milestone> {
    let points = [
        ("sandbox", "create", "sandbox created"),
        ("sandbox", "start", "sandbox started"),
        ("container", "create", "app created"),
        ("container", "start", "app started"),
    ];
    points
        .iter()
        .map(|(kind, action, name)| {
            let mut at: HashMap<String, SystemTime> = HashMap::new();
            for event in events
                .iter()
                .filter(|e| e.kind == *kind && e.action == *action)
            {
                let slot = at.entry(event.pod.clone()).or_insert(event.at);
                if event.at < *slot {
                    *slot = event.at;
                }
            }
            Milestone::new(name, at)
        })
        .collect()
}

/// Per-phase samples (`"sandbox started -> app created"`, ...) from each milestone to the next,
/// over the pods that passed both.
pub fn phases(milestones: &[Milestone]) -> Vec<(String, Samples)> {
    milestones
        .windows(2)
        .map(|pair| {
            let (from, to) = (&pair[0], &pair[1]);
            let mut samples = Samples::default();
            for (pod, start) in &from.at {
                if let Some(end) = to.at.get(pod) {
                    samples
                        .latencies
                        .push(end.duration_since(*start).unwrap_or_default());
                }
            }
            (format!("{} -> {}", from.name, to.name), samples)
        })
        .collect()
}

/// The node's container events from `since` until now (`docker events` with an end, so it
/// returns); empty (with a warning) when Docker cannot say.
pub async fn docker_events(node: &str, since: SystemTime) -> Vec<ContainerEvent> {
    let seconds = |t: SystemTime| {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
    };
    let until = SystemTime::now() + Duration::from_secs(1);
    let out = tokio::process::Command::new("docker")
        .args(["events", "--format", "{{json .}}"])
        .args(["--since", &seconds(since - Duration::from_secs(1))])
        .args(["--until", &seconds(until)])
        .args(["--filter", "type=container"])
        .args(["--filter", &format!("label=io.skiff.node={node}")])
        .stdin(Stdio::null())
        .output()
        .await;
    match out {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(parse_event)
            .collect(),
        Err(e) => {
            eprintln!("warning: docker events: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
