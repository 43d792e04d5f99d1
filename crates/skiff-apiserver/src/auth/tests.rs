//! Authorization decisions and messages.

use super::*;
use crate::request_info::parse;

fn user(name: &str, groups: &[&str]) -> User {
    User {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

#[test]
fn masters_may_do_anything_and_others_get_kubernetes_message() {
    let info = parse("GET", "/api/v1/namespaces/default/pods", false);
    assert!(authorize(&user("admin", &[MASTERS]), &info).is_ok());
    let e = authorize(&user("alice", &["system:authenticated"]), &info).expect_err("forbidden");
    assert_eq!(e.code(), 403);
    assert!(
        e.message.contains(
            r#"User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
        ),
        "{}",
        e.message
    );
}

#[test]
fn nodes_may_write_only_their_own_node_and_lease() {
    let n1 = user("system:node:n1", &[NODES]);
    assert!(authorize(&n1, &parse("PATCH", "/api/v1/nodes/n1/status", false)).is_ok());
    assert!(authorize(&n1, &parse("PATCH", "/api/v1/nodes/n2/status", false)).is_err());
    assert!(
        authorize(
            &n1,
            &parse(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
                false
            )
        )
        .is_ok()
    );
    assert!(
        authorize(
            &n1,
            &parse(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n2",
                false
            )
        )
        .is_err()
    );
    assert!(
        authorize(
            &n1,
            &parse("GET", "/api/v1/namespaces/default/secrets/s", false)
        )
        .is_ok()
    );
    assert!(
        authorize(
            &n1,
            &parse("DELETE", "/api/v1/namespaces/default/secrets/s", false)
        )
        .is_err()
    );
    assert!(
        authorize(
            &n1,
            &parse(
                "POST",
                "/apis/apps/v1/namespaces/default/deployments",
                false
            )
        )
        .is_err()
    );
    // Being called system:node:x is not enough without the group.
    assert!(
        authorize(
            &user("system:node:n1", &[]),
            &parse("PATCH", "/api/v1/nodes/n1/status", false)
        )
        .is_err()
    );
}

#[test]
fn bearer_tokens_are_parsed_and_hashed() {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        "Bearer abc".parse().expect("header"),
    );
    assert_eq!(bearer(&h), Some("abc"));
    h.insert(
        http::header::AUTHORIZATION,
        "Basic abc".parse().expect("header"),
    );
    assert_eq!(bearer(&h), None);
    assert!(token_key("abc").starts_with("/skiff/tokens/"));
    assert_ne!(token_key("abc"), token_key("abd"));
}
