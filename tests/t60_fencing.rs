//! Fencing by term: a write carrying an old leader's term is refused after a leader change.

use skiff_store::pb::kv::TxnRequest;
use skiff_tests::cluster::Cluster;
use skiff_tests::kv::{self, put_op};

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
