//! ServiceAccount tokens: JWTs (HS256) signed with the cluster's service-account key, issued by
//! `serviceaccounts/token` and accepted as bearer tokens by every member.
//!
//! Only Skiff's own API servers verify these tokens, so a shared HMAC key (distributed with the
//! cluster's other secrets) is enough. Tokens expire; expired or tampered tokens are refused.

#[cfg(test)]
mod tests;

use base64::Engine;
use ring::hmac;
use serde_json::{Value, json};
use skiff_core::status;

use crate::api::{Api, timestamp};
use crate::auth::User;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

/// Signs claims into a compact JWT.
pub fn sign(key: &[u8], claims: &Value) -> String {
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64(&serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        signing_input.as_bytes(),
    );
    format!("{signing_input}.{}", b64(tag.as_ref()))
}

/// Verifies a JWT and returns its claims, or None (bad signature, malformed, expired).
pub fn verify(key: &[u8], token: &str, now_unix: i64) -> Option<Value> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&unb64(h)?).ok()?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return None;
    }
    let signature = unb64(s)?;
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        format!("{h}.{p}").as_bytes(),
        &signature,
    )
    .ok()?;
    let claims: Value = serde_json::from_slice(&unb64(p)?).ok()?;
    let exp = claims.get("exp").and_then(Value::as_i64)?;
    let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
    (now_unix < exp && now_unix + 60 >= nbf).then_some(claims)
}

/// The user a verified ServiceAccount token stands for.
pub fn user_of(claims: &Value) -> Option<User> {
    let sub = claims.get("sub").and_then(Value::as_str)?;
    let rest = sub.strip_prefix("system:serviceaccount:")?;
    let (ns, _) = rest.split_once(':')?;
    Some(User {
        name: sub.to_string(),
        uid: claims
            .pointer("/kubernetes.io/serviceaccount/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    })
}

/// Issues a token; returns it with its expiration timestamp.
pub fn issue(
    api: &Api,
    namespace: &str,
    name: &str,
    uid: &str,
    audiences: &[String],
    expiration_seconds: i64,
    bound: Option<&Value>,
) -> Result<(String, String), status::Error> {
    let now = k8s_openapi::jiff::Timestamp::now();
    let exp = now + k8s_openapi::jiff::SignedDuration::from_secs(expiration_seconds);
    let mut k8s = json!({"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}});
    if let Some(b) = bound
        && b.get("kind").and_then(Value::as_str) == Some("Pod")
    {
        k8s["pod"] = json!({"name": b.get("name"), "uid": b.get("uid")});
    }
    let claims = json!({
        "iss": ISSUER,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "aud": audiences,
        "iat": now.as_second(),
        "nbf": now.as_second(),
        "exp": exp.as_second(),
        "kubernetes.io": k8s,
    });
    Ok((sign(&api.sa_key, &claims), timestamp(exp)))
}
