//! Printers of the workload controllers: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and
//! CronJob, with the wide CONTAINERS, IMAGES and SELECTOR columns.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    AGE, Column, NAME, Printer, age, column, format_labels, format_selector, int, list, name_of,
    printer_of, since, text,
};

const CONTAINERS: Column = column(
    "Containers",
    "string",
    "Names of each container in the template.",
    1,
);
const IMAGES: Column = column(
    "Images",
    "string",
    "Images referenced by each container in the template.",
    1,
);
const SELECTOR: Column = column("Selector", "string", "Label selector for the pods.", 1);

pub(super) fn printer(group: &str, resource: &str) -> Option<Printer> {
    match (group, resource) {
        ("apps", "deployments") => printer_of(
            &[
                NAME,
                column("Ready", "string", "Number of the pod with ready state.", 0),
                column(
                    "Up-to-date",
                    "integer",
                    "Total number of pods that have the desired template.",
                    0,
                ),
                column("Available", "integer", "Total number of available pods.", 0),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            deployment,
        ),
        ("apps", "replicasets") => printer_of(
            &[
                NAME,
                column("Desired", "integer", "Number of desired pods.", 0),
                column("Current", "integer", "Number of actually running pods.", 0),
                column("Ready", "integer", "Number of pods with ready state.", 0),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            replica_set,
        ),
        ("apps", "statefulsets") => printer_of(
            &[
                NAME,
                column("Ready", "string", "Number of the pod with ready state.", 0),
                AGE,
                CONTAINERS,
                IMAGES,
            ],
            stateful_set,
        ),
        ("apps", "daemonsets") => printer_of(
            &[
                NAME,
                column(
                    "Desired",
                    "integer",
                    "Number of nodes that should run the daemon pod.",
                    0,
                ),
                column(
                    "Current",
                    "integer",
                    "Number of nodes running at least one daemon pod.",
                    0,
                ),
                column(
                    "Ready",
                    "integer",
                    "Number of nodes with a ready daemon pod.",
                    0,
                ),
                column(
                    "Up-to-date",
                    "integer",
                    "Number of nodes running the updated daemon pod.",
                    0,
                ),
                column(
                    "Available",
                    "integer",
                    "Number of nodes with an available daemon pod.",
                    0,
                ),
                column(
                    "Node Selector",
                    "string",
                    "Which nodes the daemon pod runs on.",
                    0,
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            daemon_set,
        ),
        ("batch", "jobs") => printer_of(
            &[
                NAME,
                column("Status", "string", "Status of the job.", 0),
                column(
                    "Completions",
                    "string",
                    "The completed and desired completions.",
                    0,
                ),
                column(
                    "Duration",
                    "string",
                    "Time required to complete the job.",
                    0,
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            job,
        ),
        ("batch", "cronjobs") => printer_of(
            &[
                NAME,
                column("Schedule", "string", "The schedule in Cron format.", 0),
                column("Timezone", "string", "The time zone of the schedule.", 0),
                column(
                    "Suspend",
                    "boolean",
                    "Whether subsequent runs are suspended.",
                    0,
                ),
                column("Active", "integer", "Number of currently running jobs.", 0),
                column(
                    "Last Schedule",
                    "string",
                    "When the job was last scheduled.",
                    0,
                ),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            cron_job,
        ),
        _ => None,
    }
}

/// The CONTAINERS and IMAGES cells of a pod template.
fn containers_and_images(template_spec: &Value) -> [Value; 2] {
    let containers = list(template_spec, "/containers");
    let names: Vec<String> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<String> = containers.iter().map(|c| text(c, "/image")).collect();
    [json!(names.join(",")), json!(images.join(","))]
}

fn template_columns(object: &Value, spec_pointer: &str, selector_pointer: &str) -> Vec<Value> {
    let empty = Value::Null;
    let template_spec = object.pointer(spec_pointer).unwrap_or(&empty);
    let [containers, images] = containers_and_images(template_spec);
    vec![
        containers,
        images,
        json!(format_selector(object.pointer(selector_pointer))),
    ]
}

fn deployment(object: &Value, now: Timestamp) -> Vec<Value> {
    let mut cells = vec![
        json!(name_of(object)),
        json!(format!(
            "{}/{}",
            int(object, "/status/readyReplicas"),
            int(object, "/spec/replicas")
        )),
        json!(int(object, "/status/updatedReplicas")),
        json!(int(object, "/status/availableReplicas")),
        json!(age(object, now)),
    ];
    cells.extend(template_columns(
        object,
        "/spec/template/spec",
        "/spec/selector",
    ));
    cells
}

fn replica_set(object: &Value, now: Timestamp) -> Vec<Value> {
    let mut cells = vec![
        json!(name_of(object)),
        json!(int(object, "/spec/replicas")),
        json!(int(object, "/status/replicas")),
        json!(int(object, "/status/readyReplicas")),
        json!(age(object, now)),
    ];
    cells.extend(template_columns(
        object,
        "/spec/template/spec",
        "/spec/selector",
    ));
    cells
}

fn stateful_set(object: &Value, now: Timestamp) -> Vec<Value> {
    let mut cells = vec![
        json!(name_of(object)),
        json!(format!(
            "{}/{}",
            int(object, "/status/readyReplicas"),
            int(object, "/spec/replicas")
        )),
        json!(age(object, now)),
    ];
    let mut template = template_columns(object, "/spec/template/spec", "/spec/selector");
    template.truncate(2);
    cells.extend(template);
    cells
}

fn daemon_set(object: &Value, now: Timestamp) -> Vec<Value> {
    let mut cells = vec![
        json!(name_of(object)),
        json!(int(object, "/status/desiredNumberScheduled")),
        json!(int(object, "/status/currentNumberScheduled")),
        json!(int(object, "/status/numberReady")),
        json!(int(object, "/status/updatedNumberScheduled")),
        json!(int(object, "/status/numberAvailable")),
        json!(format_labels(
            object.pointer("/spec/template/spec/nodeSelector")
        )),
        json!(age(object, now)),
    ];
    cells.extend(template_columns(
        object,
        "/spec/template/spec",
        "/spec/selector",
    ));
    cells
}

fn has_true_condition(object: &Value, condition_type: &str) -> bool {
    list(object, "/status/conditions").iter().any(|condition| {
        condition.get("type").and_then(Value::as_str) == Some(condition_type)
            && condition.get("status").and_then(Value::as_str) == Some("True")
    })
}

fn job_status(job: &Value) -> &'static str {
    let deleting = job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|value| !value.is_null());
    if has_true_condition(job, "Complete") {
        "Complete"
    } else if has_true_condition(job, "Failed") {
        "Failed"
    } else if deleting {
        "Terminating"
    } else if has_true_condition(job, "Suspended") {
        "Suspended"
    } else if has_true_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_true_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

fn job(object: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int(object, "/status/succeeded");
    let completions = match object.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => {
            let parallelism = int(object, "/spec/parallelism");
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let start = text(object, "/status/startTime");
    let completion = text(object, "/status/completionTime");
    let duration = match (start.parse::<Timestamp>(), completion.parse::<Timestamp>()) {
        (Err(_), _) => String::new(),
        (Ok(_), Err(_)) => since(&start, now),
        (Ok(started), Ok(completed)) => {
            super::human_duration(completed.as_second().saturating_sub(started.as_second()))
        }
    };
    let mut cells = vec![
        json!(name_of(object)),
        json!(job_status(object)),
        json!(completions),
        json!(duration),
        json!(age(object, now)),
    ];
    cells.extend(template_columns(
        object,
        "/spec/template/spec",
        "/spec/selector",
    ));
    cells
}

fn cron_job(object: &Value, now: Timestamp) -> Vec<Value> {
    let suspend = match object.pointer("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let last = text(object, "/status/lastScheduleTime");
    let last_schedule = if last.is_empty() {
        "<none>".to_string()
    } else {
        since(&last, now)
    };
    let zone = text(object, "/spec/timeZone");
    let mut cells = vec![
        json!(name_of(object)),
        json!(text(object, "/spec/schedule")),
        json!(if zone.is_empty() {
            "<none>".to_string()
        } else {
            zone
        }),
        json!(suspend),
        json!(list(object, "/status/active").len()),
        json!(last_schedule),
        json!(age(object, now)),
    ];
    cells.extend(template_columns(
        object,
        "/spec/jobTemplate/spec/template/spec",
        "/spec/jobTemplate/spec/selector",
    ));
    cells
}
