//! Content negotiation tests with the Accept headers real clients send.

use http::HeaderMap;

use super::*;

fn accept(v: &str) -> Result<Output, status::Error> {
    let mut h = HeaderMap::new();
    h.insert(http::header::ACCEPT, v.parse().expect("header"));
    negotiate(&h)
}

#[test]
fn kubectl_get_asks_for_a_table() {
    let v = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    assert_eq!(accept(v).ok(), Some(Output::Table));
}

#[test]
fn typed_clients_offering_protobuf_get_json() {
    assert_eq!(
        accept("application/vnd.kubernetes.protobuf,application/json").ok(),
        Some(Output::Json)
    );
    assert_eq!(
        accept("application/vnd.kubernetes.protobuf, */*").ok(),
        Some(Output::Json)
    );
}

#[test]
fn kube_rs_metadata_requests_get_partial_metadata() {
    assert_eq!(
        accept("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").ok(),
        Some(Output::Metadata)
    );
}

#[test]
fn no_accept_is_json_and_only_unsupported_types_are_406() {
    assert_eq!(negotiate(&HeaderMap::new()).ok(), Some(Output::Json));
    let e = accept("application/vnd.kubernetes.protobuf").expect_err("406");
    assert_eq!(e.code(), 406);
}

#[test]
fn body_types_follow_content_type() {
    let bt = |ct: Option<&str>| {
        let mut h = HeaderMap::new();
        if let Some(ct) = ct {
            h.insert(http::header::CONTENT_TYPE, ct.parse().expect("header"));
        }
        body_type(&h)
    };
    assert_eq!(bt(None).ok(), Some(BodyType::Json));
    assert_eq!(
        bt(Some("application/json; charset=utf-8")).ok(),
        Some(BodyType::Json)
    );
    assert_eq!(
        bt(Some("application/apply-patch+yaml")).ok(),
        Some(BodyType::ApplyPatch)
    );
    assert_eq!(
        bt(Some("application/vnd.kubernetes.protobuf")).ok(),
        Some(BodyType::Protobuf)
    );
    assert_eq!(bt(Some("text/html")).expect_err("415").code(), 415);
}
