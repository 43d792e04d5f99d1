//! Objects every cluster has: the `default`, `kube-system`, `kube-public` and `kube-node-lease`
//! namespaces, the `default` ServiceAccount in each, the `kubernetes` Service, the default
//! IngressClass and StorageClass, and the hash of the node join token. Created if missing, by
//! any member, retried until the store accepts writes; idempotent.

use std::time::Duration;

use serde_json::{Value, json};
use skiff_core::defaults;

use crate::api::{Api, now_string};
use crate::objects::{Freshness, Objects};

async fn ensure(
    api: &Api,
    group: &str,
    plural: &str,
    namespace: &str,
    mut object: Value,
) -> Result<(), String> {
    let resource = api
        .registry
        .get(group, "v1", plural)
        .ok_or(format!("no resource {plural}"))?;
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if api
        .objects
        .get(resource, namespace, &name, Freshness::Latest)
        .await
        .map_err(|e| e.message)?
        .is_some()
    {
        return Ok(());
    }
    defaults::apply(&resource.group, &resource.kind, &mut object);
    let meta = crate::admission::meta_mut(&mut object);
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now_string()));
    if resource.is_namespaced() {
        meta.insert("namespace".into(), json!(namespace));
    }
    if object.get("spec").is_some() {
        crate::admission::meta_mut(&mut object).insert("generation".into(), json!(1));
    }
    let mut extra = Vec::new();
    if plural == "services" {
        extra =
            crate::allocator::allocate_service(api, &mut object, None).map_err(|e| e.message)?;
    }
    let key = Objects::key(resource, namespace, &name);
    api.objects
        .create(&key, api.objects.encode(resource, &object), extra, None)
        .await
        .map_err(|e| e.message)?;
    Ok(())
}

async fn once(api: &Api, node_token_hash: Option<&[u8]>) -> Result<(), String> {
    // First: agents may try to join as soon as the API answers.
    // The node secret in this member's cluster files (the same on every member) is the truth:
    // a restore brings the stored hash of the old cluster's secret, which is replaced when the
    // files kept with the backup did not include that secret.
    if let Some(hash) = node_token_hash {
        match api
            .objects
            .raw_get(crate::join::NODE_TOKEN_KEY)
            .await
            .map_err(|e| e.message)?
        {
            None => {
                api.objects
                    .create(crate::join::NODE_TOKEN_KEY, hash.to_vec(), vec![], None)
                    .await
                    .map_err(|e| e.message)?;
            }
            Some(kv) if kv.value != hash => {
                api.objects
                    .update(
                        crate::join::NODE_TOKEN_KEY,
                        hash.to_vec(),
                        kv.mod_revision,
                        vec![],
                        vec![],
                        None,
                    )
                    .await
                    .map_err(|e| e.message)?;
            }
            Some(_) => {}
        }
    }
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ensure(api, "", "namespaces", "", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]}})).await?;
        ensure(
            api,
            "",
            "serviceaccounts",
            ns,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
        )
        .await?;
    }
    let ip = api.config.kubernetes_service_ip().to_string();
    ensure(
        api,
        "",
        "services",
        "default",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
               "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}}),
    )
    .await?;
    ensure(
        api,
        "networking.k8s.io",
        "ingressclasses",
        "",
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
               "metadata": {"name": "skiff", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
               "spec": {"controller": "skiff.dev/ingress"}}),
    )
    .await?;
    ensure(
        api,
        "storage.k8s.io",
        "storageclasses",
        "",
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
               "metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
               "provisioner": "skiff.dev/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}),
    )
    .await?;
    Ok(())
}

/// Creates the bootstrap objects, retrying until it works (e.g. while no leader is elected).
pub async fn run(api: &Api, node_token_hash: Option<Vec<u8>>) {
    let mut delay = Duration::from_millis(100);
    loop {
        match once(api, node_token_hash.as_deref()).await {
            Ok(()) => {
                tracing::info!("bootstrap objects are in place");
                return;
            }
            Err(e) => tracing::debug!("bootstrap not done yet: {e}"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
