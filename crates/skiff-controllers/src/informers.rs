//! The shared caches every controller reads, started once per leadership term (kube-controller-
//! manager's shared informer factory).
//!
//! Invariants: one watch per kind per term; every cache is dropped (its watch stopped) when the
//! term's stop signal flips.

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Endpoints, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service,
    ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::{Api, Client};
use tokio::sync::watch;

use crate::shell::{Cache, Result};

/// Every cache the controllers share.
#[derive(Clone)]
pub struct Informers {
    pub pods: Cache<Pod>,
    pub nodes: Cache<Node>,
    pub namespaces: Cache<Namespace>,
    pub replica_sets: Cache<ReplicaSet>,
    pub deployments: Cache<Deployment>,
    pub stateful_sets: Cache<StatefulSet>,
    pub daemon_sets: Cache<DaemonSet>,
    pub revisions: Cache<ControllerRevision>,
    pub jobs: Cache<Job>,
    pub cron_jobs: Cache<CronJob>,
    pub leases: Cache<Lease>,
    pub services: Cache<Service>,
    pub endpoints: Cache<Endpoints>,
    pub slices: Cache<EndpointSlice>,
    pub service_accounts: Cache<ServiceAccount>,
    pub claims: Cache<PersistentVolumeClaim>,
    pub volumes: Cache<PersistentVolume>,
    pub storage_classes: Cache<StorageClass>,
    pub budgets: Cache<PodDisruptionBudget>,
}

impl Informers {
    /// Start every watch.
    pub fn start(client: &Client, stop: &watch::Receiver<bool>) -> Self {
        let c = || client.clone();
        let s = || stop.clone();
        Self {
            pods: Cache::start(Api::all(c()), s()),
            nodes: Cache::start(Api::all(c()), s()),
            namespaces: Cache::start(Api::all(c()), s()),
            replica_sets: Cache::start(Api::all(c()), s()),
            deployments: Cache::start(Api::all(c()), s()),
            stateful_sets: Cache::start(Api::all(c()), s()),
            daemon_sets: Cache::start(Api::all(c()), s()),
            revisions: Cache::start(Api::all(c()), s()),
            jobs: Cache::start(Api::all(c()), s()),
            cron_jobs: Cache::start(Api::all(c()), s()),
            leases: Cache::start(Api::namespaced(c(), "kube-node-lease"), s()),
            services: Cache::start(Api::all(c()), s()),
            endpoints: Cache::start(Api::all(c()), s()),
            slices: Cache::start(Api::all(c()), s()),
            service_accounts: Cache::start(Api::all(c()), s()),
            claims: Cache::start(Api::all(c()), s()),
            volumes: Cache::start(Api::all(c()), s()),
            storage_classes: Cache::start(Api::all(c()), s()),
            budgets: Cache::start(Api::all(c()), s()),
        }
    }

    /// Wait until every cache has its first list.
    pub async fn synced(&self) -> Result<()> {
        self.pods.synced().await?;
        self.nodes.synced().await?;
        self.namespaces.synced().await?;
        self.replica_sets.synced().await?;
        self.deployments.synced().await?;
        self.stateful_sets.synced().await?;
        self.daemon_sets.synced().await?;
        self.revisions.synced().await?;
        self.jobs.synced().await?;
        self.cron_jobs.synced().await?;
        self.leases.synced().await?;
        self.services.synced().await?;
        self.endpoints.synced().await?;
        self.slices.synced().await?;
        self.service_accounts.synced().await?;
        self.claims.synced().await?;
        self.volumes.synced().await?;
        self.storage_classes.synced().await?;
        self.budgets.synced().await
    }
}
