//! Expectations and fence recognition.

use std::collections::HashSet;

use super::*;

#[test]
fn expectations_wait_for_created_names_and_deleted_uids() {
    let e = Expectations::default();
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<String>>();
    assert!(
        e.satisfied("rs", &names(&[]), &names(&[])),
        "nothing expected"
    );
    e.expect("rs", vec!["web-1".into()], vec!["uid-old".into()]);
    assert!(!e.satisfied("rs", &names(&[]), &names(&["uid-old"])));
    assert!(!e.satisfied("rs", &names(&["web-1"]), &names(&["uid-old"])));
    assert!(e.satisfied("rs", &names(&["web-1"]), &names(&[])));
    assert!(
        e.satisfied("rs", &names(&[]), &names(&["uid-old"])),
        "met expectations are forgotten"
    );
}

#[test]
fn fenced_out_is_recognised_only_with_its_cause() {
    let status = |code: u16, cause: &str| {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "code": code, "reason": "Conflict", "details": {"causes": [{"reason": cause}]}
        }))
        .unwrap_or_default();
        kube::Error::Api(Box::new(status))
    };
    assert!(is_fenced_out(&status(409, "FencedOut")));
    assert!(!is_fenced_out(&status(409, "FieldValueInvalid")));
    assert!(is_benign_conflict(&status(409, "")));
    assert!(!is_benign_conflict(&status(409, "FencedOut")));
    assert!(matches!(
        classify(status(409, "FencedOut")),
        Error::FencedOut
    ));
}
