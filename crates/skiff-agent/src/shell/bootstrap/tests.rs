//! Tests for the node identity: token parsing, and which stored identity a token keeps.

use super::*;

/// A self-signed CA certificate (PEM) and its SHA-256 (hex), as a join token names it.
fn ca() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("self-signed");
    let hash = hex::encode(Sha256::digest(cert.der().as_ref()));
    (cert.pem(), hash)
}

fn token_for(ca_sha256: &str) -> String {
    format!("skiffnode1.{ca_sha256}.{}", "ab".repeat(24))
}

fn identity(ca_pem: &str) -> Identity {
    Identity {
        key_pem: "key".into(),
        cert_pem: "cert".into(),
        ca_pem: ca_pem.into(),
    }
}

#[test]
fn tokens_parse_or_say_what_is_wrong() {
    let (_, hash) = ca();
    let t = NodeToken::parse(&token_for(&hash.to_uppercase())).expect("valid");
    assert_eq!(t.ca_sha256, hash);
    for bad in [
        "",
        "skiffnode1.abc.0123456789abcdef0123",
        "skiff1.x.y",
        &format!("skiffnode1.{hash}.short"),
        &format!("skiffnode1.{hash}.{}.extra", "ab".repeat(24)),
    ] {
        assert!(NodeToken::parse(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn a_stored_identity_is_kept_only_for_a_token_of_its_ca() {
    let (old_pem, old_hash) = ca();
    let (_, new_hash) = ca();
    let stored = identity(&old_pem);
    let same = NodeToken::parse(&token_for(&old_hash)).expect("token");
    let restored = NodeToken::parse(&token_for(&new_hash)).expect("token");
    assert!(issued_by_token_ca(&stored, &same));
    assert!(
        !issued_by_token_ca(&stored, &restored),
        "a token of a restored cluster (new CA) must not reuse the old identity"
    );
    assert!(
        !issued_by_token_ca(&identity("not a certificate"), &same),
        "an unreadable stored CA is joined again"
    );
}

#[tokio::test]
async fn ensure_reuses_the_identity_of_the_same_ca_and_keeps_it_when_a_new_join_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (old_pem, old_hash) = ca();
    let stored = identity(&old_pem);
    store(dir.path(), &stored).expect("store");
    // A closed port: any attempt to contact the server fails.
    let server = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("https://{}", l.local_addr().expect("addr"))
    };
    let same = ensure(
        dir.path(),
        std::slice::from_ref(&server),
        &token_for(&old_hash),
        "n1",
        &[],
    )
    .await
    .expect("the stored identity, without contacting the server");
    assert_eq!(same.ca_pem, old_pem);

    let (_, new_hash) = ca();
    let err = ensure(
        dir.path(),
        std::slice::from_ref(&server),
        &token_for(&new_hash),
        "n1",
        &[],
    )
    .await
    .expect_err("a token of another CA joins again, and the server is unreachable");
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    let kept = load(dir.path()).expect("load").expect("still stored");
    assert_eq!(
        kept.ca_pem, old_pem,
        "a failed join leaves the old identity"
    );
}
