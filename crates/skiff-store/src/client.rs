//! Connecting to a member's KV and admin services as the administrator (tools and tests).

use std::path::Path;
use std::time::Duration;

use tonic::transport::Channel;

use crate::identity::DataDir;
use crate::pb::kv::kv_client::KvClient;
use crate::pb::raft::admin_client::AdminClient;
use crate::peers::{self, MAX_MESSAGE_BYTES};
use crate::tls::Issued;

/// The CA and a client certificate with the store role.
#[derive(Clone)]
pub struct Credentials {
    pub ca_pem: String,
    pub cert: Issued,
}

impl Credentials {
    /// The admin credentials a member keeps in its data directory.
    pub fn from_data_dir(dir: &Path) -> Result<Self, crate::identity::Error> {
        let d = DataDir::new(dir);
        Ok(Credentials {
            ca_pem: d.load_ca()?.cert_pem,
            cert: d.load_admin_cert()?,
        })
    }

    /// A lazily connecting channel to a member's peer address.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        peers::channel(
            addr,
            &peers::client_tls(&self.ca_pem, Some(&self.cert)),
            Duration::from_secs(2),
        )
    }

    pub fn kv(&self, addr: &str) -> Result<KvClient<Channel>, tonic::transport::Error> {
        Ok(KvClient::new(self.channel(addr)?).max_decoding_message_size(MAX_MESSAGE_BYTES))
    }

    pub fn admin(&self, addr: &str) -> Result<AdminClient<Channel>, tonic::transport::Error> {
        Ok(AdminClient::new(self.channel(addr)?))
    }
}
