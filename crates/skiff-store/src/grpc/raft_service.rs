//! The Raft service: hands replication messages from other members to openraft.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use super::auth::{Role, require};
use crate::pb::raft::Envelope;
use crate::pb::raft::raft_server::Raft;
use crate::store::Store;

pub struct RaftService {
    pub store: Store,
}

fn decode<T: DeserializeOwned>(e: &Envelope) -> Result<T, Status> {
    postcard::from_bytes(&e.data)
        .map_err(|err| Status::invalid_argument(format!("undecodable raft message: {err}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Response<Envelope>, Status> {
    postcard::to_stdvec(v)
        .map(|data| Response::new(Envelope { data }))
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn append_entries(
        &self,
        request: Request<Envelope>,
    ) -> Result<Response<Envelope>, Status> {
        require(&request, Role::Member)?;
        let rpc = decode(request.get_ref())?;
        encode(&self.store.raft().append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<Envelope>) -> Result<Response<Envelope>, Status> {
        require(&request, Role::Member)?;
        let rpc = decode(request.get_ref())?;
        encode(&self.store.raft().vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<Envelope>,
    ) -> Result<Response<Envelope>, Status> {
        require(&request, Role::Member)?;
        let rpc = decode(request.get_ref())?;
        encode(&self.store.raft().install_snapshot(rpc).await)
    }
}
