//! Basics of the replicated store over real processes: a 3-member cluster forms, any member
//! takes writes, revisions behave like etcd's, reads are linearizable or local, leases expire,
//! and bad input is refused with a clear error without changing anything.

use std::time::Duration;

use skiff_store::pb::kv::{
    Compare, DeleteOp, LeaseGrantRequest, PutOp, RangeRequest, TxnOp, TxnRequest, compare, txn_op,
};
use skiff_tests::cluster::Cluster;
use skiff_tests::kv::{self, put_op};
use skiff_tests::wait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_form_a_cluster_and_any_member_serves_writes_and_reads() -> anyhow::Result<()>
{
    let c = Cluster::start(3, &[]).await?;
    // Each member started itself again, in place (same process), with glibc's arena cap.
    for m in &c.members {
        let pid = m.child.as_ref().map(|child| child.id()).unwrap_or_default();
        let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
        assert!(
            environ
                .split(|b| *b == 0)
                .any(|v| v.starts_with(b"GLIBC_TUNABLES=")
                    && String::from_utf8_lossy(v).contains("glibc.malloc.arena_max=")),
            "member {} (pid {pid}) runs without glibc's arena cap",
            m.name
        );
    }
    let members = c.members_of(1).await?;
    assert_eq!(
        members.members.iter().filter(|m| m.voter).count(),
        3,
        "{members:?}"
    );
    let leader = c.leader().await?;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;

    // A write through a follower is forwarded; a linearizable read on the third member sees it.
    let mut kv_f = c.kv(follower)?;
    let rev = kv::put(&mut kv_f, "/a", "1").await?;
    let mut kv_o = c.kv(other)?;
    let got = kv::get(&mut kv_o, "/a", false)
        .await?
        .expect("linearizable read sees the write");
    assert_eq!(got.value, b"1");
    assert_eq!(
        (got.create_revision, got.mod_revision, got.version),
        (rev, rev, 1)
    );

    // A transaction touching two keys takes exactly one revision.
    let r = kv_f
        .txn(TxnRequest {
            success: vec![put_op("/a", "2"), put_op("/b", "1")],
            ..Default::default()
        })
        .await?
        .into_inner();
    let rev2 = r.header.expect("header").revision;
    assert_eq!(rev2, rev + 1);
    let a = kv::get(&mut kv_o, "/a", false).await?.expect("a");
    let b = kv::get(&mut kv_o, "/b", false).await?.expect("b");
    assert_eq!(
        (a.mod_revision, a.version, a.create_revision),
        (rev2, 2, rev)
    );
    assert_eq!((b.mod_revision, b.create_revision), (rev2, rev2));

    // Create-if-absent: the second create fails its compare.
    assert!(kv::create(&mut kv_f, "/c", "x").await?.succeeded);
    assert!(!kv::create(&mut kv_o, "/c", "y").await?.succeeded);

    // Range with limit and count; a read at a past revision sees the old value.
    let r = kv_o
        .range(RangeRequest {
            key: b"/a".to_vec(),
            range_end: b"/d".to_vec(),
            limit: 2,
            count: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!((r.kvs.len(), r.more, r.count), (2, true, 3));
    let old = kv_o
        .range(RangeRequest {
            key: b"/a".to_vec(),
            revision: rev,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(old.kvs[0].value, b"1", "read at revision {rev}");
    assert_eq!(old.header.expect("header").revision, rev);

    // A serializable read is served locally (eventually sees the write on every member).
    for i in 0..3 {
        let mut kv_i = c.kv(i)?;
        wait::until(
            "the local replica to apply /c",
            Duration::from_secs(5),
            || {
                let mut kv_i = kv_i.clone();
                async move { Ok(kv::get(&mut kv_i, "/c", true).await?.map(|_| ())) }
            },
        )
        .await?;
        let _ = &mut kv_i;
    }

    // Deleting a range takes one revision and reports what it deleted.
    let del = TxnOp {
        op: Some(txn_op::Op::Delete(DeleteOp {
            key: b"/a".to_vec(),
            range_end: b"/c".to_vec(),
            prev_kv: true,
        })),
    };
    let r = kv_f
        .txn(TxnRequest {
            success: vec![del],
            ..Default::default()
        })
        .await?
        .into_inner();
    match r.responses[0].result.as_ref() {
        Some(skiff_store::pb::kv::op_result::Result::Delete(d)) => assert_eq!(d.deleted, 2),
        other => panic!("unexpected {other:?}"),
    }
    assert!(kv::get(&mut kv_o, "/a", false).await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_expires_through_the_log_and_deletes_its_keys() -> anyhow::Result<()> {
    let c = Cluster::start(3, &[]).await?;
    let mut kv0 = c.kv(0)?;
    let lease = kv0
        .lease_grant(LeaseGrantRequest { ttl: 1, id: 0 })
        .await?
        .into_inner();
    assert!(lease.id > 0);
    let op = TxnOp {
        op: Some(txn_op::Op::Put(PutOp {
            key: b"/ephemeral".to_vec(),
            value: b"v".to_vec(),
            lease: lease.id,
            prev_kv: false,
        })),
    };
    kv0.txn(TxnRequest {
        success: vec![op],
        ..Default::default()
    })
    .await?;
    let mut kv2 = c.kv(2)?;
    assert!(kv::get(&mut kv2, "/ephemeral", false).await?.is_some());
    wait::until(
        "the lease to expire and delete /ephemeral",
        Duration::from_secs(10),
        || {
            let mut kv2 = kv2.clone();
            async move {
                Ok(kv::get(&mut kv2, "/ephemeral", false)
                    .await?
                    .is_none()
                    .then_some(()))
            }
        },
    )
    .await?;
    // A put against a revoked lease is refused.
    let op = TxnOp {
        op: Some(txn_op::Op::Put(PutOp {
            key: b"/x".to_vec(),
            value: vec![],
            lease: lease.id,
            prev_kv: false,
        })),
    };
    let err = kv0
        .txn(TxnRequest {
            success: vec![op],
            ..Default::default()
        })
        .await
        .expect_err("lease is gone");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() -> anyhow::Result<()> {
    let c = Cluster::start(3, &[]).await?;
    let mut kv0 = c.kv(0)?;
    kv::put(&mut kv0, "/seed", "1").await?;
    let before = c.status(0).await?.header.expect("header").revision;

    // Oversized value.
    let big = TxnOp {
        op: Some(txn_op::Op::Put(PutOp {
            key: b"/big".to_vec(),
            value: vec![0; 2 << 20],
            lease: 0,
            prev_kv: false,
        })),
    };
    let err = kv0
        .txn(TxnRequest {
            success: vec![big],
            ..Default::default()
        })
        .await
        .expect_err("too large");
    assert!(
        matches!(
            err.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "code {:?}: {}",
        err.code(),
        err.message()
    );
    // Empty key, an operation with nothing in it, a compare without a target.
    let err = kv0
        .txn(TxnRequest {
            success: vec![put_op("", "v")],
            ..Default::default()
        })
        .await
        .expect_err("empty key");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("key"), "{}", err.message());
    let err = kv0
        .txn(TxnRequest {
            success: vec![TxnOp { op: None }],
            ..Default::default()
        })
        .await
        .expect_err("empty op");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let cmp = Compare {
        op: compare::Op::Equal as i32,
        key: b"/seed".to_vec(),
        target: None,
    };
    let err = kv0
        .txn(TxnRequest {
            compares: vec![cmp],
            ..Default::default()
        })
        .await
        .expect_err("no target");
    assert!(err.message().contains("target"), "{}", err.message());
    let cmp = Compare {
        op: 42,
        key: b"/seed".to_vec(),
        target: Some(compare::Target::Version(1)),
    };
    let err = kv0
        .txn(TxnRequest {
            compares: vec![cmp],
            ..Default::default()
        })
        .await
        .expect_err("bad op");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // A put twice to one key in a transaction.
    let err = kv0
        .txn(TxnRequest {
            success: vec![put_op("/d", "1"), put_op("/d", "2")],
            ..Default::default()
        })
        .await
        .expect_err("duplicate");
    assert!(err.message().contains("duplicate"), "{}", err.message());
    // Removing an unknown member.
    let mut admin = c.admin(0)?;
    let err = admin
        .remove_member(skiff_store::pb::raft::RemoveMemberRequest {
            name: "nobody".into(),
        })
        .await
        .expect_err("unknown member");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    // A future revision.
    let err = kv0
        .range(RangeRequest {
            key: b"/seed".to_vec(),
            revision: before + 1000,
            ..Default::default()
        })
        .await
        .expect_err("future");
    assert_eq!(err.code(), tonic::Code::OutOfRange);

    // Garbage bytes instead of a protobuf message.
    let channel = c.credentials()?.channel(&c.members[0].addr)?;
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/skiff.kv.KV/Txn");
    let garbage = raw
        .unary::<Vec<u8>, Vec<u8>, _>(tonic::Request::new(vec![0xff; 64]), path, RawCodec)
        .await;
    assert!(garbage.is_err(), "garbage was accepted");

    // No client certificate, and a certificate without the store role.
    let ca = c.credentials()?.ca_pem;
    let anon = skiff_store::peers::channel(
        &c.members[0].addr,
        &skiff_store::peers::client_tls(&ca, None),
        Duration::from_secs(2),
    )?;
    let err = skiff_store::pb::kv::kv_client::KvClient::new(anon)
        .txn(TxnRequest {
            success: vec![put_op("/anon", "x")],
            ..Default::default()
        })
        .await
        .expect_err("anonymous");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let ca_full = skiff_store::identity::DataDir::new(&c.members[0].data_dir).load_ca()?;
    let stranger = ca_full.issue(&skiff_store::tls::CertSpec {
        common_name: "kube-user".into(),
        organizations: vec!["system:masters".into()],
        client: true,
        valid_years: 1,
        ..Default::default()
    })?;
    let ch = skiff_store::peers::channel(
        &c.members[0].addr,
        &skiff_store::peers::client_tls(&ca, Some(&stranger)),
        Duration::from_secs(2),
    )?;
    let err = skiff_store::pb::kv::kv_client::KvClient::new(ch)
        .txn(TxnRequest {
            success: vec![put_op("/stranger", "x")],
            ..Default::default()
        })
        .await
        .expect_err("no store role");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");

    let after = c.status(0).await?.header.expect("header").revision;
    assert_eq!(before, after, "refused requests must not write");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_with_a_wrong_token_is_refused() -> anyhow::Result<()> {
    let mut c = Cluster::start(1, &[]).await?;
    let token = c.token()?;
    let via = c.members[0].addr.clone();
    // The right CA, a wrong secret.
    let (prefix, _) = token.rsplit_once('.').expect("token has a secret");
    let wrong_secret = format!("{prefix}.{}", "ab".repeat(24));
    let i = c.add_slot();
    let out = c
        .command(i, &["--join", &via, "--token", &wrong_secret])?
        .output()?;
    assert!(!out.status.success());
    let log = std::fs::read_to_string(c.log_path(i))?;
    assert!(log.contains("join token is not this cluster's"), "{log}");
    // A token naming another CA.
    let other_ca = format!("skiff1.{}.{}", "0".repeat(64), "cd".repeat(24));
    let j = c.add_slot();
    let out = c
        .command(j, &["--join", &via, "--token", &other_ca])?
        .output()?;
    assert!(!out.status.success());
    let log = std::fs::read_to_string(c.log_path(j))?;
    assert!(log.contains("does not present the CA"), "{log}");
    // Nothing joined.
    assert_eq!(c.members_of(0).await?.members.len(), 1);
    Ok(())
}

/// Sends and receives raw bytes (to test malformed messages).
#[derive(Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_log_entries_and_each_keeps_its_own_revision() -> anyhow::Result<()>
{
    let mut c = Cluster::new(&[])?;
    let metrics = format!("127.0.0.1:{}", skiff_tests::cluster::free_port());
    let first = c.add_slot();
    c.spawn(first, &["--init", "--metrics-listen", &metrics])?;
    c.wait_ready(first).await?;

    // 32 clients writing 10 keys each, all at once.
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..32 {
        let mut kv = c.kv(first)?;
        tasks.spawn(async move {
            let mut revs = Vec::new();
            for j in 0..10 {
                let key = format!("/batch/{w:02}/{j}");
                revs.push((key.clone(), kv::put(&mut kv, &key, "v").await?));
            }
            Ok::<_, tonic::Status>(revs)
        });
    }
    let mut written = Vec::new();
    while let Some(r) = tasks.join_next().await {
        written.extend(r??);
    }
    assert_eq!(written.len(), 320);

    // One revision per write, none shared, and each key holds the revision its write returned.
    let mut revs: Vec<u64> = written.iter().map(|(_, r)| *r).collect();
    revs.sort_unstable();
    revs.dedup();
    assert_eq!(revs.len(), 320, "two writes were given one revision");
    let mut kv = c.kv(first)?;
    for (key, rev) in &written {
        let got = kv::get(&mut kv, key, false).await?.expect("written");
        assert_eq!((got.mod_revision, got.version), (*rev, 1), "{key}");
    }

    // And they went out together: fewer log entries than writes.
    let (status, text) = skiff_tests::http::get(&metrics, "/metrics").await?;
    assert_eq!(status, 200);
    let entries = skiff_tests::http::sample(&text, "skiff_store_proposal_batch_requests_count")
        .expect("the batch size histogram is exported");
    let requests = skiff_tests::http::sample(&text, "skiff_store_proposal_batch_requests_sum")
        .expect("the batch size histogram is exported");
    assert!(requests >= 320.0, "{requests} proposed");
    assert!(
        entries < requests,
        "{entries} entries for {requests} writes: no two concurrent writes shared an entry"
    );
    Ok(())
}
