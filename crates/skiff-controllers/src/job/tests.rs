//! Job completions, parallelism, backoff, deadline, TTL, Indexed.

use serde_json::json;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap_or_default()
}

fn job(spec: serde_json::Value) -> Job {
    let mut value = json!({
        "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid"},
        "spec": {"template": {"metadata": {"labels": {"job-name": "pi"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}}
    });
    if let Some(extra) = spec.as_object() {
        for (k, v) in extra {
            value["spec"][k] = v.clone();
        }
    }
    serde_json::from_value(value).unwrap_or_default()
}

fn pod(name: &str, phase: &str, index: Option<i32>) -> Pod {
    let mut value = json!({
        "metadata": {"name": name, "namespace": "default", "uid": name, "creationTimestamp": "2024-01-01T00:00:00Z",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "pi", "uid": "job-uid", "controller": true}]},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": phase}
    });
    if let Some(i) = index {
        value["metadata"]["annotations"] = json!({COMPLETION_INDEX: i.to_string()});
    }
    serde_json::from_value(value).unwrap_or_default()
}

fn creates(plan: &Plan) -> usize {
    plan.changes
        .iter()
        .filter(|c| matches!(c, Change::CreatePod(_)))
        .count()
}

fn status(plan: &Plan) -> JobStatus {
    plan.changes
        .iter()
        .find_map(|c| match c {
            Change::UpdateStatus(s) => Some((**s).clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn has_condition(status: &JobStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[test]
fn parallelism_and_completions() {
    let j = job(json!({"completions": 5, "parallelism": 2}));
    let now = at("2024-01-01T00:00:01Z");
    assert_eq!(creates(&plan(&j, &[], now)), 2);
    let pods = vec![
        pod("a", "Succeeded", None),
        pod("b", "Succeeded", None),
        pod("c", "Succeeded", None),
        pod("d", "Running", None),
    ];
    // 3 succeeded, 1 active, 2 remaining -> one more.
    assert_eq!(creates(&plan(&j, &pods, now)), 1);
    let mut pods = pods;
    pods.push(pod("e", "Succeeded", None));
    pods.push(pod("f", "Succeeded", None));
    let p = plan(&j, &pods, now);
    let s = status(&p);
    assert!(has_condition(&s, "Complete") && has_condition(&s, "SuccessCriteriaMet"));
    assert_eq!((s.succeeded, s.active), (Some(5), Some(0)));
    assert!(s.completion_time.is_some());
    assert!(
        p.changes
            .iter()
            .any(|c| matches!(c, Change::DeletePod { name, .. } if name == "d"))
    );
}

#[test]
fn work_queue_without_completions() {
    let j = job(json!({"parallelism": 3}));
    let now = at("2024-01-01T00:00:01Z");
    assert_eq!(creates(&plan(&j, &[], now)), 3);
    let p = plan(
        &j,
        &[pod("a", "Succeeded", None), pod("b", "Running", None)],
        now,
    );
    assert_eq!(creates(&p), 0);
    assert!(!has_condition(&status(&p), "Complete"));
    assert!(has_condition(
        &status(&plan(&j, &[pod("a", "Succeeded", None)], now)),
        "Complete"
    ));
}

#[test]
fn backoff_limit_and_exponential_delay() {
    let j = job(json!({"backoffLimit": 2}));
    let one_failure = vec![pod("a", "Failed", None)];
    // 10 s after the failure (creation time used when no finish time is known).
    let p = plan(&j, &one_failure, at("2024-01-01T00:00:05Z"));
    assert_eq!(creates(&p), 0);
    assert_eq!(p.requeue_after_seconds, Some(6));
    assert_eq!(
        creates(&plan(&j, &one_failure, at("2024-01-01T00:00:11Z"))),
        1
    );
    let three = vec![
        pod("a", "Failed", None),
        pod("b", "Failed", None),
        pod("c", "Failed", None),
    ];
    let p = plan(&j, &three, at("2024-01-01T00:10:00Z"));
    let s = status(&p);
    assert!(has_condition(&s, "Failed") && has_condition(&s, "FailureTarget"));
    let failed = s.conditions.iter().flatten().find(|c| c.type_ == "Failed");
    assert_eq!(
        failed.and_then(|c| c.reason.as_deref()),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(creates(&p), 0);
}

#[test]
fn active_deadline() {
    let mut j = job(json!({"activeDeadlineSeconds": 30}));
    j.status = serde_json::from_value(json!({"startTime": "2024-01-01T00:00:00Z"})).ok();
    let p = plan(&j, &[pod("a", "Running", None)], at("2024-01-01T00:00:10Z"));
    assert_eq!(p.requeue_after_seconds, Some(21));
    let p = plan(&j, &[pod("a", "Running", None)], at("2024-01-01T00:00:31Z"));
    let failed = status(&p)
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Failed");
    assert_eq!(
        failed.and_then(|c| c.reason),
        Some("DeadlineExceeded".into())
    );
    assert!(
        p.changes
            .iter()
            .any(|c| matches!(c, Change::DeletePod { .. }))
    );
}

#[test]
fn ttl_after_finished() {
    let mut j = job(json!({"ttlSecondsAfterFinished": 60}));
    j.status = serde_json::from_value(json!({"completionTime": "2024-01-01T00:00:00Z",
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]})).ok();
    let p = plan(&j, &[], at("2024-01-01T00:00:30Z"));
    assert_eq!(p.requeue_after_seconds, Some(31));
    assert!(!p.changes.contains(&Change::DeleteJob));
    assert!(
        plan(&j, &[], at("2024-01-01T00:01:00Z"))
            .changes
            .contains(&Change::DeleteJob)
    );
}

#[test]
fn indexed_jobs_fill_missing_indexes() {
    let j = job(json!({"completions": 4, "parallelism": 4, "completionMode": "Indexed"}));
    let pods = vec![pod("a", "Succeeded", Some(0)), pod("b", "Running", Some(2))];
    let p = plan(&j, &pods, at("2024-01-01T00:00:01Z"));
    let indexes: Vec<String> = p
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::CreatePod(p) => p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(COMPLETION_INDEX).cloned()),
            _ => None,
        })
        .collect();
    assert_eq!(indexes, vec!["1", "3"]);
    assert_eq!(
        compress(&[0, 1, 2, 5, 7, 8].into_iter().collect()),
        "0-2,5,7-8"
    );
}

#[test]
fn suspend_deletes_active_pods() {
    let j = job(json!({"suspend": true}));
    let p = plan(&j, &[pod("a", "Running", None)], at("2024-01-01T00:00:01Z"));
    assert!(
        p.changes
            .iter()
            .any(|c| matches!(c, Change::DeletePod { .. }))
    );
    assert!(has_condition(&status(&p), "Suspended"));
}
