//! Tests for certificate selection by SNI from TLS Secrets: exact and wildcard hosts, problems reported.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::json;

use super::*;

fn cert(names: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem())
}

fn secret(name: &str, kind: &str, pair: Option<(String, String)>) -> Secret {
    let mut data = BTreeMap::new();
    if let Some((c, k)) = pair {
        data.insert("tls.crt".to_string(), ByteString(c.into_bytes()));
        data.insert("tls.key".to_string(), ByteString(k.into_bytes()));
    }
    Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        type_: Some(kind.into()),
        data: Some(data),
        ..Default::default()
    }
}

fn ingress(tls: serde_json::Value) -> Ingress {
    serde_json::from_value(json!({"metadata": {"name": "i", "namespace": "default"},
        "spec": {"ingressClassName": "skiff", "tls": tls,
                 "rules": [{"host": "rule.example.org"}]}}))
    .expect("ingress")
}

fn selector() -> ClassSelector {
    ClassSelector {
        class_name: "skiff".into(),
        is_default: false,
    }
}

fn leaf(key: &CertifiedKey) -> Vec<u8> {
    key.cert[0].to_vec()
}

#[test]
fn selects_by_exact_host_then_wildcard() {
    let shop = cert(&["shop.example.com"]);
    let wild = cert(&["*.example.com"]);
    let secrets = [
        secret("shop", TLS_SECRET_TYPE, Some(shop.clone())),
        secret("wild", TLS_SECRET_TYPE, Some(wild.clone())),
    ];
    let i = ingress(json!([
        {"hosts": ["shop.example.com"], "secretName": "shop"},
        {"hosts": ["*.example.com"], "secretName": "wild"}
    ]));
    let store = CertStore::build(&selector(), &[i], &secrets);
    assert!(store.problems.is_empty(), "{:?}", store.problems);
    let shop_der = rustls_pemfile::certs(&mut shop.0.as_bytes())
        .next()
        .expect("pem")
        .expect("der")
        .to_vec();
    let wild_der = rustls_pemfile::certs(&mut wild.0.as_bytes())
        .next()
        .expect("pem")
        .expect("der")
        .to_vec();
    assert_eq!(
        leaf(&store.select("shop.example.com").expect("shop")),
        shop_der
    );
    assert_eq!(
        leaf(&store.select("SHOP.example.com.").expect("shop")),
        shop_der
    );
    assert_eq!(
        leaf(&store.select("blog.example.com").expect("wild")),
        wild_der
    );
    assert!(store.select("a.blog.example.com").is_none());
    assert!(store.select("example.com").is_none());
}

#[test]
fn tls_entry_without_hosts_covers_the_rule_hosts() {
    let secrets = [secret(
        "s",
        TLS_SECRET_TYPE,
        Some(cert(&["rule.example.org"])),
    )];
    let store = CertStore::build(
        &selector(),
        &[ingress(json!([{"secretName": "s"}]))],
        &secrets,
    );
    assert!(store.select("rule.example.org").is_some());
}

#[test]
fn bad_or_missing_secrets_are_problems_not_failures() {
    let secrets = [
        secret("opaque", "Opaque", Some(cert(&["a.example"]))),
        secret("empty", TLS_SECRET_TYPE, None),
        secret(
            "garbage",
            TLS_SECRET_TYPE,
            Some(("not pem".into(), "not pem".into())),
        ),
    ];
    let i = ingress(json!([
        {"hosts": ["a.example"], "secretName": "opaque"},
        {"hosts": ["b.example"], "secretName": "empty"},
        {"hosts": ["c.example"], "secretName": "garbage"},
        {"hosts": ["d.example"], "secretName": "absent"}
    ]));
    let store = CertStore::build(&selector(), &[i], &secrets);
    assert!(store.is_empty());
    assert_eq!(store.problems.len(), 4, "{:?}", store.problems);
}

#[test]
fn ingresses_of_other_classes_contribute_no_certificates() {
    let secrets = [secret("s", TLS_SECRET_TYPE, Some(cert(&["x.example"])))];
    let mut i = ingress(json!([{"hosts": ["x.example"], "secretName": "s"}]));
    if let Some(spec) = i.spec.as_mut() {
        spec.ingress_class_name = Some("nginx".into());
    }
    assert!(CertStore::build(&selector(), &[i], &secrets).is_empty());
}
