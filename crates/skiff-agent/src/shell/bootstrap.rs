//! The node's identity: a key of its own, a certificate from the cluster CA obtained with the
//! node join token (`POST /skiff/v1/join-node` with a CSR), and the CA itself, learned over an
//! unauthenticated handshake and trusted only if its SHA-256 matches the token. Kept in
//! `<data_dir>/tls` (keys 0600) and reused on restart while the token names the same CA; a
//! token for another CA (a cluster restored from a backup has a new one) makes the node join
//! again and replaces the stored identity.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid node join token: {0}; it looks like skiffnode1.<ca sha256>.<secret>")]
    Token(String),
    #[error("invalid server URL {0:?}")]
    Url(String),
    #[error("contacting {addr}: {detail}")]
    Connect { addr: String, detail: String },
    #[error(
        "the server at {addr} does not present the CA the join token names (sha256 {expected})"
    )]
    CaMismatch { addr: String, expected: String },
    #[error("joining the cluster was refused ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeToken {
    pub ca_sha256: String,
    pub secret: String,
}

impl NodeToken {
    pub fn parse(s: &str) -> Result<NodeToken> {
        let mut parts = s.trim().split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("skiffnode1"), Some(hash), Some(secret), None) => {
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::Token("the CA hash is not 64 hex digits".into()));
                }
                if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::Token("the secret is not hex or too short".into()));
                }
                Ok(NodeToken {
                    ca_sha256: hash.to_ascii_lowercase(),
                    secret: secret.to_ascii_lowercase(),
                })
            }
            _ => Err(Error::Token(
                "it does not have three dot-separated parts starting with skiffnode1".into(),
            )),
        }
    }
}

/// The node's TLS identity, PEM.
#[derive(Clone, Debug)]
pub struct Identity {
    pub key_pem: String,
    pub cert_pem: String,
    pub ca_pem: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn paths(data_dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (
        dir.join("node.key"),
        dir.join("node.crt"),
        dir.join("ca.crt"),
    )
}

/// Reads a stored identity, if all three files exist.
pub fn load(data_dir: &Path) -> Result<Option<Identity>> {
    let (key, cert, ca) = paths(data_dir);
    if !(key.exists() && cert.exists() && ca.exists()) {
        return Ok(None);
    }
    Ok(Some(Identity {
        key_pem: std::fs::read_to_string(&key).map_err(io(&key))?,
        cert_pem: std::fs::read_to_string(&cert).map_err(io(&cert))?,
        ca_pem: std::fs::read_to_string(&ca).map_err(io(&ca))?,
    }))
}

fn store(data_dir: &Path, identity: &Identity) -> Result<()> {
    let (key, cert, ca) = paths(data_dir);
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(data_dir))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io(&dir))?;
    for (path, contents, mode) in [
        (&key, &identity.key_pem, 0o600),
        (&cert, &identity.cert_pem, 0o644),
        (&ca, &identity.ca_pem, 0o644),
    ] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, contents).map_err(io(&tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
    }
    Ok(())
}

/// A PKCS#10 request for the node's key, with its name and addresses as SANs.
pub fn csr(node_name: &str, addresses: &[String]) -> Result<(String, String)> {
    let key = rcgen::KeyPair::generate().map_err(|e| Error::Certificate(e.to_string()))?;
    let mut sans = vec![node_name.to_string()];
    sans.extend(addresses.iter().cloned());
    let mut params =
        rcgen::CertificateParams::new(sans).map_err(|e| Error::Certificate(e.to_string()))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("system:node:{node_name}"),
    );
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    let request = params
        .serialize_request(&key)
        .map_err(|e| Error::Certificate(e.to_string()))?;
    let pem = request
        .pem()
        .map_err(|e| Error::Certificate(e.to_string()))?;
    Ok((pem, key.serialize_pem()))
}

/// Accepts any server certificate but keeps the chain, to be checked against the token.
#[derive(Debug)]
struct CaptureChain {
    chain: Mutex<Vec<Vec<u8>>>,
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

fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// `(host, port)` of an https URL.
pub fn host_port(server: &str) -> Result<(String, u16)> {
    let uri: http::Uri = server.parse().map_err(|_| Error::Url(server.to_string()))?;
    let host = uri.host().ok_or_else(|| Error::Url(server.to_string()))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, uri.port_u16().unwrap_or(443)))
}

/// Learns the CA the server presents and checks it against the token's hash.
pub async fn fetch_ca(server: &str, token: &NodeToken) -> Result<String> {
    let (host, port) = host_port(server)?;
    let addr = format!("{host}:{port}");
    let connect_err = |detail: String| Error::Connect {
        addr: addr.clone(),
        detail,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(CaptureChain {
        chain: Mutex::new(Vec::new()),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| connect_err(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|e| connect_err(e.to_string()))?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| connect_err(e.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(10), handshake)
        .await
        .map_err(|_| connect_err("timed out".into()))??;
    let chain = verifier.chain.lock().map(|c| c.clone()).unwrap_or_default();
    chain
        .iter()
        .find(|der| hex::encode(Sha256::digest(der)) == token.ca_sha256)
        .map(|der| der_to_pem(der))
        .ok_or_else(|| Error::CaMismatch {
            addr: addr.clone(),
            expected: token.ca_sha256.clone(),
        })
}

#[derive(serde::Deserialize)]
struct JoinResponse {
    #[serde(rename = "certificatePEM")]
    certificate_pem: String,
    #[serde(rename = "caPEM", default)]
    ca_pem: String,
}

async fn join(
    server: &str,
    token: &str,
    ca_pem: &str,
    node_name: &str,
    csr_pem: &str,
) -> Result<JoinResponse> {
    let (host, port) = host_port(server)?;
    let addr = format!("{host}:{port}");
    let connect_err = |detail: String| Error::Connect {
        addr: addr.clone(),
        detail,
    };
    let roots =
        crate::node_api::tls::roots(ca_pem).map_err(|e| Error::Certificate(e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| connect_err(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|e| connect_err(e.to_string()))?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    tokio::spawn(connection);
    let body = serde_json::json!({"nodeName": node_name, "csrPEM": csr_pem}).to_string();
    let request = http::Request::post("/skiff/v1/join-node")
        .header(http::header::HOST, &addr)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| connect_err(e.to_string()))?;
    let response = tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
        .await
        .map_err(|_| connect_err("timed out".into()))?
        .map_err(|e| connect_err(e.to_string()))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| connect_err(e.to_string()))?
        .to_bytes();
    if status != 200 && status != 201 {
        return Err(Error::Refused {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::Refused {
        status,
        body: format!("unreadable response: {e}"),
    })
}

/// Whether `identity` was issued by the CA `token` pins (its SHA-256 is in the token). A
/// token for another CA means the node is being pointed at a different cluster, e.g. one
/// restored from a backup (a restore makes a new CA): the stored identity cannot talk to it.
pub fn issued_by_token_ca(identity: &Identity, token: &NodeToken) -> bool {
    crate::node_api::tls::certificates(&identity.ca_pem)
        .map(|certs| {
            certs
                .iter()
                .any(|der| hex::encode(Sha256::digest(der.as_ref())) == token.ca_sha256)
        })
        .unwrap_or(false)
}

/// The stored identity if the token pins its CA, else a new one obtained with the join token
/// through the first of `servers` that completes the join (replacing the stored one only once
/// the join succeeded). Joining again through another server is safe: the join only signs the
/// node's CSR and writes nothing, so a join whose answer was lost leaves nothing behind.
pub async fn ensure(
    data_dir: &Path,
    servers: &[String],
    token: &str,
    node_name: &str,
    addresses: &[String],
) -> Result<Identity> {
    let parsed = NodeToken::parse(token)?;
    if let Some(identity) = load(data_dir)? {
        if issued_by_token_ca(&identity, &parsed) {
            return Ok(identity);
        }
        tracing::warn!(
            ca_sha256 = %parsed.ca_sha256,
            "the node join token names another cluster CA than the one this node joined \
             (the cluster was restored from a backup or rebuilt): joining it again; \
             running containers are kept and reconciled with the pods it has"
        );
    }
    let (csr_pem, key_pem) = csr(node_name, addresses)?;
    let mut last = Error::Url("no API server given".into());
    for server in servers {
        match join_through(server, token, &parsed, node_name, &csr_pem).await {
            Ok((certificate_pem, ca_pem)) => {
                let identity = Identity {
                    key_pem,
                    cert_pem: certificate_pem,
                    ca_pem,
                };
                store(data_dir, &identity)?;
                return Ok(identity);
            }
            Err(e) => {
                if servers.len() > 1 {
                    tracing::warn!(%server, error = %e, "joining through this API server failed; trying the next");
                }
                last = e;
            }
        }
    }
    Err(last)
}

/// One join through `server`: the CA it presents (checked against the token), the signed
/// certificate, and the CA it returns (checked again). Returns (certificate, CA).
async fn join_through(
    server: &str,
    token: &str,
    parsed: &NodeToken,
    node_name: &str,
    csr_pem: &str,
) -> Result<(String, String)> {
    let ca_pem = fetch_ca(server, parsed).await?;
    let response = join(server, token, &ca_pem, node_name, csr_pem).await?;
    // The CA the server returns must be the one the token pins.
    if !response.ca_pem.trim().is_empty() {
        let returned = crate::node_api::tls::certificates(&response.ca_pem)
            .map_err(|e| Error::Certificate(e.to_string()))?;
        if !returned
            .iter()
            .any(|der| hex::encode(Sha256::digest(der.as_ref())) == parsed.ca_sha256)
        {
            return Err(Error::CaMismatch {
                addr: server.to_string(),
                expected: parsed.ca_sha256.clone(),
            });
        }
    }
    Ok((response.certificate_pem, ca_pem))
}

#[cfg(test)]
mod tests;
