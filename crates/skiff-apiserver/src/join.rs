//! `POST /skiff/v1/join-node`: a node agent trades the node join token and a CSR for its
//! certificate (CN `system:node:<name>`, O `system:nodes`), valid as its client certificate
//! towards the API and as the serving certificate of its node API.
//!
//! The token is `skiffnode1.<CA sha256>.<secret>`; only the secret's SHA-256 is stored
//! (`/skiff/node-token`), so any member can check it. The subject is forced by the server,
//! whatever the CSR asks; the CSR's key stays on the node.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use skiff_core::{names, status};

use crate::api::Api;
use crate::http::{self as h, Response};

/// Where the hash of the node join token's secret lives.
pub const NODE_TOKEN_KEY: &str = "/skiff/node-token";

/// A node join token for this cluster's CA, and the value to store for it.
pub fn new_node_token(
    ca: &skiff_store::tls::Ca,
) -> Result<(String, Vec<u8>), skiff_store::tls::Error> {
    let secret = hex::encode(rand::random::<[u8; 24]>());
    let token = format!("skiffnode1.{}.{secret}", ca.fingerprint()?);
    Ok((token, secret_hash(&secret).into_bytes()))
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn check_token(api: &Api, headers: &http::HeaderMap) -> Result<(), status::Error> {
    let token = crate::auth::bearer(headers).ok_or_else(|| {
        status::Error::unauthorized(
            "a node join token is required (Authorization: Bearer skiffnode1...)",
        )
    })?;
    let mut parts = token.split('.');
    let (Some("skiffnode1"), Some(ca_hash), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(status::Error::unauthorized(
            "not a node join token (skiffnode1.<ca hash>.<secret>)",
        ));
    };
    let ours = api
        .ca
        .fingerprint()
        .map_err(|e| status::Error::internal(&e.to_string()))?;
    let stored = api
        .objects
        .raw_get(NODE_TOKEN_KEY)
        .await?
        .map(|kv| kv.value)
        .unwrap_or_default();
    if ca_hash != ours
        || stored.is_empty()
        || !constant_time_eq(&stored, secret_hash(secret).as_bytes())
    {
        return Err(status::Error::unauthorized(
            "the node join token is not valid for this cluster",
        ));
    }
    Ok(())
}

pub async fn join_node(
    api: &Api,
    headers: &http::HeaderMap,
    body: &Bytes,
) -> Result<Response, status::Error> {
    check_token(api, headers).await?;
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| status::Error::bad_request(format!("invalid join request: {e}")))?;
    let node = request
        .get("nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let problems = names::dns1123_subdomain(node);
    if !problems.is_empty() {
        return Err(status::Error::bad_request(format!(
            "invalid nodeName {node:?}: {}",
            problems.join("; ")
        )));
    }
    let csr_pem = request
        .get("csrPEM")
        .and_then(Value::as_str)
        .ok_or_else(|| status::Error::bad_request("csrPEM is required"))?;
    let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| status::Error::bad_request(format!("invalid CSR: {e}")))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    dn.push(rcgen::DnType::OrganizationName, "system:nodes");
    csr.params.distinguished_name = dn;
    csr.params.is_ca = rcgen::IsCa::NoCa;
    csr.params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    csr.params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let year = 1970
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            / 31_556_952) as i32;
    csr.params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    csr.params.not_after = rcgen::date_time_ymd(year + 5, 1, 1);
    csr.params.serial_number = Some(rcgen::SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
    let ca_key = rcgen::KeyPair::from_pem(&api.ca.key_pem)
        .map_err(|e| status::Error::internal(&e.to_string()))?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&api.ca.cert_pem, ca_key)
        .map_err(|e| status::Error::internal(&e.to_string()))?;
    let cert = csr
        .signed_by(&issuer)
        .map_err(|e| status::Error::bad_request(format!("cannot sign the CSR: {e}")))?;
    tracing::info!(node, "issued a node certificate");
    Ok(h::json(
        StatusCode::OK,
        &json!({"certificatePEM": cert.pem(), "caPEM": api.ca.cert_pem}),
    ))
}
