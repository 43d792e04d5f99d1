//! The Job controller: run pods until `completions` succeed (or, without completions, until one
//! succeeds and none is left running), at most `parallelism` at a time, `Indexed` or not; fail the
//! Job after more than `backoffLimit` failed pods or after `activeDeadlineSeconds`; delay new pods
//! after failures with exponential back-off (10 s doubling, at most 6 min); honour `suspend`;
//! delete finished Jobs `ttlSecondsAfterFinished` after they finish.
//!
//! Invariants: a finished Job (Complete or Failed) never creates pods again and deletes its
//! running ones; the succeeded and failed counts never go down (pods may disappear); the
//! condition pairs are Kubernetes' (SuccessCriteriaMet then Complete, FailureTarget then Failed).

pub mod shell;

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::events::Record;
use crate::replicaset::pod_from_template;
use crate::workload::{is_controlled_by, is_ready, phase, time};

/// The completion index annotation (and label) of Indexed Jobs' pods.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
const BACKOFF_BASE_SECONDS: i64 = 10;
const BACKOFF_MAX_SECONDS: i64 = 360;

/// One write the shell performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    CreatePod(Box<Pod>),
    DeletePod {
        name: String,
        uid: String,
    },
    UpdateStatus(Box<JobStatus>),
    /// Delete the Job itself (TTL after finished), foreground.
    DeleteJob,
    Event(Record),
}

/// The outcome of a pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub requeue_after_seconds: Option<i64>,
}

/// Whether a Job has a true Complete or Failed condition; returns which and when.
pub fn finished(job: &Job) -> Option<(&str, Option<Timestamp>)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| {
            (
                c.type_.as_str(),
                c.last_transition_time.as_ref().map(|t| t.0),
            )
        })
}

fn condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(time(now)),
        last_transition_time: Some(time(now)),
    }
}

fn index_of(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse()
        .ok()
}

fn finished_at(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .filter_map(|c| {
            c.state
                .as_ref()?
                .terminated
                .as_ref()?
                .finished_at
                .as_ref()
                .map(|t| t.0)
        })
        .max()
}

/// Plan one pass for a Job over the pods of its namespace.
pub fn plan(job: &Job, pods: &[Pod], now: Timestamp) -> Plan {
    let mut changes = Vec::new();
    let spec = job.spec.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let before = job.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let mine: Vec<&Pod> = pods
        .iter()
        .filter(|p| is_controlled_by(&p.metadata, &uid))
        .collect();
    let active: Vec<&Pod> = mine
        .iter()
        .copied()
        .filter(|p| {
            !matches!(phase(p), "Succeeded" | "Failed") && p.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let succeeded_pods: Vec<&Pod> = mine
        .iter()
        .copied()
        .filter(|p| phase(p) == "Succeeded")
        .collect();
    let failed_pods: Vec<&Pod> = mine
        .iter()
        .copied()
        .filter(|p| phase(p) == "Failed")
        .collect();
    let succeeded = (succeeded_pods.len() as i32).max(before.succeeded.unwrap_or(0));
    let failed = (failed_pods.len() as i32).max(before.failed.unwrap_or(0));
    let delete_active = |changes: &mut Vec<Change>| {
        for pod in &active {
            changes.push(Change::DeletePod {
                name: pod.metadata.name.clone().unwrap_or_default(),
                uid: pod.metadata.uid.clone().unwrap_or_default(),
            });
        }
    };

    if let Some((_, at)) = finished(job) {
        delete_active(&mut changes);
        let mut requeue = None;
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            let at = before
                .completion_time
                .as_ref()
                .map(|t| t.0)
                .or(at)
                .unwrap_or(now);
            let expiry = at + SignedDuration::from_secs(i64::from(ttl));
            if expiry <= now {
                changes.push(Change::DeleteJob);
            } else {
                requeue = Some(expiry.duration_since(now).as_secs() + 1);
            }
        }
        return Plan {
            changes,
            requeue_after_seconds: requeue,
        };
    }

    let start = before.start_time.as_ref().map(|t| t.0);
    let suspended = spec.suspend.unwrap_or(false);
    if start.is_none() && !suspended {
        status.start_time = Some(time(now));
    }
    let mut requeue: Option<i64> = None;
    let mut failure: Option<(&str, String)> = None;
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    if failed > backoff_limit {
        failure = Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".into(),
        ));
    } else if let (Some(deadline), Some(start)) = (spec.active_deadline_seconds, start)
        && !suspended
    {
        let due = start + SignedDuration::from_secs(deadline);
        if due <= now {
            failure = Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline".into(),
            ));
        } else {
            requeue = Some(due.duration_since(now).as_secs() + 1);
        }
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let succeeded_indexes: BTreeSet<i32> =
        succeeded_pods.iter().filter_map(|p| index_of(p)).collect();
    let complete = match (completions, indexed) {
        (Some(c), true) => succeeded_indexes.len() as i32 >= c,
        (Some(c), false) => succeeded >= c,
        (None, _) => succeeded > 0 && active.is_empty(),
    };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some((reason, message)) = &failure {
        delete_active(&mut changes);
        conditions.push(condition("FailureTarget", reason, message, now));
        conditions.push(condition("Failed", reason, message, now));
        changes.push(Change::Event(Record::warning(reason, message.clone())));
    } else if complete {
        delete_active(&mut changes);
        conditions.push(condition(
            "SuccessCriteriaMet",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            now,
        ));
        conditions.push(condition(
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            now,
        ));
        status.completion_time = Some(time(now));
        changes.push(Change::Event(Record::normal("Completed", "Job completed")));
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            requeue = Some(i64::from(ttl) + 1);
        }
    } else if suspended {
        delete_active(&mut changes);
        if !conditions
            .iter()
            .any(|c| c.type_ == "Suspended" && c.status == "True")
        {
            conditions.retain(|c| c.type_ != "Suspended");
            conditions.push(condition("Suspended", "JobSuspended", "Job suspended", now));
            changes.push(Change::Event(Record::normal("Suspended", "Job suspended")));
        }
    } else {
        if let Some(c) = conditions
            .iter_mut()
            .find(|c| c.type_ == "Suspended" && c.status == "True")
        {
            c.status = "False".into();
            c.reason = Some("JobResumed".into());
            c.message = Some("Job resumed".into());
            c.last_transition_time = Some(time(now));
            changes.push(Change::Event(Record::normal("Resumed", "Job resumed")));
        }
        let remaining = match completions {
            Some(c) if indexed => c - succeeded_indexes.len() as i32,
            Some(c) => c - succeeded,
            None if succeeded > 0 => 0,
            None => parallelism,
        };
        let want = parallelism.min(remaining.max(0));
        let mut missing = (want - active.len() as i32).max(0);
        // Back-off after failures.
        if missing > 0 && !failed_pods.is_empty() {
            let exponent = (failed.max(1) - 1).min(10) as u32;
            let delay = (BACKOFF_BASE_SECONDS * 2i64.pow(exponent)).min(BACKOFF_MAX_SECONDS);
            let last = failed_pods
                .iter()
                .filter_map(|p| {
                    finished_at(p).or(p.metadata.creation_timestamp.as_ref().map(|t| t.0))
                })
                .max();
            if let Some(last) = last {
                let ready_at = last + SignedDuration::from_secs(delay);
                if ready_at > now {
                    requeue = Some(
                        requeue.map_or(ready_at.duration_since(now).as_secs() + 1, |r| {
                            r.min(ready_at.duration_since(now).as_secs() + 1)
                        }),
                    );
                    missing = 0;
                }
            }
        }
        if missing > 0 {
            let template = spec.template.clone();
            let busy: BTreeSet<i32> = active.iter().filter_map(|p| index_of(p)).collect();
            let mut next_index = 0;
            for _ in 0..missing {
                let mut pod = pod_from_template(
                    &template,
                    "batch/v1",
                    "Job",
                    &job.metadata,
                    &format!("{name}-"),
                );
                if indexed {
                    while succeeded_indexes.contains(&next_index) || busy.contains(&next_index) {
                        next_index += 1;
                    }
                    if completions.is_some_and(|c| next_index >= c) {
                        break;
                    }
                    pod.metadata.generate_name = Some(format!("{name}-{next_index}-"));
                    pod.metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(COMPLETION_INDEX.into(), next_index.to_string());
                    pod.metadata
                        .labels
                        .get_or_insert_with(Default::default)
                        .insert(COMPLETION_INDEX.into(), next_index.to_string());
                    if let Some(spec) = pod.spec.as_mut() {
                        spec.hostname = Some(format!("{name}-{next_index}"));
                    }
                    next_index += 1;
                }
                changes.push(Change::CreatePod(Box::new(pod)));
            }
        }
    }
    if status.conditions.as_ref().is_some_and(Vec::is_empty) {
        status.conditions = None;
    }
    let finishing = failure.is_some() || complete || suspended;
    status.active = Some(if finishing { 0 } else { active.len() as i32 });
    status.ready = Some(if finishing {
        0
    } else {
        active.iter().filter(|p| is_ready(p)).count() as i32
    });
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    if indexed {
        status.completed_indexes = Some(compress(&succeeded_indexes)).filter(|s| !s.is_empty());
    }
    if status != before {
        changes.push(Change::UpdateStatus(Box::new(status)));
    }
    Plan {
        changes,
        requeue_after_seconds: requeue,
    }
}

/// `1,3-5,7` for a set of indexes.
pub fn compress(indexes: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests;
