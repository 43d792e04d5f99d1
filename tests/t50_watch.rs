//! Watches: resume from a revision across a leader change with no gap and no duplicate;
//! a compacted revision gives the "compacted" error; progress notifications are truthful.

use std::time::Duration;

use futures::StreamExt;
use skiff_store::pb::kv::kv_client::KvClient;
use skiff_store::pb::kv::{
    CompactRequest, RangeRequest, WatchCreate, WatchRequest, WatchResponse, watch_request,
};
use skiff_tests::cluster::Cluster;
use skiff_tests::kv;
use skiff_tests::wait;
use tonic::transport::Channel;

/// Opens a watch on `prefix` from `start_revision`.
async fn open(
    kv: &mut KvClient<Channel>,
    prefix: &str,
    start_revision: u64,
) -> anyhow::Result<(
    tonic::Streaming<WatchResponse>,
    tokio::sync::mpsc::Sender<WatchRequest>,
)> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let create = WatchCreate {
        key: prefix.into(),
        range_end: skiff_store::types::prefix_end(prefix.as_bytes()),
        start_revision,
        prev_kv: false,
        progress_notify_ms: 0,
    };
    tx.send(WatchRequest {
        request: Some(watch_request::Request::Create(create)),
    })
    .await?;
    let stream = kv
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok((stream, tx))
}

/// (revision, key) of every event, as received.
type Seen = Vec<(u64, String)>;

fn record(resp: &WatchResponse, seen: &mut Seen) {
    for e in &resp.events {
        let kv = e.kv.clone().unwrap_or_default();
        seen.push((
            kv.mod_revision,
            String::from_utf8_lossy(&kv.key).into_owned(),
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_across_a_leader_change_without_gap_or_duplicate() -> anyhow::Result<()> {
    let mut c = Cluster::start(3, &[]).await?;
    let leader = c.leader().await?;
    let start = c.status(leader).await?.header.expect("header").revision + 1;
    // The watcher sits on the leader, which is about to die.
    let (mut stream, _keep) = open(&mut c.kv(leader)?, "/w/", start).await?;
    let writer_member = (leader + 1) % 3;
    let mut kv_w = c.kv(writer_member)?;
    for i in 0..30 {
        kv::put(&mut kv_w, &format!("/w/{i:03}"), "v").await?;
    }
    let mut seen: Seen = Vec::new();
    while seen.len() < 30 {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await?
            .expect("stream open")?;
        record(&resp, &mut seen);
    }
    c.kill(leader);
    // Keep writing during and after the failover.
    for i in 30..60 {
        loop {
            match kv::put(&mut kv_w, &format!("/w/{i:03}"), "v").await {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    // Resume on another member from the revision after the last one seen.
    let last = seen.last().map(|(r, _)| *r).unwrap_or(start - 1);
    let (mut resumed, _keep2) = open(&mut c.kv((leader + 2) % 3)?, "/w/", last + 1).await?;
    while seen.len() < 60 {
        let resp = tokio::time::timeout(Duration::from_secs(10), resumed.next())
            .await?
            .expect("stream open")?;
        assert!(
            !resp.canceled,
            "resumed watch canceled: {}",
            resp.cancel_reason
        );
        record(&resp, &mut seen);
    }
    // Ordered and unique.
    for pair in seen.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "out of order or duplicated: {pair:?}"
        );
    }
    // No gap: a fresh replay of the same history yields exactly the same events.
    let (mut replay, _keep3) = open(&mut c.kv(writer_member)?, "/w/", start).await?;
    let mut replayed: Seen = Vec::new();
    while replayed.len() < seen.len() {
        let resp = tokio::time::timeout(Duration::from_secs(10), replay.next())
            .await?
            .expect("stream open")?;
        record(&resp, &mut replayed);
    }
    assert_eq!(seen, replayed);
    let keys: Vec<String> = (0..60).map(|i| format!("/w/{i:03}")).collect();
    assert_eq!(
        seen.iter().map(|(_, k)| k.clone()).collect::<Vec<_>>(),
        keys
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_revision_gives_the_compacted_error() -> anyhow::Result<()> {
    let c = Cluster::start(3, &[]).await?;
    let mut kv0 = c.kv(0)?;
    let first = kv::put(&mut kv0, "/c/a", "1").await?;
    for i in 0..5 {
        kv::put(&mut kv0, "/c/a", &format!("{i}")).await?;
    }
    let compact_to = kv::put(&mut kv0, "/c/b", "1").await?;
    let r = kv0
        .compact(CompactRequest {
            revision: compact_to,
        })
        .await?
        .into_inner();
    assert_eq!(r.compact_revision, compact_to);
    // A watch from before the compaction point is canceled with "compacted" on every member.
    for i in 0..3 {
        let mut kv_i = c.kv(i)?;
        let resp = wait::until(
            "the compaction to reach every member",
            Duration::from_secs(5),
            || {
                let mut kv_i = kv_i.clone();
                async move {
                    let (mut s, _k) = open(&mut kv_i, "/c/", first).await?;
                    let resp = tokio::time::timeout(Duration::from_secs(5), s.next())
                        .await?
                        .expect("stream open")?;
                    Ok(resp.canceled.then_some(resp))
                }
            },
        )
        .await?;
        assert_eq!(resp.compact_revision, compact_to);
        assert!(
            resp.cancel_reason.contains("compacted"),
            "{}",
            resp.cancel_reason
        );
        let _ = &mut kv_i;
    }
    // A range at a compacted revision fails; at the compaction point it works.
    let err = kv0
        .range(RangeRequest {
            key: b"/c/a".to_vec(),
            revision: first,
            ..Default::default()
        })
        .await
        .expect_err("compacted");
    assert_eq!(err.code(), tonic::Code::OutOfRange);
    assert!(err.message().contains("compacted"), "{}", err.message());
    let ok = kv0
        .range(RangeRequest {
            key: b"/c/a".to_vec(),
            revision: compact_to,
            ..Default::default()
        })
        .await?;
    assert_eq!(ok.into_inner().kvs.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notifications_cover_every_earlier_event() -> anyhow::Result<()> {
    let c = Cluster::start(1, &[]).await?;
    let mut kv0 = c.kv(0)?;
    let (mut stream, tx) = open(&mut kv0, "/p/", 0).await?;
    let mut last_event = 0;
    for i in 0..5 {
        last_event = kv::put(&mut kv0, &format!("/p/{i}"), "v").await?;
    }
    // Writes elsewhere advance the revision without events for this watch.
    let outside = kv::put(&mut kv0, "/other", "v").await?;
    tx.send(WatchRequest {
        request: Some(watch_request::Request::Progress(true)),
    })
    .await?;
    let mut seen = 0;
    loop {
        let resp = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await?
            .expect("stream open")?;
        if resp.progress {
            let rev = resp.header.expect("header").revision;
            assert_eq!(seen, 5, "a progress notification came before all events");
            assert!(
                rev >= outside && rev >= last_event,
                "progress at {rev}, writes up to {outside}"
            );
            break;
        }
        seen += resp.events.len();
    }
    Ok(())
}
