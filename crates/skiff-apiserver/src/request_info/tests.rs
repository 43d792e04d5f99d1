//! Table tests of request parsing.

use super::*;

fn p(method: &str, path: &str, watch: bool) -> RequestInfo {
    parse(method, path, watch)
}

#[test]
fn resource_requests_are_parsed_like_kube_apiserver() {
    // (method, path, watch, verb, group, version, namespace, resource, name, subresource)
    let cases = [
        (
            "GET",
            "/api/v1/pods",
            false,
            "list",
            "",
            "v1",
            "",
            "pods",
            "",
            "",
        ),
        (
            "GET",
            "/api/v1/pods",
            true,
            "watch",
            "",
            "v1",
            "",
            "pods",
            "",
            "",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods",
            false,
            "list",
            "",
            "v1",
            "default",
            "pods",
            "",
            "",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/web",
            false,
            "get",
            "",
            "v1",
            "default",
            "pods",
            "web",
            "",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/web/log",
            false,
            "get",
            "",
            "v1",
            "default",
            "pods",
            "web",
            "log",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/web/eviction",
            false,
            "create",
            "",
            "v1",
            "default",
            "pods",
            "web",
            "eviction",
        ),
        (
            "GET",
            "/api/v1/namespaces",
            false,
            "list",
            "",
            "v1",
            "",
            "namespaces",
            "",
            "",
        ),
        (
            "GET",
            "/api/v1/namespaces/kube-system",
            false,
            "get",
            "",
            "v1",
            "",
            "namespaces",
            "kube-system",
            "",
        ),
        (
            "PUT",
            "/api/v1/namespaces/ns1/finalize",
            false,
            "update",
            "",
            "v1",
            "",
            "namespaces",
            "ns1",
            "finalize",
        ),
        (
            "GET",
            "/api/v1/namespaces/ns1/status",
            false,
            "get",
            "",
            "v1",
            "",
            "namespaces",
            "ns1",
            "status",
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            false,
            "patch",
            "apps",
            "v1",
            "default",
            "deployments",
            "web",
            "scale",
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/configmaps",
            false,
            "deletecollection",
            "",
            "v1",
            "default",
            "configmaps",
            "",
            "",
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/configmaps/c",
            false,
            "delete",
            "",
            "v1",
            "default",
            "configmaps",
            "c",
            "",
        ),
        (
            "GET",
            "/api/v1/nodes/n1",
            false,
            "get",
            "",
            "v1",
            "",
            "nodes",
            "n1",
            "",
        ),
        (
            "GET",
            "/api/v1/watch/namespaces/default/pods",
            false,
            "watch",
            "",
            "v1",
            "default",
            "pods",
            "",
            "",
        ),
        (
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
            false,
            "get",
            "coordination.k8s.io",
            "v1",
            "kube-node-lease",
            "leases",
            "n1",
            "",
        ),
    ];
    for (method, path, watch, verb, group, version, ns, resource, name, sub) in cases {
        let info = p(method, path, watch);
        assert!(info.is_resource_request, "{path}");
        assert_eq!(
            (
                info.verb.as_str(),
                info.group.as_str(),
                info.version.as_str(),
                info.namespace.as_str(),
                info.resource.as_str(),
                info.name.as_str(),
                info.subresource.as_str()
            ),
            (verb, group, version, ns, resource, name, sub),
            "{method} {path}"
        );
    }
}

#[test]
fn non_resource_paths_are_not_resource_requests() {
    for path in [
        "/api",
        "/apis",
        "/api/v1",
        "/apis/apps/v1",
        "/version",
        "/healthz",
        "/openapi/v3",
        "/metrics",
        "/",
    ] {
        assert!(!p("GET", path, false).is_resource_request, "{path}");
    }
}

#[test]
fn proxy_subpaths_are_kept() {
    let info = p(
        "GET",
        "/api/v1/namespaces/default/pods/web/proxy/a/b",
        false,
    );
    assert_eq!(info.subresource, "proxy");
    assert_eq!(info.rest, vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn query_keeps_repeated_keys_and_decodes() {
    let q = Query::parse(Some(
        "command=echo&command=hi%20there&labelSelector=app%3Dweb&watch=1&x",
    ));
    assert_eq!(q.all("command"), vec!["echo", "hi there"]);
    assert_eq!(q.get("labelSelector"), Some("app=web"));
    assert!(q.flag("watch"));
    assert!(q.flag("x"));
    assert!(!q.flag("missing"));
}
