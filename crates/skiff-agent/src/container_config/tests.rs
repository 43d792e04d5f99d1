//! Tests for container configuration: command and env expansion, references, downward API,
//! resources, security, mounts, the sandbox, the pod's resolv.conf.

use super::*;
use serde_json::json;

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "prod", "uid": "u-1",
                     "labels": {"app": "web"}, "annotations": {"team": "a"}},
        "spec": spec,
    }))
    .expect("valid pod")
}

fn facts() -> NodeFacts {
    NodeFacts {
        node_name: "n1".into(),
        host_ip: "192.0.2.2".into(),
        pod_ip: Some("10.42.0.9".into()),
        allocatable_cpu_millis: 2000,
        allocatable_memory_bytes: 8 << 30,
    }
}

fn cluster() -> ClusterFacts {
    ClusterFacts {
        dns_servers: vec!["10.43.0.10".parse().expect("ip")],
        domain: "cluster.local".into(),
        kubernetes_service: None,
    }
}

fn objects() -> Objects {
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "cfg"}, "data": {"MODE": "fast", "bad key": "x"}}),
    )
    .expect("cm");
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "creds"}, "data": {"PASSWORD": "czNjcjN0"}}),
    )
    .expect("secret");
    Objects {
        config_maps: HashMap::from([("cfg".to_string(), cm)]),
        secrets: HashMap::from([("creds".to_string(), secret)]),
    }
}

fn build(p: &Pod, volumes: &HashMap<String, VolumeSource>) -> Result<ContainerSpec> {
    let node = facts();
    let cluster = cluster();
    let objects = objects();
    let ctx = Context {
        node: &node,
        cluster: &cluster,
        objects: &objects,
        volumes,
        sandbox_id: "sb-1",
        grace_seconds: 30,
        resolv_conf: Some("/data/pods/u-1/resolv.conf"),
    };
    let container = &p.spec.as_ref().expect("spec").containers[0];
    container_spec(p, container, Kind::App, 2, &ctx)
}

fn env_of(spec: &ContainerSpec) -> HashMap<String, String> {
    spec.env.iter().cloned().collect()
}

#[test]
fn command_args_and_env_with_expansion() {
    let p = pod(json!({"containers": [{
        "name": "main", "image": "img:1",
        "command": ["sh", "-c"], "args": ["echo $(GREETING) $$HOME $(UNKNOWN)"],
        "workingDir": "/srv",
        "env": [
            {"name": "NAME", "value": "skiff"},
            {"name": "GREETING", "value": "hello $(NAME)"},
        ],
    }]}));
    let spec = build(&p, &HashMap::new()).expect("spec");
    assert_eq!(
        spec.entrypoint,
        Some(vec!["sh".to_string(), "-c".to_string()])
    );
    assert_eq!(
        spec.cmd,
        Some(vec!["echo hello skiff $HOME $(UNKNOWN)".to_string()])
    );
    assert_eq!(spec.working_dir.as_deref(), Some("/srv"));
    assert_eq!(spec.name, "skiff_n1_prod_web_main_2");
    assert_eq!(spec.labels[crate::labels::RESTART_COUNT], "2");
    assert_eq!(spec.labels[crate::labels::SANDBOX_ID], "sb-1");
    assert_eq!(
        spec.network,
        Some(NetworkMode::Container { id: "sb-1".into() })
    );
}

#[test]
fn env_from_references_and_downward_fields() {
    let p = pod(json!({"serviceAccountName": "builder", "containers": [{
        "name": "main", "image": "img:1",
        "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}},
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
        "env": [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "MODE"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
            {"name": "MISSING_OK", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": true}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "CPU_REQ_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
        ],
    }]}));
    let env = env_of(&build(&p, &HashMap::new()).expect("spec"));
    let expect = [
        ("CFG_MODE", "fast"),
        ("PASSWORD", "s3cr3t"),
        ("MODE", "fast"),
        ("PW", "s3cr3t"),
        ("POD_NAME", "web"),
        ("POD_NS", "prod"),
        ("POD_UID", "u-1"),
        ("APP", "web"),
        ("NODE", "n1"),
        ("SA", "builder"),
        ("POD_IP", "10.42.0.9"),
        ("HOST_IP", "192.0.2.2"),
        ("MEM_MI", "64"),
        ("CPU_LIMIT", "2"),
        ("CPU_REQ_M", "250"),
    ];
    for (k, v) in expect {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(!env.contains_key("MISSING_OK"));
    assert!(
        !env.contains_key("CFG_bad key"),
        "invalid names from envFrom are skipped"
    );
}

#[test]
fn missing_references_are_config_errors() {
    let cases = [
        (
            json!({"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}),
            "configmap \"nope\" not found",
        ),
        (
            json!({"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}),
            "couldn't find key k in ConfigMap prod/cfg",
        ),
        (
            json!({"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}),
            "secret \"nope\" not found",
        ),
        (
            json!({"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}),
            "unsupported fieldPath: spec.bogus",
        ),
    ];
    for (var, message) in cases {
        let p = pod(json!({"containers": [{"name": "main", "image": "img:1", "env": [var]}]}));
        assert_eq!(
            build(&p, &HashMap::new()),
            Err(Error::Config(message.into()))
        );
    }
}

#[test]
fn resources_become_cgroup_settings() {
    let c: Container = serde_json::from_value(json!({"name": "m",
        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}}}))
    .expect("c");
    let r = resources(&c);
    assert_eq!(r.memory_limit_bytes, Some(128 << 20));
    assert_eq!(r.cpu_quota_micros, Some(50_000));
    assert_eq!(r.cpu_period_micros, Some(100_000));
    assert_eq!(r.cpu_shares, Some(102));
    let best_effort: Container = serde_json::from_value(json!({"name": "m"})).expect("c");
    assert_eq!(
        resources(&best_effort),
        Resources {
            cpu_shares: Some(2),
            ..Default::default()
        }
    );
    let limit_only: Container =
        serde_json::from_value(json!({"name": "m", "resources": {"limits": {"cpu": "2"}}}))
            .expect("c");
    assert_eq!(
        resources(&limit_only).cpu_shares,
        Some(2048),
        "requests default to limits"
    );
}

#[test]
fn security_context_and_host_network() {
    let p = pod(json!({
        "hostNetwork": true,
        "securityContext": {"runAsUser": 1000, "runAsGroup": 3000},
        "containers": [{"name": "main", "image": "img:1", "securityContext": {
            "runAsUser": 2000, "readOnlyRootFilesystem": true, "privileged": false,
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}],
    }));
    let spec = build(&p, &HashMap::new()).expect("spec");
    assert_eq!(spec.user.as_deref(), Some("2000:3000"));
    assert!(spec.read_only_rootfs);
    assert_eq!(spec.cap_add, vec!["NET_ADMIN".to_string()]);
    assert_eq!(spec.cap_drop, vec!["ALL".to_string()]);
    assert_eq!(spec.network, Some(NetworkMode::Host));
}

#[test]
fn volume_mounts_resolve_to_host_paths() {
    let p = pod(
        json!({"containers": [{"name": "main", "image": "img:1", "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": false},
            {"name": "data", "mountPath": "/logs", "subPath": "logs", "readOnly": true},
        ]}]}),
    );
    let volumes = HashMap::from([
        (
            "data".to_string(),
            VolumeSource {
                host_path: "/var/lib/skiff/pods/u-1/volumes/data".into(),
                read_only: false,
            },
        ),
        (
            "cfg".to_string(),
            VolumeSource {
                host_path: "/run/skiff/cfg".into(),
                read_only: true,
            },
        ),
    ]);
    let spec = build(&p, &volumes).expect("spec");
    assert_eq!(
        spec.mounts,
        vec![
            Mount {
                source: "/var/lib/skiff/pods/u-1/volumes/data".into(),
                target: "/data".into(),
                read_only: false
            },
            Mount {
                source: "/run/skiff/cfg".into(),
                target: "/etc/cfg".into(),
                read_only: true
            },
            Mount {
                source: "/var/lib/skiff/pods/u-1/volumes/data/logs".into(),
                target: "/logs".into(),
                read_only: true
            },
            Mount {
                source: "/data/pods/u-1/resolv.conf".into(),
                target: "/etc/resolv.conf".into(),
                read_only: false
            },
        ]
    );
    let missing = pod(
        json!({"containers": [{"name": "main", "image": "img:1", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}]}),
    );
    assert!(build(&missing, &volumes).is_err());
    let escape = pod(
        json!({"containers": [{"name": "main", "image": "img:1", "volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "../../etc"}]}]}),
    );
    assert!(build(&escape, &volumes).is_err());
}

#[test]
fn every_container_gets_the_pods_resolv_conf_unless_it_mounts_its_own() {
    let resolv_mounts = |spec: &ContainerSpec| -> Vec<Mount> {
        spec.mounts
            .iter()
            .filter(|m| m.target == "/etc/resolv.conf")
            .cloned()
            .collect()
    };
    let plain = pod(json!({"containers": [{"name": "main", "image": "img:1",
        "securityContext": {"readOnlyRootFilesystem": true}}]}));
    let spec = build(&plain, &HashMap::new()).expect("spec");
    assert_eq!(
        resolv_mounts(&spec),
        vec![Mount {
            source: "/data/pods/u-1/resolv.conf".into(),
            target: "/etc/resolv.conf".into(),
            read_only: true,
        }]
    );
    let own = pod(json!({"containers": [{"name": "main", "image": "img:1",
        "volumeMounts": [{"name": "dns", "mountPath": "/etc/resolv.conf", "subPath": "r"}]}]}));
    let volumes = HashMap::from([(
        "dns".to_string(),
        VolumeSource {
            host_path: "/run/skiff/dns".into(),
            read_only: true,
        },
    )]);
    let spec = build(&own, &volumes).expect("spec");
    assert_eq!(
        resolv_mounts(&spec),
        vec![Mount {
            source: "/run/skiff/dns/r".into(),
            target: "/etc/resolv.conf".into(),
            read_only: true,
        }]
    );
}

#[test]
fn the_pods_resolv_conf_follows_its_dns_policy() {
    let node = skiff_core::resolv_conf::parse("nameserver 192.0.2.53\nsearch lan\n");
    let cluster_first = pod(json!({"containers": [{"name": "main", "image": "img:1"}]}));
    assert_eq!(
        resolv_conf(&cluster_first, &cluster(), &node),
        "nameserver 10.43.0.10\nsearch prod.svc.cluster.local svc.cluster.local cluster.local lan\noptions ndots:5\n"
    );
    let default =
        pod(json!({"dnsPolicy": "Default", "containers": [{"name": "main", "image": "img:1"}]}));
    assert_eq!(
        resolv_conf(&default, &cluster(), &node),
        "nameserver 192.0.2.53\nsearch lan\n"
    );
    let host_net = pod(
        json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet",
        "containers": [{"name": "main", "image": "img:1"}]}),
    );
    assert!(resolv_conf(&host_net, &cluster(), &node).starts_with("nameserver 10.43.0.10\n"));
}

#[test]
fn the_sandbox_carries_hostname_and_host_aliases() {
    let p = pod(json!({"containers": [{"name": "main", "image": "img:1"}],
        "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db"]}]}));
    let spec = sandbox_spec(&p, 0, "skiff-n1", "skiff/sandbox:1", &facts(), 30);
    assert_eq!(spec.name, "skiff_n1_prod_web_POD_0");
    assert_eq!(spec.hostname.as_deref(), Some("web"));
    assert_eq!(spec.extra_hosts, vec!["db:10.0.0.1".to_string()]);
    assert_eq!(
        spec.network,
        Some(NetworkMode::Bridge {
            network: "skiff-n1".into()
        })
    );
    assert_eq!(spec.labels[crate::labels::KIND], "sandbox");

    let host =
        pod(json!({"hostNetwork": true, "containers": [{"name": "main", "image": "img:1"}]}));
    let spec = sandbox_spec(&host, 0, "skiff-n1", "skiff/sandbox:1", &facts(), 30);
    assert_eq!(spec.hostname, None);
    assert_eq!(spec.network, Some(NetworkMode::Host));
}

#[test]
fn expansion_edge_cases() {
    let vars = HashMap::from([("A", "1")]);
    assert_eq!(expand("$(A)$(A)", &vars), "11");
    assert_eq!(expand("$$(A)", &vars), "$(A)");
    assert_eq!(expand("$(A", &vars), "$(A");
    assert_eq!(expand("ünï$(A)cødé$", &vars), "ünï1cødé$");
}
