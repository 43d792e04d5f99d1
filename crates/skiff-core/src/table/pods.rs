//! The pod printer: READY, STATUS (the reason kubectl shows: `Init:0/1`, `ContainerCreating`,
//! `CrashLoopBackOff`, `Completed`, `Terminating`, ...), RESTARTS with the time of the last one,
//! and the wide IP, NODE, NOMINATED NODE and READINESS GATES columns.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::{AGE, Column, NAME, Printer, age, column, int, list, name_of, since, text};

const COLUMNS: [Column; 9] = [
    NAME,
    column(
        "Ready",
        "string",
        "The number of containers that are ready.",
        0,
    ),
    column(
        "Status",
        "string",
        "The aggregate state of the containers in this pod.",
        0,
    ),
    column(
        "Restarts",
        "string",
        "The number of times the containers have restarted, and when last.",
        0,
    ),
    AGE,
    column("IP", "string", "The IP address of the pod.", 1),
    column("Node", "string", "The node the pod is bound to.", 1),
    column(
        "Nominated Node",
        "string",
        "The node the pod is nominated to by preemption.",
        1,
    ),
    column(
        "Readiness Gates",
        "string",
        "How many readiness gates are satisfied.",
        1,
    ),
];

pub(super) fn printer(group: &str, resource: &str) -> Option<Printer> {
    (group.is_empty() && resource == "pods").then(|| Printer {
        columns: COLUMNS.to_vec(),
        cells,
        conditions,
    })
}

fn conditions(pod: &Value) -> Option<Value> {
    match text(pod, "/status/phase").as_str() {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    }
}

fn has_condition(pod: &Value, condition_type: &str) -> bool {
    list(pod, "/status/conditions").iter().any(|condition| {
        condition.get("type").and_then(Value::as_str) == Some(condition_type)
            && condition.get("status").and_then(Value::as_str) == Some("True")
    })
}

/// The later of two RFC 3339 timestamps (empty means none).
fn later(current: String, candidate: &str) -> String {
    match (current.parse::<Timestamp>(), candidate.parse::<Timestamp>()) {
        (_, Err(_)) => current,
        (Err(_), Ok(_)) => candidate.to_string(),
        (Ok(have), Ok(new)) => {
            if new > have {
                candidate.to_string()
            } else {
                current
            }
        }
    }
}

fn terminated_reason(terminated: &Value, prefix: &str) -> String {
    let reason = text(terminated, "/reason");
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = int(terminated, "/signal");
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int(terminated, "/exitCode"))
    }
}

fn is_restartable_init(pod: &Value, name: &str) -> bool {
    list(pod, "/spec/initContainers").iter().any(|container| {
        container.get("name").and_then(Value::as_str) == Some(name)
            && container.get("restartPolicy").and_then(Value::as_str) == Some("Always")
    })
}

struct Summary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: String,
}

fn summarize(pod: &Value) -> Summary {
    let phase = text(pod, "/status/phase");
    let status_reason = text(pod, "/status/reason");
    let mut reason = if status_reason.is_empty() {
        phase.clone()
    } else {
        status_reason.clone()
    };
    let gated = list(pod, "/status/conditions").iter().any(|condition| {
        condition.get("type").and_then(Value::as_str) == Some("PodScheduled")
            && condition.get("reason").and_then(Value::as_str) == Some("SchedulingGated")
    });
    if gated {
        reason = "SchedulingGated".to_string();
    }
    let init_specs = list(pod, "/spec/initContainers");
    let total = list(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|container| {
                container.get("restartPolicy").and_then(Value::as_str) == Some("Always")
            })
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart = String::new();
    let mut sidecar_restarts = 0;
    let mut sidecar_last_restart = String::new();
    let mut initializing = false;
    for (index, status) in list(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        let name = text(status, "/name");
        let count = int(status, "/restartCount");
        let finished = text(status, "/lastState/terminated/finishedAt");
        restarts += count;
        last_restart = later(last_restart, &finished);
        let sidecar = is_restartable_init(pod, &name);
        if sidecar {
            sidecar_restarts += count;
            sidecar_last_restart = later(sidecar_last_restart, &finished);
        }
        let terminated = status
            .pointer("/state/terminated")
            .filter(|value| !value.is_null());
        let waiting_reason = text(status, "/state/waiting/reason");
        if terminated.is_some_and(|terminated| int(terminated, "/exitCode") == 0) {
            continue;
        }
        if sidecar && status.get("started").and_then(Value::as_bool) == Some(true) {
            if status.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = match terminated {
            Some(terminated) => terminated_reason(terminated, "Init:"),
            None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                format!("Init:{waiting_reason}")
            }
            None => format!("Init:{index}/{}", init_specs.len()),
        };
        initializing = true;
        break;
    }
    if !initializing || has_condition(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for status in list(pod, "/status/containerStatuses").iter().rev() {
            restarts += int(status, "/restartCount");
            last_restart = later(
                last_restart,
                &text(status, "/lastState/terminated/finishedAt"),
            );
            let waiting = text(status, "/state/waiting/reason");
            let terminated = status
                .pointer("/state/terminated")
                .filter(|value| !value.is_null());
            if !waiting.is_empty() {
                reason = waiting;
            } else if let Some(terminated) = terminated {
                reason = terminated_reason(terminated, "");
            } else if status.get("ready").and_then(Value::as_bool) == Some(true)
                && status
                    .pointer("/state/running")
                    .is_some_and(|running| !running.is_null())
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_condition(pod, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|value| !value.is_null());
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }
    Summary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

fn cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let summary = summarize(pod);
    let restarts = if summary.restarts != 0 && !summary.last_restart.is_empty() {
        format!(
            "{} ({} ago)",
            summary.restarts,
            since(&summary.last_restart, now)
        )
    } else {
        summary.restarts.to_string()
    };
    let or_none = |value: String| {
        if value.is_empty() {
            "<none>".to_string()
        } else {
            value
        }
    };
    let mut ip = text(pod, "/status/podIPs/0/ip");
    if ip.is_empty() {
        ip = text(pod, "/status/podIP");
    }
    let gates = list(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let satisfied = gates
            .iter()
            .filter(|gate| {
                let wanted = gate
                    .get("conditionType")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                has_condition(pod, wanted)
            })
            .count();
        format!("{satisfied}/{}", gates.len())
    };
    vec![
        json!(name_of(pod)),
        json!(format!("{}/{}", summary.ready, summary.total)),
        json!(summary.reason),
        json!(restarts),
        json!(age(pod, now)),
        json!(or_none(ip)),
        json!(or_none(text(pod, "/spec/nodeName"))),
        json!(or_none(text(pod, "/status/nominatedNodeName"))),
        json!(readiness_gates),
    ]
}
