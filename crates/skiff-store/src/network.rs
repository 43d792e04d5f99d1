//! openraft's network over gRPC: AppendEntries, Vote and snapshot chunks to other members.
//!
//! Raft messages travel as postcard bytes in an `Envelope`; the remote answers with a postcard
//! `Result` of openraft's response or `RaftError`. A member that cannot be reached yields
//! `Unreachable` (openraft backs off); any other transport failure is a `NetworkError`.

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::pb::raft::Envelope;
use crate::pb::raft::raft_client::RaftClient;
use crate::peers::{MAX_MESSAGE_BYTES, Peers};
use crate::raft_types::TypeConfig;
use crate::types::{Member, MemberId};

pub struct Network {
    pub peers: Peers,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: MemberId, node: &Member) -> Connection {
        if self.peers.address(target).is_none() {
            self.peers.set_address(target, &node.addr);
        }
        Connection {
            target,
            target_node: node.clone(),
            peers: self.peers.clone(),
        }
    }
}

pub struct Connection {
    target: MemberId,
    target_node: Member,
    peers: Peers,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

type RpcResult<T, E> = Result<T, RPCError<MemberId, Member, E>>;

impl Connection {
    async fn call<Req, Resp, E>(
        &self,
        which: fn(RaftClient<tonic::transport::Channel>, Envelope) -> CallFuture,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel = self.peers.channel(self.target).ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&Msg(format!(
                "no address for member {}",
                self.target
            ))))
        })?;
        let client = RaftClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let data =
            postcard::to_stdvec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let call = which(client, Envelope { data });
        let reply = match tokio::time::timeout(option.hard_ttl(), call).await {
            Err(_) => {
                return Err(RPCError::Network(NetworkError::new(&Msg(
                    "timed out".into()
                ))));
            }
            Ok(Err(status)) => {
                let err = Msg(format!("{}: {}", status.code(), status.message()));
                // openraft retries network errors at once but backs off from unreachable
                // members: a member that refuses or cannot serve us is treated as unreachable.
                return Err(RPCError::Unreachable(Unreachable::new(&err)));
            }
            Ok(Ok(reply)) => reply,
        };
        let decoded: Result<Resp, E> = postcard::from_bytes(&reply.data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.target_node.clone(),
                e,
            ))
        })
    }
}

type CallFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Envelope, tonic::Status>> + Send>>;

fn append(mut c: RaftClient<tonic::transport::Channel>, e: Envelope) -> CallFuture {
    Box::pin(async move { c.append_entries(e).await.map(|r| r.into_inner()) })
}
fn vote(mut c: RaftClient<tonic::transport::Channel>, e: Envelope) -> CallFuture {
    Box::pin(async move { c.vote(e).await.map(|r| r.into_inner()) })
}
fn snapshot(mut c: RaftClient<tonic::transport::Channel>, e: Envelope) -> CallFuture {
    Box::pin(async move { c.install_snapshot(e).await.map(|r| r.into_inner()) })
}

impl RaftNetwork<TypeConfig> for Connection {
    fn backoff(&self) -> openraft::network::Backoff {
        let steps = [50u64, 100, 200, 400]
            .into_iter()
            .chain(std::iter::repeat(500));
        openraft::network::Backoff::new(steps.map(std::time::Duration::from_millis))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<MemberId>, RaftError<MemberId>> {
        self.call(append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<MemberId>, RaftError<MemberId, InstallSnapshotError>>
    {
        self.call(snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<MemberId>, RaftError<MemberId>> {
        self.call(vote, &rpc, &option).await
    }
}
