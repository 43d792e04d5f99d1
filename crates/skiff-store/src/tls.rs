//! The cluster CA, member and admin certificates, join tokens, and who may call what.
//!
//! `--init` creates a CA; every member and the admin identity hold certificates it signed.
//! Roles travel in the certificate subject's organizations: [`ROLE_MEMBER`] for members (Raft
//! and internal calls), [`ROLE_STORE`] for anything allowed to use the KV and admin services.
//! Other certificates from the same CA (e.g. Kubernetes client certificates) carry neither and
//! are refused on the peer port. A join token pins the CA by its SHA-256, so a joining member
//! can fetch the CA certificate over an unauthenticated handshake and still trust it.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, date_time_ymd,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// Organization carried by every member certificate.
pub const ROLE_MEMBER: &str = "skiff:member";
/// Organization carried by certificates allowed to use the KV and admin services.
pub const ROLE_STORE: &str = "skiff:store";
/// The name every member certificate is valid for; clients verify it (addresses change).
pub const PEER_SERVER_NAME: &str = "skiff-peer";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error(
        "invalid join token: {0}; a token looks like skiff1.<ca sha256>.<secret>, as printed by `skiff server --init`"
    )]
    Token(String),
    #[error("fetching the cluster CA from {addr}: {detail}")]
    Fetch { addr: String, detail: String },
    #[error(
        "the member at {addr} does not present the CA the join token names (expected sha256 {expected}); is it the right cluster?"
    )]
    CaMismatch { addr: String, expected: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A certificate authority: PEM certificate and key.
#[derive(Clone)]
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What to put in a certificate.
#[derive(Clone, Debug, Default)]
pub struct CertSpec {
    pub common_name: String,
    pub organizations: Vec<String>,
    /// DNS names or IP addresses.
    pub sans: Vec<String>,
    pub server: bool,
    pub client: bool,
    pub valid_years: i32,
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

fn this_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    1970 + (secs / 31_556_952) as i32
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

impl Ca {
    /// A new CA valid for 20 years.
    pub fn generate(common_name: &str) -> Result<Ca> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let year = this_year();
        params.not_before = date_time_ymd(year - 1, 1, 1);
        params.not_after = date_time_ymd(year + 20, 1, 1);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a certificate signed by this CA.
    pub fn issue(&self, spec: &CertSpec) -> Result<Issued> {
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(spec.sans.clone())?;
        params
            .distinguished_name
            .push(DnType::CommonName, spec.common_name.as_str());
        for org in &spec.organizations {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org.as_str());
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if spec.server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if spec.client {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        let year = this_year();
        params.not_before = date_time_ymd(year - 1, 1, 1);
        params.not_after = date_time_ymd(year + spec.valid_years.max(1), 1, 1);
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// SHA-256 of the CA certificate (DER), hex.
    pub fn fingerprint(&self) -> Result<String> {
        let der = first_der(&self.cert_pem)?;
        Ok(hex::encode(Sha256::digest(der)))
    }

    /// The certificate a member serves and presents: server and client, both roles.
    pub fn issue_member(&self, name: &str, extra_sans: &[String]) -> Result<Issued> {
        let mut sans = vec![PEER_SERVER_NAME.to_string(), "localhost".to_string()];
        sans.extend(extra_sans.iter().cloned());
        self.issue(&CertSpec {
            common_name: format!("member:{name}"),
            // One organization only: a certificate subject holds one value per attribute type.
            // The member role implies the store role (see `grpc::auth`).
            organizations: vec![ROLE_MEMBER.into()],
            sans,
            server: true,
            client: true,
            valid_years: 10,
        })
    }

    /// The administrator's client certificate for the KV and admin services.
    pub fn issue_admin(&self) -> Result<Issued> {
        self.issue(&CertSpec {
            common_name: "skiff-admin".into(),
            organizations: vec![ROLE_STORE.into()],
            sans: vec![],
            server: false,
            client: true,
            valid_years: 10,
        })
    }
}

/// The DER of the first certificate in a PEM bundle.
pub fn first_der(pem: &str) -> Result<Vec<u8>> {
    let mut reader = std::io::Cursor::new(pem.as_bytes());
    match rustls_pemfile::certs(&mut reader).next() {
        Some(Ok(der)) => Ok(der.to_vec()),
        Some(Err(e)) => Err(Error::Pem(e.to_string())),
        None => Err(Error::Pem("no certificate found".into())),
    }
}

pub fn der_to_pem(der: &[u8]) -> String {
    use std::fmt::Write;
    let b64 = base64_encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        let _ = writeln!(out, "{}", String::from_utf8_lossy(chunk));
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// The subject organizations and common name of a DER certificate.
pub fn subject_of(der: &[u8]) -> Option<(Option<String>, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string);
    let orgs = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_string)
        .collect();
    Some((cn, orgs))
}

/// A join token: the CA fingerprint and a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_sha256: String,
    pub secret: String,
}

impl JoinToken {
    pub fn generate(ca: &Ca) -> Result<JoinToken> {
        Ok(JoinToken {
            ca_sha256: ca.fingerprint()?,
            secret: hex::encode(rand::random::<[u8; 24]>()),
        })
    }

    pub fn parse(s: &str) -> Result<JoinToken> {
        let s = s.trim();
        let mut parts = s.split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("skiff1"), Some(hash), Some(secret), None) => {
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::Token("the CA hash is not 64 hex digits".into()));
                }
                if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::Token("the secret is not hex or too short".into()));
                }
                Ok(JoinToken {
                    ca_sha256: hash.to_ascii_lowercase(),
                    secret: secret.to_ascii_lowercase(),
                })
            }
            _ => Err(Error::Token(
                "it does not have the form skiff1.<hash>.<secret>".into(),
            )),
        }
    }

    /// Compares secrets in constant time.
    pub fn secret_matches(&self, other: &JoinToken) -> bool {
        let (a, b) = (self.secret.as_bytes(), other.secret.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "skiff1.{}.{}", self.ca_sha256, self.secret)
    }
}

/// Accepts any server certificate and keeps the chain: used only to learn the CA certificate,
/// which is then checked against the token's hash before anything is trusted.
#[derive(Debug)]
struct CaptureChain {
    chain: std::sync::Mutex<Vec<Vec<u8>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for CaptureChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            chain.push(end_entity.to_vec());
            chain.extend(intermediates.iter().map(|c| c.to_vec()));
        }
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Fetches the CA certificate a member at `addr` presents and checks it against the token.
pub async fn fetch_ca(addr: &str, token: &JoinToken, timeout: Duration) -> Result<String> {
    let fetch_err = |detail: String| Error::Fetch {
        addr: addr.to_string(),
        detail,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(CaptureChain {
        chain: std::sync::Mutex::new(Vec::new()),
        provider: provider.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fetch_err(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(PEER_SERVER_NAME).map_err(|e| fetch_err(e.to_string()))?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| fetch_err(e.to_string()))?;
        connector
            .connect(name, tcp)
            .await
            .map_err(|e| fetch_err(e.to_string()))
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| fetch_err("timed out".into()))??;
    let chain = verifier.chain.lock().map(|c| c.clone()).unwrap_or_default();
    for der in chain {
        if hex::encode(Sha256::digest(&der)) == token.ca_sha256 {
            return Ok(der_to_pem(&der));
        }
    }
    Err(Error::CaMismatch {
        addr: addr.to_string(),
        expected: token.ca_sha256.clone(),
    })
}
