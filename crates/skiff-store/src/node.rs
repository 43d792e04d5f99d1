//! Starting a member: create a cluster, join one, or come back from the data directory.
//!
//! `start` takes an already-bound peer listener (tests bind port 0) and returns a running
//! [`Store`]. A member that was created before restarts from its data directory whatever the
//! start mode says, so the same command works for the first start and every restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch as tokio_watch;

use crate::batch::Batcher;
use crate::config::Config;
use crate::db::Db;
use crate::identity::{DataDir, Identity};
use crate::log_store::LogStore;
use crate::metrics::StoreMetrics;
use crate::network::Network;
use crate::pb::raft::JoinRequest;
use crate::pb::raft::admin_client::AdminClient;
use crate::peers::{self, Peers};
use crate::raft_types::Raft;
use crate::read_index::ReadIndex;
use crate::state_machine::{self, StateMachine};
use crate::store::{Inner, Leadership, Store};
use crate::tls::{self, Ca, JoinToken};
use crate::types::Member;

/// How to start.
#[derive(Clone, Debug)]
pub enum Start {
    /// Create a new cluster with this member as its first member, with these shared files
    /// (kept in `<data-dir>/cluster-files` and handed to every member that joins).
    Init {
        cluster_files: std::collections::BTreeMap<String, Vec<u8>>,
    },
    /// Join the cluster that one of these members belongs to.
    Join { peers: Vec<String>, token: String },
    /// Restart the member in the data directory.
    Existing,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    #[error("{0}")]
    DataDir(String),
    #[error("joining failed: {0}")]
    Join(String),
    #[error(transparent)]
    Identity(#[from] crate::identity::Error),
    #[error(transparent)]
    Tls(#[from] tls::Error),
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::Error),
    #[error("raft: {0}")]
    Raft(String),
    #[error("serving the peer port: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// What a member was started with and learned.
pub struct Started {
    pub store: Store,
    /// True if this start created the cluster.
    pub created: bool,
    pub token: String,
}

/// Starts a member.
pub async fn start(
    config: Config,
    listener: TcpListener,
    mode: Start,
    registry: Option<&prometheus::Registry>,
) -> Result<Started, Error> {
    config.validate().map_err(Error::Config)?;
    let dir = DataDir::new(&config.data_dir);
    let mut created = false;
    if !dir.is_initialized() {
        match &mode {
            Start::Init { cluster_files } => {
                create_cluster(&dir, &config, cluster_files)?;
                created = true;
            }
            Start::Join { peers, token } => join_cluster(&dir, &config, peers, token).await?,
            Start::Existing => {
                return Err(Error::DataDir(format!(
                    "{} holds no member: create a cluster with --init or join one with --join <peer> --token <token>",
                    dir.root.display()
                )));
            }
        }
    } else if !matches!(mode, Start::Existing) {
        tracing::info!(
            "{} already holds a member; restarting it (--init/--join ignored)",
            dir.root.display()
        );
    }
    // A restored or forced member initializes its one-member group once.
    let pending_init = dir.initialize_marker().exists();
    created |= pending_init;
    let identity = dir.load_identity()?;
    let ca = dir.load_ca()?;
    let member_cert = dir.load_member_cert()?;
    let token = JoinToken::parse(&dir.load_token()?)?;

    let mut db = Db::open(&dir.db())?;
    if config.unsafe_no_fsync {
        db = db.without_fsync();
    }
    if config.unsafe_ack_before_commit {
        tracing::warn!(
            "UNSAFE: transactions are acknowledged before they commit; acknowledged writes can be lost"
        );
    }
    if config.unsafe_local_reads {
        tracing::warn!("UNSAFE: linearizable reads are served locally; they can be stale");
    }
    let metrics = match registry {
        Some(r) => StoreMetrics::register(r)?,
        None => StoreMetrics::private(),
    };
    let shared = state_machine::load(
        &db,
        metrics.clone(),
        &identity.cluster_id,
        config.watch_queue,
    )?;
    let log_store = LogStore::new(db.clone(), metrics.clone());
    let sm = StateMachine::new(db.clone(), &dir.snapshots(), shared.clone())?;
    let peers = Peers::new(
        peers::client_tls(&ca.cert_pem, Some(&member_cert)),
        Duration::from_secs(1),
    );
    let raft_config = config
        .raft_config(&identity.cluster_id)
        .validate()
        .map_err(|e| Error::Raft(e.to_string()))?;
    let raft = Raft::new(
        identity.member_id,
        Arc::new(raft_config),
        Network {
            peers: peers.clone(),
        },
        log_store,
        sm,
    )
    .await
    .map_err(|e| Error::Raft(e.to_string()))?;

    let (shutdown, _) = tokio_watch::channel(false);
    let (leadership, _) = tokio_watch::channel(Leadership::default());
    let reads = ReadIndex::start(
        raft.clone(),
        peers.clone(),
        identity.member_id,
        config.request_timeout,
    );
    let store = Store {
        inner: Arc::new(Inner {
            identity: identity.clone(),
            config: config.clone(),
            raft: raft.clone(),
            db,
            shared,
            peers: peers.clone(),
            token: token.clone(),
            ca: ca.clone(),
            reads,
            batcher: Batcher::start(
                raft.clone(),
                config.limits.max_request_bytes,
                metrics.clone(),
            ),
            metrics,
            transferring: AtomicBool::new(false),
            caught_up: AtomicBool::new(false),
            leadership,
            shutdown,
        }),
    };
    let router = crate::grpc::router(&store, &ca, &member_cert)?;
    let mut stop = store.shutdown_signal();
    tokio::spawn(async move {
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let incoming = crate::grpc::incoming(listener);
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, signal).await {
            tracing::error!("peer server stopped: {e}");
        }
    });
    if created {
        let me = Member {
            name: identity.name.clone(),
            addr: config.advertise_addr.clone(),
        };
        match raft
            .initialize(BTreeMap::from([(identity.member_id, me)]))
            .await
        {
            Ok(()) => {}
            // Initialized before a crash that left the marker behind.
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) if pending_init => {}
            Err(e) => return Err(Error::Raft(e.to_string())),
        }
        if pending_init {
            // The restored (or kept) data is in the state machine but in no log entry: make it
            // a snapshot and purge the log up to it, so members that join replicate it through
            // the snapshot instead of an empty log.
            snapshot_and_purge(&raft, identity.member_id).await?;
            let marker = dir.initialize_marker();
            std::fs::remove_file(&marker).map_err(|source| {
                Error::Identity(crate::identity::Error::Io {
                    path: marker.clone(),
                    source,
                })
            })?;
        }
    }
    for m in store.members() {
        if m.id != identity.member_id {
            peers.set_address(m.id, &m.addr);
        }
    }
    crate::background::spawn_all(&store);
    Ok(Started {
        store,
        created,
        token: token.to_string(),
    })
}

/// Waits until this one-member group leads and has applied its log, then builds a snapshot and
/// purges every log entry it covers.
async fn snapshot_and_purge(raft: &Raft, me: u64) -> Result<(), Error> {
    let timeout = Some(Duration::from_secs(30));
    let m = raft
        .wait(timeout)
        .metrics(
            |m| {
                m.current_leader == Some(me)
                    && m.last_applied.is_some()
                    && m.last_applied.map(|l| l.index) >= m.last_log_index
            },
            "leading with the log applied",
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
    let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    raft.trigger()
        .snapshot()
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
    let m = raft
        .wait(timeout)
        .metrics(
            |m| m.snapshot.map(|s| s.index >= applied).unwrap_or(false),
            "snapshot of the restored data",
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
    if let Some(snap) = m.snapshot {
        raft.trigger()
            .purge_log(snap.index)
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        raft.wait(timeout)
            .metrics(
                |m| m.purged.map(|p| p.index >= snap.index).unwrap_or(false),
                "log purged up to the snapshot",
            )
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
    }
    Ok(())
}

fn create_cluster(
    dir: &DataDir,
    config: &Config,
    cluster_files: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Result<(), Error> {
    crate::cluster::validate_member_name(&config.name)
        .map_err(|e| Error::DataDir(e.to_string()))?;
    if !dir.is_empty() {
        return Err(Error::DataDir(format!(
            "{} is not empty but holds no member; refusing to create a cluster in it",
            dir.root.display()
        )));
    }
    dir.create()?;
    dir.save_cluster_files(cluster_files)?;
    let ca = Ca::generate("skiff-cluster-ca")?;
    let identity = Identity {
        cluster_id: hex::encode(rand::random::<[u8; 8]>()),
        member_id: 1,
        name: config.name.clone(),
    };
    save_member(dir, &ca, &identity)?;
    dir.save_token(&JoinToken::generate(&ca)?.to_string())?;
    tracing::info!(cluster = %identity.cluster_id, "created a new cluster");
    Ok(())
}

pub(crate) fn save_member(dir: &DataDir, ca: &Ca, identity: &Identity) -> Result<(), Error> {
    let member = ca.issue_member(&identity.name, &[])?;
    let admin = ca.issue_admin()?;
    dir.save_tls(ca, &member, &admin)?;
    // The identity is written last: its presence marks a complete member.
    dir.save_identity(identity)?;
    Ok(())
}

async fn join_cluster(
    dir: &DataDir,
    config: &Config,
    peers: &[String],
    token: &str,
) -> Result<(), Error> {
    crate::cluster::validate_member_name(&config.name)
        .map_err(|e| Error::DataDir(e.to_string()))?;
    if !dir.is_empty() {
        return Err(Error::DataDir(format!(
            "{} is not empty but holds no member; use an empty directory to join",
            dir.root.display()
        )));
    }
    let token_parsed = JoinToken::parse(token)?;
    if peers.is_empty() {
        return Err(Error::Join(
            "no peer address given (--join <host:port>)".into(),
        ));
    }
    let mut last_error = String::new();
    for attempt in 0..30 {
        for peer in peers {
            match try_join(peer, &token_parsed, token, config).await {
                Ok(response) => {
                    let ca = Ca {
                        cert_pem: response.ca_cert_pem,
                        key_pem: response.ca_key_pem,
                    };
                    if ca.fingerprint()? != token_parsed.ca_sha256 {
                        return Err(Error::Join(
                            "the cluster sent a CA that does not match the token".into(),
                        ));
                    }
                    dir.create()?;
                    dir.save_cluster_files(&response.cluster_files.into_iter().collect())?;
                    let identity = Identity {
                        cluster_id: response.cluster_id,
                        member_id: response.member_id,
                        name: config.name.clone(),
                    };
                    dir.save_token(token)?;
                    save_member(dir, &ca, &identity)?;
                    tracing::info!(member = identity.member_id, cluster = %identity.cluster_id, "joined the cluster as a learner");
                    return Ok(());
                }
                Err(JoinFailure::Final(e)) => return Err(Error::Join(e)),
                Err(JoinFailure::Retry(e)) => last_error = format!("{peer}: {e}"),
            }
        }
        if attempt < 29 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Err(Error::Join(format!(
        "no member accepted the join; last error: {last_error}"
    )))
}

enum JoinFailure {
    Retry(String),
    Final(String),
}

async fn try_join(
    peer: &str,
    token: &JoinToken,
    token_text: &str,
    config: &Config,
) -> Result<crate::pb::raft::JoinResponse, JoinFailure> {
    let ca_pem = tls::fetch_ca(peer, token, Duration::from_secs(3))
        .await
        .map_err(|e| match e {
            tls::Error::CaMismatch { .. } => JoinFailure::Final(e.to_string()),
            other => JoinFailure::Retry(other.to_string()),
        })?;
    let channel = peers::channel(
        peer,
        &peers::client_tls(&ca_pem, None),
        Duration::from_secs(3),
    )
    .map_err(|e| JoinFailure::Final(e.to_string()))?;
    let request = JoinRequest {
        token: token_text.to_string(),
        name: config.name.clone(),
        addr: config.advertise_addr.clone(),
    };
    match AdminClient::new(channel).join(request).await {
        Ok(r) => Ok(r.into_inner()),
        Err(s) => match s.code() {
            tonic::Code::Unauthenticated
            | tonic::Code::AlreadyExists
            | tonic::Code::InvalidArgument => Err(JoinFailure::Final(s.message().to_string())),
            _ => Err(JoinFailure::Retry(s.message().to_string())),
        },
    }
}
