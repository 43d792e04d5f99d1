//! Tests for protobuf decoding. Inputs are real encodings: k8s-pb's prost types encode the
//! objects kubectl's typed clients create (with the zero-valued non-pointer fields Go always
//! writes), and the decoded JSON is compared with what the JSON API carries.

use std::collections::BTreeMap;

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::{Value, json};

use super::{Error, decode};

mod kinds;

/// A request body as client-go writes it: magic, then `runtime.Unknown`.
fn envelope(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

/// ObjectMeta as Go encodes a fresh one: every non-pointer field present, zero or not.
fn go_meta(name: &str, namespace: &str, labels: &[(&str, &str)]) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: Some(name.into()),
        generate_name: Some(String::new()),
        namespace: Some(namespace.into()),
        self_link: Some(String::new()),
        uid: Some(String::new()),
        resource_version: Some(String::new()),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
}

fn int_or_string_int(value: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(value),
        str_val: Some(String::new()),
    })
}

fn int_or_string_str(value: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: Some(value.into()),
    })
}

fn quantity(value: &str) -> Quantity {
    Quantity {
        string: Some(value.into()),
    }
}

#[test]
fn decodes_configmap_and_secret_like_kubectl_create() {
    let config_map = core::ConfigMap {
        metadata: go_meta("settings", "default", &[]),
        data: BTreeMap::from([("a".into(), "1".into()), ("empty".into(), String::new())]),
        binary_data: BTreeMap::from([("blob".into(), vec![0, 159, 146, 150])]),
        immutable: None,
    };
    let decoded =
        decode(&envelope("v1", "ConfigMap", &config_map), "v1", "ConfigMap").expect("decodes");
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "default"},
            "data": {"a": "1", "empty": ""},
            "binaryData": {"blob": "AJ+Slg=="}
        })
    );

    let secret = core::Secret {
        metadata: go_meta("creds", "default", &[]),
        immutable: Some(false),
        data: BTreeMap::from([("password".into(), b"s3cr3t".to_vec())]),
        string_data: BTreeMap::new(),
        r#type: Some("Opaque".into()),
    };
    let decoded = decode(&envelope("v1", "Secret", &secret), "v1", "Secret").expect("decodes");
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "default"},
            "immutable": false,
            "data": {"password": "czNjcjN0"},
            "type": "Opaque"
        })
    );
}

#[test]
fn decodes_times_quantities_and_raw_extensions() {
    let lease = k8s_pb::api::coordination::v1::Lease {
        metadata: Some(meta::ObjectMeta {
            name: Some("node1".into()),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_700_000_000),
                nanos: Some(0),
            }),
            ..Default::default()
        }),
        spec: Some(k8s_pb::api::coordination::v1::LeaseSpec {
            holder_identity: Some("node1".into()),
            lease_duration_seconds: Some(40),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_700_000_123),
                nanos: Some(456_789_123),
            }),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    let decoded = decode(
        &envelope("coordination.k8s.io/v1", "Lease", &lease),
        "coordination.k8s.io/v1",
        "Lease",
    )
    .expect("decodes");
    assert_eq!(
        decoded["metadata"]["creationTimestamp"],
        json!("2023-11-14T22:13:20Z")
    );
    assert_eq!(
        decoded["spec"]["renewTime"],
        json!("2023-11-14T22:15:23.456789Z")
    );
    assert_eq!(decoded["spec"]["leaseTransitions"], json!(0));

    let revision = k8s_pb::api::apps::v1::ControllerRevision {
        metadata: go_meta("web-1", "default", &[]),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"template":{"x":1}}}"#.to_vec()),
        }),
        revision: Some(1),
    };
    let decoded = decode(
        &envelope("apps/v1", "ControllerRevision", &revision),
        "apps/v1",
        "ControllerRevision",
    )
    .expect("decodes");
    assert_eq!(decoded["data"], json!({"spec": {"template": {"x": 1}}}));

    let quota = core::ResourceQuota {
        metadata: go_meta("compute", "default", &[]),
        spec: Some(core::ResourceQuotaSpec {
            hard: BTreeMap::from([
                ("cpu".into(), quantity("2")),
                ("memory".into(), quantity("1Gi")),
                ("pods".into(), quantity("10")),
            ]),
            ..Default::default()
        }),
        status: Some(core::ResourceQuotaStatus::default()),
    };
    let decoded = decode(
        &envelope("v1", "ResourceQuota", &quota),
        "v1",
        "ResourceQuota",
    )
    .expect("decodes");
    assert_eq!(
        decoded["spec"],
        json!({"hard": {"cpu": "2", "memory": "1Gi", "pods": "10"}})
    );
    assert_eq!(decoded["status"], json!({}));
}

#[test]
fn formats_go_durations_and_times() {
    let durations = [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (2_000_000, "2ms"),
        (1_500_000_000, "1.5s"),
        (60_000_000_000, "1m0s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-90_000_000_000, "-1m30s"),
    ];
    for (nanos, text) in durations {
        assert_eq!(super::format::go_duration(nanos), text);
    }
    assert_eq!(
        super::format::time(0, 0, false).as_deref(),
        Some("1970-01-01T00:00:00Z")
    );
    assert_eq!(
        super::format::time(951_782_400, 0, false).as_deref(),
        Some("2000-02-29T00:00:00Z")
    );
    assert_eq!(
        super::format::time(-1, 999_999_999, true).as_deref(),
        Some("1969-12-31T23:59:59.999999Z")
    );
    assert_eq!(super::format::time(253_402_300_800, 0, false), None);
}

#[test]
fn refuses_malformed_bodies() {
    let config_map = core::ConfigMap {
        metadata: go_meta("c", "default", &[]),
        ..Default::default()
    };
    let good = envelope("v1", "ConfigMap", &config_map);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"{\"kind\":\"ConfigMap\"}".to_vec(),
            "the body is not a Kubernetes protobuf message: it does not start with \"k8s\\x00\"",
        ),
        (
            Vec::new(),
            "the body is not a Kubernetes protobuf message: it does not start with \"k8s\\x00\"",
        ),
        (
            b"k8s\0\x0a".to_vec(),
            "malformed protobuf at the envelope: truncated varint",
        ),
        (
            b"k8s\0\x12\x05ab".to_vec(),
            "malformed protobuf at the envelope: a field of 5 bytes runs past the end of its message (2 bytes left)",
        ),
        (
            b"k8s\0\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01".to_vec(),
            "malformed protobuf at the envelope: a varint is longer than 10 bytes",
        ),
        (
            b"k8s\0\x0b".to_vec(),
            "malformed protobuf at the envelope: field 1 uses groups, which Kubernetes never sends",
        ),
        (
            b"k8s\0\x00".to_vec(),
            "malformed protobuf at the envelope: field number 0 is invalid",
        ),
        (
            b"k8s\0\x08\x01".to_vec(),
            "malformed protobuf at the envelope: field 1 has wire type varint",
        ),
        (
            envelope("v1", "Secret", &config_map),
            "the body holds Secret of v1, but the request is for ConfigMap of v1",
        ),
        (
            envelope("apps/v1", "ConfigMap", &config_map),
            "the body holds ConfigMap of apps/v1, but the request is for ConfigMap of v1",
        ),
        // The raw object: a string field (metadata.name) that is not UTF-8.
        (
            raw_body(&[0x0a, 0x03, 0x0a, 0x01, 0xff]),
            "invalid value at .metadata.name: a string is not valid UTF-8",
        ),
        // metadata (1) sent as a varint.
        (
            raw_body(&[0x08, 0x01]),
            "malformed protobuf at .metadata: unexpected varint value",
        ),
        // data (2) map entry cut short.
        (
            raw_body(&[0x12, 0x04, 0x0a, 0x05, 0x61, 0x62]),
            "malformed protobuf at .data: a field of 5 bytes runs past the end of its message (2 bytes left)",
        ),
    ];
    for (body, message) in cases {
        let error = decode(&body, "v1", "ConfigMap").expect_err("malformed body");
        assert_eq!(error.to_string(), message);
        assert_eq!(error.code(), 400);
    }
    assert!(decode(&good, "v1", "ConfigMap").is_ok());
    let error = decode(
        &envelope("example.com/v1", "Widget", &config_map),
        "example.com/v1",
        "Widget",
    )
    .expect_err("no schema");
    assert_eq!(
        error.to_string(),
        "Widget of example.com/v1 has no protobuf encoding"
    );
    assert_eq!(error.code(), 415);
}

fn raw_body(raw: &[u8]) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
        }),
        raw: Some(raw.to_vec()),
        ..Default::default()
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

#[test]
fn never_panics_on_garbage() {
    let config_map = core::ConfigMap {
        metadata: go_meta("c", "default", &[("app", "x")]),
        data: BTreeMap::from([("k".into(), "v".into())]),
        ..Default::default()
    };
    let good = envelope("v1", "ConfigMap", &config_map);
    // Every truncation and a deterministic spread of byte flips of a valid body.
    for length in 0..good.len() {
        let _ = decode(good.get(..length).unwrap_or_default(), "v1", "ConfigMap");
    }
    let mut state: u32 = 12345;
    for _ in 0..2000 {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let mut body = good.clone();
        let position = 4 + (state as usize >> 8) % (body.len() - 4);
        if let Some(byte) = body.get_mut(position) {
            *byte ^= (state >> 24) as u8 | 1;
        }
        let _ = decode(&body, "v1", "ConfigMap");
    }
}

#[test]
fn bounds_nesting() {
    use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
    let mut props = apiextensions::JsonSchemaProps {
        r#type: Some("object".into()),
        ..Default::default()
    };
    for _ in 0..(super::MAX_DEPTH + 5) {
        props = apiextensions::JsonSchemaProps {
            not: Some(Box::new(props)),
            ..Default::default()
        };
    }
    let validation = apiextensions::CustomResourceValidation {
        open_apiv3_schema: Some(props),
    };
    let body = envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceValidation",
        &validation,
    );
    let error =
        decode(&body, "apiextensions.k8s.io/v1", "CustomResourceValidation").expect_err("too deep");
    assert_eq!(error, Error::TooDeep);
}

/// The JSON of a decoded body, for the table tests in [`kinds`].
fn decoded(api_version: &str, kind: &str, object: &impl prost::Message) -> Value {
    match decode(&envelope(api_version, kind, object), api_version, kind) {
        Ok(value) => value,
        Err(error) => panic!("{kind} does not decode: {error}"),
    }
}

#[test]
fn decodes_custom_resource_definition_schemas() {
    use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
    let string = || apiextensions::JsonSchemaProps {
        r#type: Some("string".into()),
        ..Default::default()
    };
    let schema = apiextensions::JsonSchemaProps {
        r#type: Some("object".into()),
        properties: BTreeMap::from([
            (
                "spec".into(),
                apiextensions::JsonSchemaProps {
                    r#type: Some("object".into()),
                    x_kubernetes_preserve_unknown_fields: Some(true),
                    default: Some(apiextensions::Json {
                        raw: Some(br#"{"size":1}"#.to_vec()),
                    }),
                    ..Default::default()
                },
            ),
            (
                "tags".into(),
                apiextensions::JsonSchemaProps {
                    r#type: Some("array".into()),
                    items: Some(Box::new(apiextensions::JsonSchemaPropsOrArray {
                        schema: Some(Box::new(string())),
                        ..Default::default()
                    })),
                    ..Default::default()
                },
            ),
            (
                "labels".into(),
                apiextensions::JsonSchemaProps {
                    r#type: Some("object".into()),
                    additional_properties: Some(Box::new(apiextensions::JsonSchemaPropsOrBool {
                        allows: Some(true),
                        schema: Some(Box::new(string())),
                    })),
                    ..Default::default()
                },
            ),
            (
                "closed".into(),
                apiextensions::JsonSchemaProps {
                    r#type: Some("object".into()),
                    additional_properties: Some(Box::new(apiextensions::JsonSchemaPropsOrBool {
                        allows: Some(false),
                        schema: None,
                    })),
                    ..Default::default()
                },
            ),
        ]),
        ..Default::default()
    };
    let validation = apiextensions::CustomResourceValidation {
        open_apiv3_schema: Some(schema),
    };
    let decoded = decode(
        &envelope(
            "apiextensions.k8s.io/v1",
            "CustomResourceValidation",
            &validation,
        ),
        "apiextensions.k8s.io/v1",
        "CustomResourceValidation",
    )
    .expect("decodes");
    assert_eq!(
        decoded["openAPIV3Schema"],
        json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "default": {"size": 1}},
                "tags": {"type": "array", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "closed": {"type": "object", "additionalProperties": false}
            }
        })
    );
}
