//! Tests for the volume layout (keys, items, modes, tmpfs-ness, projections, claims) and the
//! atomic writer.

use super::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::json;

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "prod", "uid": "u-1", "labels": {"app": "web", "tier": "front"}},
        "spec": {"serviceAccountName": "builder", "containers": [{"name": "main", "image": "img:1",
            "resources": {"limits": {"memory": "32Mi"}}}], "volumes": volumes},
    }))
    .expect("valid pod")
}

fn sources() -> Sources {
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cfg"},
        "data": {"app.conf": "mode=fast\n", "other": "x"}, "binaryData": {"blob": "AAEC"}}))
    .expect("cm");
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "creds"}, "data": {"password": "czNjcjN0"}}),
    )
    .expect("secret");
    let mut s = Sources::default();
    s.objects.config_maps.insert("cfg".into(), cm);
    s.objects.secrets.insert("creds".into(), secret);
    s.tokens.insert(
        TokenRequest {
            service_account: "builder".into(),
            audience: Some("vault".into()),
            expiration_seconds: 600,
        },
        "tok3n".into(),
    );
    s.claims.insert("data".into(), Some("/srv/pv/data".into()));
    s.claims.insert("pending".into(), None);
    s
}

fn facts() -> NodeFacts {
    NodeFacts {
        node_name: "n1".into(),
        host_ip: "192.0.2.2".into(),
        pod_ip: None,
        allocatable_cpu_millis: 2000,
        allocatable_memory_bytes: 1 << 30,
    }
}

fn one(volume: serde_json::Value) -> Result<VolumePlan> {
    plan(
        &pod(json!([volume])),
        "/var/lib/skiff/pods/u-1",
        &sources(),
        &facts(),
    )
    .map(|mut v| v.remove(0))
}

fn files(plan: &VolumePlan) -> Vec<(String, String, u32)> {
    match &plan.kind {
        Kind::Files { files, .. } => files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    String::from_utf8_lossy(&f.data).into_owned(),
                    f.mode,
                )
            })
            .collect(),
        other => panic!("not a file volume: {other:?}"),
    }
}

#[test]
fn config_map_keys_items_and_modes() {
    let all = one(json!({"name": "c", "configMap": {"name": "cfg", "defaultMode": 0o440}}))
        .expect("plan");
    assert_eq!(
        all.host_path,
        "/var/lib/skiff/pods/u-1/volumes/config-map/c"
    );
    assert!(all.read_only);
    assert_eq!(
        files(&all),
        vec![
            ("app.conf".into(), "mode=fast\n".into(), 0o440),
            ("blob".into(), "\0\u{1}\u{2}".into(), 0o440),
            ("other".into(), "x".into(), 0o440),
        ]
    );
    assert!(
        matches!(all.kind, Kind::Files { memory: false, .. }),
        "configMaps live on disk"
    );
    let items = one(json!({"name": "c", "configMap": {"name": "cfg",
        "items": [{"key": "app.conf", "path": "conf/app.conf", "mode": 0o400}]}}))
    .expect("plan");
    assert_eq!(
        files(&items),
        vec![("conf/app.conf".into(), "mode=fast\n".into(), 0o400)]
    );
}

#[test]
fn secrets_are_memory_backed() {
    let s = one(json!({"name": "s", "secret": {"secretName": "creds"}})).expect("plan");
    assert!(matches!(s.kind, Kind::Files { memory: true, .. }));
    assert_eq!(files(&s), vec![("password".into(), "s3cr3t".into(), 0o644)]);
    assert_eq!(s.host_path, "/var/lib/skiff/pods/u-1/volumes/secret/s");
}

#[test]
fn missing_objects_and_keys() {
    assert!(one(json!({"name": "c", "configMap": {"name": "nope"}})).is_err());
    let optional = one(json!({"name": "c", "configMap": {"name": "nope", "optional": true}}))
        .expect("optional");
    assert!(files(&optional).is_empty());
    let err = one(
        json!({"name": "c", "configMap": {"name": "cfg", "items": [{"key": "zzz", "path": "z"}]}}),
    );
    assert_eq!(
        err,
        Err(Error::Mount {
            volume: "c".into(),
            detail: "configuration key \"zzz\" not found in ConfigMap cfg".into()
        })
    );
    assert!(one(json!({"name": "c", "configMap": {"name": "cfg", "items": [{"key": "other", "path": "../escape"}]}})).is_err());
}

#[test]
fn downward_api_files() {
    let d = one(json!({"name": "d", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "main", "resource": "limits.memory", "divisor": "1Mi"}},
    ]}})).expect("plan");
    assert_eq!(
        files(&d),
        vec![
            (
                "labels".into(),
                "app=\"web\"\ntier=\"front\"\n".into(),
                0o644
            ),
            ("mem".into(), "32".into(), 0o644),
            ("name".into(), "web".into(), 0o644),
        ]
    );
}

#[test]
fn projected_volumes_combine_sources_with_a_token() {
    let p = one(json!({"name": "p", "projected": {"sources": [
        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "token"}},
        {"configMap": {"name": "cfg", "items": [{"key": "other", "path": "other"}]}},
        {"secret": {"name": "creds"}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]}})).expect("plan");
    assert!(matches!(p.kind, Kind::Files { memory: true, .. }));
    assert_eq!(
        files(&p),
        vec![
            ("namespace".into(), "prod".into(), 0o644),
            ("other".into(), "x".into(), 0o644),
            ("password".into(), "s3cr3t".into(), 0o644),
            ("token".into(), "tok3n".into(), 0o600),
        ]
    );
    let missing = one(
        json!({"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}),
    );
    assert!(missing.is_err(), "a token not obtained fails the mount");
}

#[test]
fn empty_dir_host_path_and_claims() {
    let e = one(json!({"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}))
        .expect("plan");
    assert_eq!(
        e.kind,
        Kind::EmptyDir {
            memory: true,
            size_limit_bytes: Some(64 << 20)
        }
    );
    assert_eq!(
        e.host_path,
        "/var/lib/skiff/pods/u-1/volumes/empty-dir/cache"
    );
    let h = one(json!({"name": "h", "hostPath": {"path": "/srv/h", "type": "DirectoryOrCreate"}}))
        .expect("plan");
    assert_eq!(
        (h.host_path.as_str(), h.kind),
        (
            "/srv/h",
            Kind::HostPath {
                host_type: "DirectoryOrCreate".into()
            }
        )
    );
    let c =
        one(json!({"name": "db", "persistentVolumeClaim": {"claimName": "data"}})).expect("plan");
    assert_eq!(
        (c.host_path.as_str(), c.kind),
        ("/srv/pv/data", Kind::Claim)
    );
    assert!(one(json!({"name": "db", "persistentVolumeClaim": {"claimName": "pending"}})).is_err());
    assert!(one(json!({"name": "db", "persistentVolumeClaim": {"claimName": "unknown"}})).is_err());
}

#[test]
fn requirements_list_every_reference() {
    let mut p = pod(json!([
        {"name": "c", "configMap": {"name": "cfg"}},
        {"name": "s", "secret": {"secretName": "creds"}},
        {"name": "db", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}, {"configMap": {"name": "kube-root-ca.crt"}}]}},
    ]));
    if let Some(spec) = p.spec.as_mut() {
        spec.containers[0].env_from = Some(vec![
            serde_json::from_value(json!({"secretRef": {"name": "env-secret"}})).expect("envFrom"),
        ]);
    }
    let req = requirements(&p);
    assert_eq!(
        req.config_maps,
        BTreeSet::from(["cfg".to_string(), "kube-root-ca.crt".to_string()])
    );
    assert_eq!(
        req.secrets,
        BTreeSet::from(["creds".to_string(), "env-secret".to_string()])
    );
    assert_eq!(req.claims, BTreeSet::from(["data".to_string()]));
    assert_eq!(
        req.tokens.into_iter().collect::<Vec<_>>(),
        vec![TokenRequest {
            service_account: "builder".into(),
            audience: None,
            expiration_seconds: 3600
        }]
    );
}

#[test]
fn the_atomic_writer_swaps_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let v1 = vec![
        File {
            path: "a".into(),
            data: b"1".to_vec(),
            mode: 0o644,
        },
        File {
            path: "sub/b".into(),
            data: b"2".to_vec(),
            mode: 0o600,
        },
    ];
    assert!(writer::write_atomic(root, &v1).expect("write"));
    assert_eq!(std::fs::read(root.join("a")).expect("a"), b"1");
    assert_eq!(std::fs::read(root.join("sub/b")).expect("b"), b"2");
    assert!(
        std::fs::symlink_metadata(root.join("a"))
            .expect("meta")
            .file_type()
            .is_symlink()
    );
    let first = std::fs::read_link(root.join("..data")).expect("..data");
    assert!(
        !writer::write_atomic(root, &v1).expect("rewrite"),
        "unchanged content is not rewritten"
    );

    let v2 = vec![File {
        path: "a".into(),
        data: b"one".to_vec(),
        mode: 0o644,
    }];
    assert!(writer::write_atomic(root, &v2).expect("update"));
    assert_eq!(std::fs::read(root.join("a")).expect("a"), b"one");
    assert!(
        std::fs::symlink_metadata(root.join("sub")).is_err(),
        "a removed key disappears"
    );
    assert!(!root.join(&first).exists(), "the old version is removed");
}
