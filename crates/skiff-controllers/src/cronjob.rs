//! The CronJob controller: at each scheduled time create a Job `<name>-<minutes since epoch>`
//! from the template, honouring `suspend`, `startingDeadlineSeconds` (a start missed by more is
//! skipped), `concurrencyPolicy` (Allow, Forbid: skip while one runs, Replace: delete the running
//! ones first), and the successful/failed history limits; keep `status.active`,
//! `lastScheduleTime` and `lastSuccessfulTime`.
//!
//! Schedules are evaluated in UTC; a `timeZone` other than UTC is reported (`UnknownTimeZone`)
//! and nothing is scheduled.
//!
//! Invariants: one Job per scheduled time (its name is derived from the time, so a repeated pass
//! cannot create two); only the most recent missed time is started; an unparsable schedule
//! creates nothing and says why in an event.

pub mod cron;
pub mod shell;

use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::events::Record;
use crate::job::finished;
use crate::workload::{is_controlled_by, owner_reference, seconds, time};

/// The annotation with the scheduled time on Jobs a CronJob creates.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// One write the shell performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    CreateJob(Box<Job>),
    /// Delete a Job (background propagation).
    DeleteJob {
        name: String,
        uid: String,
    },
    UpdateStatus(Box<CronJobStatus>),
    Event(Record),
}

/// The outcome of a pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub requeue_after_seconds: Option<i64>,
}

/// The name of the Job for a scheduled time.
pub fn job_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second().div_euclid(60))
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Plan one pass for a CronJob over the Jobs of its namespace.
pub fn plan(cron_job: &CronJob, jobs: &[Job], now: Timestamp) -> Plan {
    let mut changes = Vec::new();
    let spec = cron_job.spec.clone().unwrap_or_default();
    let name = cron_job.metadata.name.clone().unwrap_or_default();
    let uid = cron_job.metadata.uid.clone().unwrap_or_default();
    let before = cron_job.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let mine: Vec<&Job> = jobs
        .iter()
        .filter(|j| is_controlled_by(&j.metadata, &uid))
        .collect();
    let running: Vec<&Job> = mine
        .iter()
        .copied()
        .filter(|j| finished(j).is_none() && j.metadata.deletion_timestamp.is_none())
        .collect();
    let mut active: Vec<ObjectReference> = running.iter().map(|j| reference(j)).collect();
    for job in &mine {
        if let Some(("Complete", at)) = finished(job) {
            let completed = job
                .status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref())
                .map(|t| t.0)
                .or(at);
            if let Some(at) = completed
                && status
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|t| t.0 < at)
            {
                status.last_successful_time = Some(time(at));
            }
        }
    }
    // History limits.
    let prune = |kind: &str, limit: i32, changes: &mut Vec<Change>| {
        let mut done: Vec<&&Job> = mine
            .iter()
            .filter(|j| finished(j).map(|(k, _)| k) == Some(kind))
            .collect();
        let limit = limit.max(0) as usize;
        if done.len() > limit {
            done.sort_by_key(|j| {
                seconds(
                    j.status
                        .as_ref()
                        .and_then(|s| s.start_time.as_ref())
                        .or(j.metadata.creation_timestamp.as_ref()),
                )
            });
            for job in done.iter().take(done.len() - limit) {
                let job_name = job.metadata.name.clone().unwrap_or_default();
                changes.push(Change::DeleteJob {
                    name: job_name.clone(),
                    uid: job.metadata.uid.clone().unwrap_or_default(),
                });
                changes.push(Change::Event(Record::normal(
                    "SuccessfulDelete",
                    format!("Deleted job {job_name}"),
                )));
            }
        }
    };
    prune(
        "Complete",
        spec.successful_jobs_history_limit.unwrap_or(3),
        &mut changes,
    );
    prune(
        "Failed",
        spec.failed_jobs_history_limit.unwrap_or(1),
        &mut changes,
    );

    let mut requeue = None;
    let time_zone = spec.time_zone.as_deref().unwrap_or("UTC");
    match cron::Schedule::parse(&spec.schedule) {
        Err(error) => changes.push(Change::Event(Record::warning(
            "UnparseableSchedule",
            error.to_string(),
        ))),
        Ok(_) if !matches!(time_zone, "UTC" | "Etc/UTC" | "Etc/GMT" | "GMT" | "Z") => {
            changes.push(Change::Event(Record::warning(
                "UnknownTimeZone",
                format!("invalid timeZone: {time_zone:?}: only UTC is supported"),
            )))
        }
        Ok(_)
            if spec.suspend.unwrap_or(false) || cron_job.metadata.deletion_timestamp.is_some() => {}
        Ok(schedule) => {
            let earliest = before
                .last_schedule_time
                .as_ref()
                .map(|t| t.0)
                .or(cron_job.metadata.creation_timestamp.as_ref().map(|t| t.0))
                .unwrap_or(now);
            let earliest = match spec.starting_deadline_seconds {
                Some(deadline) => earliest.max(now - SignedDuration::from_secs(deadline)),
                None => earliest,
            };
            if let Some((scheduled, missed)) = schedule.most_recent(earliest, now) {
                if missed > 100 {
                    changes.push(Change::Event(Record::warning(
                        "TooManyMissedTimes",
                        "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                    )));
                }
                let too_late = spec
                    .starting_deadline_seconds
                    .is_some_and(|d| scheduled + SignedDuration::from_secs(d) < now);
                let job_name = job_name(&name, scheduled);
                let exists = jobs
                    .iter()
                    .any(|j| j.metadata.name.as_deref() == Some(job_name.as_str()));
                let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
                if too_late {
                    changes.push(Change::Event(Record::warning(
                        "MissSchedule",
                        format!("Missed scheduled time to start a job: {scheduled}"),
                    )));
                } else if exists {
                    status.last_schedule_time = Some(time(scheduled));
                } else if policy == "Forbid" && !running.is_empty() {
                    changes.push(Change::Event(Record::normal(
                        "JobAlreadyActive",
                        "Not starting job because prior execution is running and concurrency policy is Forbid",
                    )));
                } else {
                    if policy == "Replace" {
                        for job in &running {
                            let running_name = job.metadata.name.clone().unwrap_or_default();
                            changes.push(Change::DeleteJob {
                                name: running_name.clone(),
                                uid: job.metadata.uid.clone().unwrap_or_default(),
                            });
                            changes.push(Change::Event(Record::normal(
                                "SuccessfulDelete",
                                format!("Deleted job {running_name}"),
                            )));
                        }
                        active.clear();
                    }
                    let template = spec.job_template.clone();
                    let template_meta = template.metadata.clone().unwrap_or_default();
                    let mut annotations = template_meta.annotations.unwrap_or_default();
                    annotations.insert(SCHEDULED_TIMESTAMP.into(), scheduled.to_string());
                    let job = Job {
                        metadata: ObjectMeta {
                            name: Some(job_name.clone()),
                            namespace: cron_job.metadata.namespace.clone(),
                            labels: template_meta.labels,
                            annotations: Some(annotations),
                            owner_references: Some(vec![owner_reference(
                                "batch/v1",
                                "CronJob",
                                &cron_job.metadata,
                            )]),
                            ..Default::default()
                        },
                        spec: template.spec,
                        status: None,
                    };
                    active.push(ObjectReference {
                        api_version: Some("batch/v1".into()),
                        kind: Some("Job".into()),
                        name: Some(job_name.clone()),
                        namespace: cron_job.metadata.namespace.clone(),
                        ..Default::default()
                    });
                    changes.push(Change::CreateJob(Box::new(job)));
                    changes.push(Change::Event(Record::normal(
                        "SuccessfulCreate",
                        format!("Created job {job_name}"),
                    )));
                    status.last_schedule_time = Some(time(scheduled));
                }
            }
            if let Some(next) = schedule.next(now) {
                requeue = Some(next.duration_since(now).as_secs().max(0) + 1);
            }
        }
    }
    status.active = Some(active).filter(|a| !a.is_empty());
    if status != before {
        changes.push(Change::UpdateStatus(Box::new(status)));
    }
    Plan {
        changes,
        requeue_after_seconds: requeue,
    }
}

#[cfg(test)]
mod tests;
