//! Cron parsing, next times, missed schedules, concurrency policies and history limits.

use serde_json::json;

use super::cron::Schedule;
use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap_or_default()
}

fn next(schedule: &str, after: &str) -> Option<String> {
    Schedule::parse(schedule)
        .ok()?
        .next(at(after))
        .map(|t| t.to_string())
}

#[test]
fn parsing_and_next_times() {
    let cases = [
        (
            "*/5 * * * *",
            "2024-01-01T00:03:00Z",
            "2024-01-01T00:05:00Z",
        ),
        ("0 * * * *", "2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"),
        ("@hourly", "2024-01-01T00:30:00Z", "2024-01-01T01:00:00Z"),
        ("@daily", "2024-01-01T00:30:00Z", "2024-01-02T00:00:00Z"),
        ("@weekly", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z"),
        ("@monthly", "2024-01-15T00:00:00Z", "2024-02-01T00:00:00Z"),
        ("@yearly", "2024-01-15T00:00:00Z", "2025-01-01T00:00:00Z"),
        (
            "30 9 * * mon-fri",
            "2024-01-06T12:00:00Z",
            "2024-01-08T09:30:00Z",
        ),
        (
            "0 0 * jan,jul *",
            "2024-02-01T00:00:00Z",
            "2024-07-01T00:00:00Z",
        ),
        (
            "15 10-12/2 * * *",
            "2024-01-01T10:15:00Z",
            "2024-01-01T12:15:00Z",
        ),
        ("0 0 31 * *", "2024-02-01T00:00:00Z", "2024-03-31T00:00:00Z"),
        ("0 0 29 2 *", "2024-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
        // Both day fields restricted: either matches (the 1st, or a Friday).
        (
            "0 0 1 * fri",
            "2024-01-01T00:00:00Z",
            "2024-01-05T00:00:00Z",
        ),
        ("0 0 ? * 0", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z"),
        ("0 0 * * 7", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z"),
        ("@every 90s", "2024-01-01T00:00:00Z", "2024-01-01T00:01:30Z"),
    ];
    for (schedule, after, want) in cases {
        assert_eq!(next(schedule, after).as_deref(), Some(want), "{schedule}");
    }
    for bad in [
        "",
        "* * * *",
        "61 * * * *",
        "* * * * * *",
        "@fortnightly",
        "*/0 * * * *",
        "a b c d e",
        "5-1 * * * *",
    ] {
        assert!(Schedule::parse(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn missed_schedules() {
    let s = Schedule::parse("*/10 * * * *").unwrap_or(Schedule::Every(1));
    assert_eq!(
        s.most_recent(at("2024-01-01T00:00:00Z"), at("2024-01-01T00:35:00Z")),
        Some((at("2024-01-01T00:30:00Z"), 3))
    );
    assert_eq!(
        s.most_recent(at("2024-01-01T00:31:00Z"), at("2024-01-01T00:35:00Z")),
        None
    );
    let every_minute = Schedule::parse("* * * * *").unwrap_or(Schedule::Every(1));
    let (latest, count) = every_minute
        .most_recent(at("2024-01-01T00:00:00Z"), at("2024-01-02T00:00:30Z"))
        .unwrap_or_default();
    assert_eq!((latest, count), (at("2024-01-02T00:00:00Z"), 1440));
}

fn cron_job(extra: serde_json::Value) -> CronJob {
    let mut value = json!({
        "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"metadata": {"labels": {"a": "b"}}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}}}}
    });
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            value["spec"][k] = v.clone();
        }
    }
    serde_json::from_value(value).unwrap_or_default()
}

fn job(name: &str, state: Option<&str>, start: &str) -> Job {
    let mut value = json!({"metadata": {"name": name, "namespace": "default", "uid": name, "creationTimestamp": start,
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick", "uid": "cj-uid", "controller": true}]},
        "status": {"startTime": start}});
    if let Some(state) = state {
        value["status"]["conditions"] =
            json!([{"type": state, "status": "True", "lastTransitionTime": start}]);
        value["status"]["completionTime"] = json!(start);
    }
    serde_json::from_value(value).unwrap_or_default()
}

fn created(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .filter_map(|c| match c {
            Change::CreateJob(j) => j.metadata.name.clone(),
            _ => None,
        })
        .collect()
}

#[test]
fn creates_the_most_recent_job_once() {
    let cj = cron_job(json!({}));
    let p = plan(&cj, &[], at("2024-01-01T00:12:00Z"));
    let want = job_name("tick", at("2024-01-01T00:10:00Z"));
    assert_eq!(created(&p), vec![want.clone()]);
    assert_eq!(
        want,
        format!("tick-{}", at("2024-01-01T00:10:00Z").as_second() / 60)
    );
    let Some(Change::CreateJob(j)) = p.changes.iter().find(|c| matches!(c, Change::CreateJob(_)))
    else {
        panic!()
    };
    assert_eq!(
        j.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SCHEDULED_TIMESTAMP))
            .map(String::as_str),
        Some("2024-01-01T00:10:00Z")
    );
    assert_eq!(p.requeue_after_seconds, Some(181));
    // The same pass again with the job present creates nothing.
    let existing = job(&want, None, "2024-01-01T00:10:00Z");
    assert!(created(&plan(&cj, &[existing], at("2024-01-01T00:12:00Z"))).is_empty());
}

#[test]
fn starting_deadline_and_suspend() {
    let cj = cron_job(json!({"startingDeadlineSeconds": 60}));
    assert!(created(&plan(&cj, &[], at("2024-01-01T00:12:00Z"))).is_empty());
    assert_eq!(
        created(&plan(&cj, &[], at("2024-01-01T00:10:30Z"))).len(),
        1
    );
    let suspended = cron_job(json!({"suspend": true}));
    assert!(created(&plan(&suspended, &[], at("2024-01-01T00:12:00Z"))).is_empty());
}

#[test]
fn concurrency_policies() {
    let running = job("tick-old", None, "2024-01-01T00:05:00Z");
    let forbid = cron_job(json!({"concurrencyPolicy": "Forbid"}));
    assert!(
        created(&plan(
            &forbid,
            std::slice::from_ref(&running),
            at("2024-01-01T00:12:00Z")
        ))
        .is_empty()
    );
    let replace = cron_job(json!({"concurrencyPolicy": "Replace"}));
    let p = plan(
        &replace,
        std::slice::from_ref(&running),
        at("2024-01-01T00:12:00Z"),
    );
    assert_eq!(created(&p).len(), 1);
    assert!(p.changes.contains(&Change::DeleteJob {
        name: "tick-old".into(),
        uid: "tick-old".into()
    }));
    let allow = cron_job(json!({}));
    let p = plan(&allow, &[running], at("2024-01-01T00:12:00Z"));
    assert_eq!(created(&p).len(), 1);
}

#[test]
fn history_limits_and_last_successful_time() {
    let cj = cron_job(json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1}));
    let jobs = vec![
        job("s1", Some("Complete"), "2024-01-01T00:00:00Z"),
        job("s2", Some("Complete"), "2024-01-01T00:05:00Z"),
        job("f1", Some("Failed"), "2024-01-01T00:01:00Z"),
        job("f2", Some("Failed"), "2024-01-01T00:02:00Z"),
    ];
    let p = plan(&cj, &jobs, at("2024-01-01T00:06:00Z"));
    let deleted: Vec<&String> = p
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::DeleteJob { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec!["s1", "f1"]);
    let status = p
        .changes
        .iter()
        .find_map(|c| match c {
            Change::UpdateStatus(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default();
    assert_eq!(
        status.last_successful_time.map(|t| t.0),
        Some(at("2024-01-01T00:05:00Z"))
    );
}

#[test]
fn only_utc_time_zones() {
    let utc = cron_job(json!({"timeZone": "Etc/UTC"}));
    assert_eq!(
        created(&plan(&utc, &[], at("2024-01-01T00:12:00Z"))).len(),
        1
    );
    let paris = cron_job(json!({"timeZone": "Europe/Paris"}));
    let p = plan(&paris, &[], at("2024-01-01T00:12:00Z"));
    assert!(created(&p).is_empty());
    assert!(
        p.changes
            .iter()
            .any(|c| matches!(c, Change::Event(r) if r.reason == "UnknownTimeZone"))
    );
}
