//! A local etcd cluster from the machine's `etcd` binary, for side-by-side comparisons.
//!
//! Same conditions as Skiff's local cluster: loopback, its own temporary directory, TLS on the
//! client and peer ports (certificates from a throwaway CA), fsync on (etcd's default).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, Identity, TlsOptions, Txn, TxnOp,
};
use skiff_store::tls::{Ca, CertSpec};

use super::local::free_port;
use super::store::Kv;

pub struct EtcdCluster {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    pub client_urls: Vec<String>,
    ca_pem: String,
    client_cert: skiff_store::tls::Issued,
}

impl EtcdCluster {
    pub async fn start(n: usize) -> anyhow::Result<EtcdCluster> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-bench-etcd-")
            .tempdir()?;
        let ca = Ca::generate("bench-etcd-ca")?;
        let server = ca.issue(&CertSpec {
            common_name: "etcd".into(),
            sans: vec!["127.0.0.1".into(), "localhost".into()],
            server: true,
            client: true,
            valid_years: 1,
            ..CertSpec::default()
        })?;
        let client_cert = ca.issue(&CertSpec {
            common_name: "bench".into(),
            client: true,
            valid_years: 1,
            ..CertSpec::default()
        })?;
        let write = |name: &str, s: &str| -> anyhow::Result<String> {
            let p = dir.path().join(name);
            std::fs::write(&p, s)?;
            Ok(p.display().to_string())
        };
        let (ca_file, cert_file, key_file) = (
            write("ca.crt", &ca.cert_pem)?,
            write("server.crt", &server.cert_pem)?,
            write("server.key", &server.key_pem)?,
        );
        let mut peers = Vec::new();
        let mut client_urls = Vec::new();
        for i in 0..n {
            peers.push(format!("e{}=https://127.0.0.1:{}", i + 1, free_port()?));
            client_urls.push(format!("https://127.0.0.1:{}", free_port()?));
        }
        let initial = peers.join(",");
        let mut cluster = EtcdCluster {
            dir,
            children: Vec::new(),
            client_urls: client_urls.clone(),
            ca_pem: ca.cert_pem.clone(),
            client_cert,
        };
        for i in 0..n {
            let name = format!("e{}", i + 1);
            let peer_url = peers[i]
                .split_once('=')
                .map(|(_, u)| u.to_string())
                .unwrap_or_default();
            let log = std::fs::File::create(cluster.dir.path().join(format!("{name}.log")))?;
            let child = Command::new("etcd")
                .args(["--name", &name])
                .arg("--data-dir")
                .arg(cluster.dir.path().join(&name))
                .args([
                    "--listen-client-urls",
                    &client_urls[i],
                    "--advertise-client-urls",
                    &client_urls[i],
                ])
                .args([
                    "--listen-peer-urls",
                    &peer_url,
                    "--initial-advertise-peer-urls",
                    &peer_url,
                ])
                .args([
                    "--initial-cluster",
                    &initial,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "bench",
                ])
                .args([
                    "--cert-file",
                    &cert_file,
                    "--key-file",
                    &key_file,
                    "--trusted-ca-file",
                    &ca_file,
                    "--client-cert-auth",
                ])
                .args([
                    "--peer-cert-file",
                    &cert_file,
                    "--peer-key-file",
                    &key_file,
                    "--peer-trusted-ca-file",
                    &ca_file,
                ])
                .arg("--peer-client-cert-auth")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("running `etcd`")?;
            cluster.children.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut c) = cluster.client(0).await
                && c.put(b"bench-ready".to_vec(), b"1".to_vec()).await.is_ok()
            {
                return Ok(cluster);
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd did not become ready; logs in {}",
                    cluster.dir.path().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A client of its own for worker `w`, connected to one member (round robin).
    pub async fn client(&self, w: usize) -> anyhow::Result<EtcdKv> {
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(
                &self.client_cert.cert_pem,
                &self.client_cert.key_pem,
            ))
            .domain_name("localhost");
        let opts = ConnectOptions::new()
            .with_tls(tls)
            .with_timeout(Duration::from_secs(10));
        let url = &self.client_urls[w % self.client_urls.len()];
        let client = Client::connect([url.as_str()], Some(opts)).await?;
        Ok(EtcdKv { client })
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct EtcdKv {
    client: Client,
}

impl EtcdKv {
    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> anyhow::Result<u64> {
        let r = self.client.put(key, value, None).await?;
        Ok(r.header().map(|h| h.revision() as u64).unwrap_or(0))
    }
}

#[async_trait::async_trait]
impl Kv for EtcdKv {
    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> anyhow::Result<u64> {
        EtcdKv::put(self, key, value).await
    }
    async fn cas(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        revision: u64,
    ) -> anyhow::Result<(bool, u64)> {
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                revision as i64,
            )])
            .and_then([TxnOp::put(key, value, None)]);
        let r = self.client.txn(txn).await?;
        Ok((
            r.succeeded(),
            r.header().map(|h| h.revision() as u64).unwrap_or(0),
        ))
    }
    async fn get(&mut self, key: Vec<u8>) -> anyhow::Result<Option<Vec<u8>>> {
        let r = self.client.get(key, None).await?;
        Ok(r.kvs().first().map(|kv| kv.value().to_vec()))
    }
}
