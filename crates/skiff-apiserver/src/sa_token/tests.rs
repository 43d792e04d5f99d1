//! Token signing and verification.

use serde_json::json;

use super::*;

#[test]
fn a_signed_token_verifies_and_names_its_service_account() {
    let key = b"0123456789abcdef0123456789abcdef";
    let claims = json!({"sub": "system:serviceaccount:default:builder", "exp": 2000, "nbf": 1000,
                        "kubernetes.io": {"serviceaccount": {"uid": "u1"}}});
    let token = sign(key, &claims);
    let verified = verify(key, &token, 1500).expect("valid");
    let user = user_of(&verified).expect("a service account");
    assert_eq!(user.name, "system:serviceaccount:default:builder");
    assert!(
        user.groups
            .contains(&"system:serviceaccounts:default".to_string())
    );
    assert_eq!(user.uid, "u1");
}

#[test]
fn expired_tampered_and_foreign_tokens_are_refused() {
    let key = b"0123456789abcdef0123456789abcdef";
    let token = sign(
        key,
        &json!({"sub": "system:serviceaccount:a:b", "exp": 2000}),
    );
    assert!(verify(key, &token, 2000).is_none(), "expired");
    assert!(
        verify(b"another key entirely, 32 bytes!!", &token, 1500).is_none(),
        "wrong key"
    );
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = b64(br#"{"sub":"system:serviceaccount:kube-system:admin","exp":9999}"#);
    parts[1] = &forged;
    assert!(
        verify(key, &parts.join("."), 1500).is_none(),
        "tampered payload"
    );
    assert!(verify(key, "not.a.jwt", 1500).is_none());
    assert!(verify(key, "", 1500).is_none());
    let none_alg = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(br#"{"sub":"x","exp":9999}"#)
    );
    assert!(verify(key, &none_alg, 1500).is_none(), "alg none");
}
