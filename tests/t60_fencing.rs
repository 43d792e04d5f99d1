//! Fencing by term: a write carrying an old leader's term is refused after a leader change;
//! and, end to end, the control loops of successive leaders never interleave their writes
//! (read from the store's history of fenced writes, the fence log).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_store::pb::kv::TxnRequest;
use skiff_tests::cluster::Cluster;
use skiff_tests::kv::{self, FenceRecord, put_op};
use skiff_tests::wait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_fenced_with_a_stale_term_is_rejected() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[]).await?;
    let leader = c.leader().await?;
    let old_term = c.status(leader).await?.raft_term;
    let survivor = (leader + 1) % 3;
    let mut kv_s = c.kv(survivor)?;

    // While the term is current, a fenced write goes through.
    let r = kv_s
        .txn(TxnRequest {
            success: vec![put_op("/fenced", "ok")],
            fence_term: old_term,
            ..Default::default()
        })
        .await?;
    assert!(r.into_inner().succeeded);

    c.kill(leader);
    let new_leader = c.leader().await?;
    let new_term = c.status(new_leader).await?.raft_term;
    assert!(new_term > old_term);
    let before = kv::get(&mut kv_s, "/fenced", false)
        .await?
        .expect("present");

    let err = kv_s
        .txn(TxnRequest {
            success: vec![put_op("/fenced", "stale")],
            fence_term: old_term,
            ..Default::default()
        })
        .await
        .expect_err("a stale term must be fenced out");
    assert_eq!(err.code(), tonic::Code::Aborted, "{err:?}");
    assert!(err.message().contains("fenced"), "{}", err.message());
    let after = kv::get(&mut kv_s, "/fenced", false)
        .await?
        .expect("present");
    assert_eq!(before, after, "the fenced write changed nothing");

    // The current term is accepted.
    kv_s.txn(TxnRequest {
        success: vec![put_op("/fenced", "new")],
        fence_term: new_term,
        ..Default::default()
    })
    .await?;
    assert_eq!(
        kv::get(&mut kv_s, "/fenced", false)
            .await?
            .expect("present")
            .value,
        b"new"
    );
    Ok(())
}

/// Controller failover, checked from the store's history: while the scheduler and controllers
/// reconcile a Deployment that is scaled up and down all the time, leadership moves twice with
/// `skiff cluster transfer-leader` (the old leader keeps running, so its loops race the new
/// ones) and once by `kill -9`. Every fenced write puts the fence log in its own transaction;
/// in revision order its terms must never go down (an old term's write applied after the new
/// term's first write would). A write sent with a stale term is refused with `FencedOut`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_loop_writes_never_go_back_a_term() -> anyhow::Result<()> {
    let mut c = Cluster::start(
        3,
        // Node objects without agents must not be tainted unreachable; the history must still
        // hold the whole run when it is read back at the end.
        &[
            "--node-monitor-grace-secs",
            "86400",
            "--history-window-secs",
            "3600",
        ],
    )
    .await?;
    let result = failover_scenario(&mut c).await;
    if let Err(e) = &result {
        eprintln!("{}\nerror: {e:#}", c.log_tails());
    }
    result
}

const NS: &str = "default";

fn node(name: &str) -> anyhow::Result<Node> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "status": {"allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))?)
}

fn deployment(replicas: i32) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": "churn"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "churn"}},
                 "template": {"metadata": {"labels": {"app": "churn"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox",
                                  "resources": {"requests": {"cpu": "10m"}}}]}}}
    }))?)
}

/// Scales `churn` between 1 and 8 replicas every 100 ms through any member that answers.
async fn churn(clients: Vec<kube::Client>, stop: Arc<AtomicBool>) -> usize {
    let mut scaled = 0;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let api: Api<Deployment> = Api::namespaced(clients[i % clients.len()].clone(), NS);
        let patch = json!({"spec": {"replicas": 1 + (i % 8)}});
        let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
        let call = api.patch("churn", &params, &patch);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), call).await {
            scaled += 1;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scaled
}

/// Waits until the fence log holds a write of term `term` or later; returns it.
async fn fenced_write_in(c: &Cluster, member: usize, term: u64) -> anyhow::Result<FenceRecord> {
    wait::until_every(
        &format!("a control-loop write in term {term}"),
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            let record = kv::last_fence_record(&mut c.kv(member)?).await?;
            Ok(record.filter(|r| r.term >= term))
        },
    )
    .await
}

async fn failover_scenario(c: &mut Cluster) -> anyhow::Result<()> {
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(c.kube_client(i).await?);
    }
    wait::until("the API", Duration::from_secs(30), || async {
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(clients[0].clone());
        Ok(ns.get_opt(NS).await.ok().flatten().map(|_| ()))
    })
    .await?;
    let nodes: Api<Node> = Api::all(clients[0].clone());
    for i in 0..3 {
        nodes
            .create(&PostParams::default(), &node(&format!("t60-node-{i}"))?)
            .await?;
    }
    let deployments: Api<Deployment> = Api::namespaced(clients[0].clone(), NS);
    deployments
        .create(&PostParams::default(), &deployment(3)?)
        .await?;
    let first_leader = c.leader().await?;
    let first_term = c.status(first_leader).await?.raft_term;
    fenced_write_in(c, first_leader, first_term).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let churning = tokio::spawn(churn(clients.clone(), stop.clone()));
    let mut terms = vec![first_term];
    // Two transfers: the deposed leader stays up, its loops race the new leader's.
    for _ in 0..2 {
        let leader = c.leader().await?;
        let target = (leader + 1) % 3;
        tokio::time::sleep(Duration::from_secs(2)).await; // let the loops reconcile a while
        let dd = c.members[0].data_dir.display().to_string();
        let endpoint = c.members[leader].addr.clone();
        let (ok, out, err) = c.run_cli(&[
            "cluster",
            "transfer-leader",
            &c.members[target].name,
            "--endpoints",
            &endpoint,
            "--data-dir",
            &dd,
        ])?;
        anyhow::ensure!(ok, "transfer-leader failed: {out}{err}");
        let term = c.status(target).await?.raft_term;
        let record = fenced_write_in(c, target, term).await?;
        eprintln!(
            "transfer to {}: term {term}, first write seen {record:?}",
            c.members[target].name
        );
        terms.push(term);
    }
    // And a kill -9 of the leader.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = c.leader().await?;
    let killed = Instant::now();
    c.kill(leader);
    let new_leader = c.leader().await?;
    let term = c.status(new_leader).await?.raft_term;
    fenced_write_in(c, new_leader, term).await?;
    eprintln!(
        "kill -9 of {}: term {term}, a control-loop write of the new term after {:?}",
        c.members[leader].name,
        killed.elapsed()
    );
    terms.push(term);
    c.restart(leader)?;
    c.wait_ready(leader).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let scaled = churning.await?;
    anyhow::ensure!(scaled > 0, "the Deployment was never scaled");

    // The controllers still converge: 5 replicas, every pod bound to a node.
    let survivor = c.leader().await?;
    let client = clients[survivor].clone();
    Api::<Deployment>::namespaced(client.clone(), NS)
        .patch(
            "churn",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 5}})),
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    wait::until_every(
        "5 churn pods, all bound",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=churn"))
                .await?;
            let live: Vec<&Pod> = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let bound = live
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
                .count();
            Ok((live.len() == 5 && bound == 5).then_some(()))
        },
    )
    .await?;

    // The history: terms never go down in revision order, and every term had writes.
    let log = kv::fence_log(&mut c.kv(survivor)?, 1).await?;
    for pair in log.windows(2) {
        anyhow::ensure!(
            pair[1].term >= pair[0].term,
            "a write of term {} was applied at revision {} after a write of term {} at revision {}: {:?} after {:?}",
            pair[1].term,
            pair[1].revision,
            pair[0].term,
            pair[0].revision,
            pair[1],
            pair[0]
        );
    }
    for term in &terms {
        anyhow::ensure!(
            log.iter().any(|r| r.term == *term),
            "no control-loop write in term {term} (terms {terms:?})"
        );
    }

    // A write fenced with the first (long over) term is refused and leaves no record.
    let before = kv::last_fence_record(&mut c.kv(survivor)?).await?;
    let mut stale = c.kube_config(survivor).await?;
    stale.headers.push((
        http::HeaderName::from_static("x-skiff-fence-term"),
        http::HeaderValue::from(first_term),
    ));
    let stale = Api::<Deployment>::namespaced(kube::Client::try_from(stale)?, NS);
    let refused = stale
        .patch(
            "churn",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 1}})),
        )
        .await;
    match refused {
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let reason = status
                .details
                .as_ref()
                .and_then(|d| d.causes.first())
                .map(|c| c.reason.clone());
            anyhow::ensure!(
                reason.as_deref() == Some("FencedOut"),
                "expected a FencedOut conflict, got {status:?}"
            );
        }
        Ok(d) => anyhow::bail!(
            "a write with stale term {first_term} was applied (resourceVersion {:?})",
            d.metadata.resource_version
        ),
        Err(other) => {
            anyhow::bail!("a write with stale term {first_term} failed otherwise: {other}")
        }
    }
    let after = kv::last_fence_record(&mut c.kv(survivor)?).await?;
    anyhow::ensure!(
        after.as_ref().map(|r| r.term) >= before.as_ref().map(|r| r.term)
            && after.as_ref().map(|r| r.term) != Some(first_term),
        "the refused write was logged: {after:?}"
    );

    let mut per_term = std::collections::BTreeMap::<u64, usize>::new();
    for r in &log {
        *per_term.entry(r.term).or_default() += 1;
    }
    eprintln!(
        "fence log: {} control-loop writes over terms {per_term:?}; {scaled} scale requests",
        log.len()
    );
    Ok(())
}
