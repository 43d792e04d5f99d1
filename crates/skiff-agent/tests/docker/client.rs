//! Test clients of the node API: a test CA, HTTPS requests with a client certificate, and
//! WebSocket connections (the API server's side of the forwarded streams).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub struct TestCa {
    pub cert_pem: String,
    key_pem: String,
}

impl TestCa {
    pub fn new() -> Result<TestCa> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "skiff-test-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key)?;
        Ok(TestCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server+client certificate with `cn` and `sans`: (cert, key).
    pub fn issue(&self, cn: &str, sans: &[&str]) -> Result<(String, String)> {
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, KeyPair::from_pem(&self.key_pem)?)?;
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

impl TestCa {
    /// Signs a PKCS#10 request as the API server's join endpoint does; returns the CN asked for.
    pub fn sign_csr(&self, csr_pem: &str) -> Result<(String, String)> {
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, KeyPair::from_pem(&self.key_pem)?)?;
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)?;
        let cn = csr
            .params
            .distinguished_name
            .get(&DnType::CommonName)
            .map(|v| match v {
                rcgen::DnValue::Utf8String(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        csr.params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        Ok((csr.signed_by(&issuer)?.pem(), cn))
    }
}

pub struct NodeApiClient {
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
}

pub type Socket = WebSocketStream<TlsStream<TcpStream>>;

impl NodeApiClient {
    pub fn new(addr: SocketAddr, ca: &TestCa, cn: &str) -> Result<NodeApiClient> {
        let (cert, key) = ca.issue(cn, &[])?;
        let roots = skiff_agent::node_api::tls::roots(&ca.cert_pem)?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            skiff_agent::node_api::tls::certificates(&cert)?,
            skiff_agent::node_api::tls::private_key(&key)?,
        )?;
        Ok(NodeApiClient {
            addr,
            config: Arc::new(config),
        })
    }

    async fn tls(&self) -> Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::try_from("localhost")?;
        Ok(tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await?)
    }

    /// A GET whose body is read to the end: (status, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        let response = self.request(path).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    pub async fn request(&self, path: &str) -> Result<hyper::Response<hyper::body::Incoming>> {
        let tls = self.tls().await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        let request = http::Request::get(path)
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())?;
        Ok(sender.send_request(request).await?)
    }

    /// Opens a WebSocket offering `protocols`; returns the socket and the chosen protocol.
    pub async fn websocket(&self, path: &str, protocols: &str) -> Result<(Socket, String)> {
        let tls = self.tls().await?;
        let mut request = format!("wss://localhost{path}").into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse()?);
        let (socket, response) = match tokio_tungstenite::client_async(request, tls).await {
            Ok(pair) => pair,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                bail!(
                    "WebSocket handshake for {path} refused: {} {body}",
                    response.status()
                );
            }
            Err(e) => return Err(e).with_context(|| format!("WebSocket handshake for {path}")),
        };
        let chosen = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match chosen {
            Some(p) => Ok((socket, p)),
            None => bail!("the server chose no subprotocol"),
        }
    }
}
