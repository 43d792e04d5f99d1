//! The workers' view of the API over kube-rs: ConfigMaps, Secrets, PersistentVolumeClaims and
//! ServiceAccount tokens in, pod statuses out.
//!
//! Statuses are strategic-merge patches of the `status` subresource carrying only the fields
//! this agent owns; conditions merge by `type`, so conditions other writers own (scheduler,
//! disruption controller) are never clobbered.
//!
//! Pod events go through one queue written by one task, one event at a time (client-go's
//! broadcaster does the same): a burst of pod starts, three events each, then never puts dozens
//! of event writes in flight ahead of the status writes that make the pods Running. When the
//! queue is full, new events are dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{
    BoundObjectReference, TokenRequest as ApiTokenRequest, TokenRequestSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, PodStatus, Secret, ServiceAccount,
};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio::sync::mpsc;

use crate::pod;
use crate::volumes::TokenRequest;
use crate::worker::{ObjectSource, StatusSink};

fn describe(e: kube::Error) -> String {
    e.to_string()
}

pub struct ApiObjects {
    client: kube::Client,
    /// Tokens by (pod uid, request), with when to refresh them (80% of their lifetime).
    tokens: Mutex<HashMap<(String, TokenRequest), (String, Instant)>>,
}

impl ApiObjects {
    pub fn new(client: kube::Client) -> ApiObjects {
        ApiObjects {
            client,
            tokens: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait::async_trait]
impl ObjectSource for ApiObjects {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, String> {
        Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(describe)
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String> {
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(describe)
    }

    async fn token(&self, pod: &Pod, request: &TokenRequest) -> Result<String, String> {
        let key = (pod::uid(pod).to_string(), request.clone());
        if let Ok(cache) = self.tokens.lock()
            && let Some((token, refresh_at)) = cache.get(&key)
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let api = Api::<ServiceAccount>::namespaced(self.client.clone(), pod::namespace(pod));
        let body = ApiTokenRequest {
            spec: TokenRequestSpec {
                audiences: request
                    .audience
                    .clone()
                    .map(|a| vec![a])
                    .unwrap_or_default(),
                expiration_seconds: Some(request.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(pod::name(pod).to_string()),
                    uid: Some(pod::uid(pod).to_string()),
                }),
            },
            ..Default::default()
        };
        let response: ApiTokenRequest = api
            .create_subresource(
                "token",
                &request.service_account,
                &PostParams::default(),
                &body,
            )
            .await
            .map_err(describe)?;
        let token = response.status.map(|s| s.token).unwrap_or_default();
        if token.is_empty() {
            return Err("the API returned an empty token".into());
        }
        let lifetime = Duration::from_secs(request.expiration_seconds.max(60) as u64);
        if let Ok(mut cache) = self.tokens.lock() {
            cache.insert(key, (token.clone(), Instant::now() + lifetime * 4 / 5));
        }
        Ok(token)
    }

    async fn claim_path(&self, namespace: &str, claim: &str) -> Result<Option<String>, String> {
        let pvc = Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), namespace)
            .get_opt(claim)
            .await
            .map_err(describe)?
            .ok_or_else(|| format!("persistentvolumeclaim \"{claim}\" not found"))?;
        let Some(volume) = pvc
            .spec
            .and_then(|s| s.volume_name)
            .filter(|v| !v.is_empty())
        else {
            return Ok(None);
        };
        let Some(pv) = Api::<PersistentVolume>::all(self.client.clone())
            .get_opt(&volume)
            .await
            .map_err(describe)?
        else {
            return Ok(None);
        };
        let spec = pv.spec.unwrap_or_default();
        Ok(spec
            .local
            .map(|l| l.path)
            .or(spec.host_path.map(|h| h.path)))
    }
}

/// Events waiting to be written; beyond this many, new ones are dropped.
const EVENT_QUEUE: usize = 1000;

pub struct ApiStatus {
    client: kube::Client,
    node_name: String,
    events: mpsc::Sender<k8s_openapi::api::core::v1::Event>,
}

impl ApiStatus {
    /// Must be called within a Tokio runtime: it starts the task that writes the events (it
    /// ends when this is dropped).
    pub fn new(client: kube::Client, node_name: &str) -> ApiStatus {
        let (events, queue) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(write_events(client.clone(), queue));
        ApiStatus {
            client,
            node_name: node_name.to_string(),
            events,
        }
    }
}

/// Writes queued events in order, one at a time, until every sender is gone.
async fn write_events(
    client: kube::Client,
    mut queue: mpsc::Receiver<k8s_openapi::api::core::v1::Event>,
) {
    while let Some(event) = queue.recv().await {
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let api = Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), &namespace);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(error = %e, "recording an event failed");
        }
    }
}

/// A core/v1 Event about `pod`, as the kubelet reports them (`kubectl describe` lists these).
pub fn pod_event(
    pod: &Pod,
    node_name: &str,
    warning: bool,
    reason: &str,
    message: &str,
    now: k8s_openapi::jiff::Timestamp,
) -> k8s_openapi::api::core::v1::Event {
    use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", pod::name(pod), now.as_nanosecond())),
            namespace: Some(pod::namespace(pod).to_string()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod::name(pod).to_string()),
            namespace: Some(pod::namespace(pod).to_string()),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message.chars().take(1024).collect()),
        type_: Some(if warning { "Warning" } else { "Normal" }.to_string()),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some(node_name.to_string()),
        }),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(node_name.to_string()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        action: Some(reason.to_string()),
        count: Some(1),
        ..Default::default()
    }
}

/// The status patch: only what the agent owns.
pub fn status_patch(pod: &Pod, status: &PodStatus) -> serde_json::Value {
    json!({
        "metadata": {"uid": pod::uid(pod)},
        "status": {
            "phase": status.phase,
            "conditions": status.conditions,
            "hostIP": status.host_ip,
            "hostIPs": status.host_ips,
            "podIP": status.pod_ip,
            "podIPs": status.pod_ips,
            "startTime": status.start_time,
            "qosClass": status.qos_class,
            "containerStatuses": status.container_statuses,
            "initContainerStatuses": status.init_container_statuses,
        },
    })
}

#[async_trait::async_trait]
impl StatusSink for ApiStatus {
    async fn write_status(&self, pod: &Pod, status: &PodStatus) -> Result<(), String> {
        let api = Api::<Pod>::namespaced(self.client.clone(), pod::namespace(pod));
        let patch = status_patch(pod, status);
        api.patch_status(
            pod::name(pod),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .map(|_| ())
        .map_err(describe)
    }

    fn event(&self, pod: &Pod, warning: bool, reason: &str, message: &str) {
        let event = pod_event(
            pod,
            &self.node_name,
            warning,
            reason,
            message,
            k8s_openapi::jiff::Timestamp::now(),
        );
        if let Err(e) = self.events.try_send(event) {
            tracing::debug!(error = %e, reason, "dropping a pod event: the event queue is full");
        }
    }

    async fn pod_finished(&self, pod: &Pod) -> Result<(), String> {
        if pod.metadata.deletion_timestamp.is_none() {
            return Ok(());
        }
        let api = Api::<Pod>::namespaced(self.client.clone(), pod::namespace(pod));
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(pod::uid(pod).to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(pod::name(pod), &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(describe(e)),
        }
    }
}

#[cfg(test)]
mod tests;
