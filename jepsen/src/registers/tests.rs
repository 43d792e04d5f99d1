//! Handmade good and bad register histories.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

fn initial() -> BTreeMap<String, (u64, u64)> {
    BTreeMap::from([
        ("reg-0".to_string(), (0, 10)),
        ("reg-1".to_string(), (0, 11)),
    ])
}

fn op(process: u32, key: &str, call: u64, ret: u64, outcome: Outcome, kind: RegKind) -> RegOp {
    RegOp {
        process,
        member: process as usize % 3,
        key: key.into(),
        call,
        ret,
        outcome,
        kind,
    }
}

fn read(p: u32, key: &str, call: u64, ret: u64, value: u64, rv: u64) -> RegOp {
    op(
        p,
        key,
        call,
        ret,
        Outcome::Ok,
        RegKind::Read {
            value: Some(value),
            rv: Some(rv),
        },
    )
}

fn stale(p: u32, key: &str, call: u64, ret: u64, value: u64, rv: u64) -> RegOp {
    op(
        p,
        key,
        call,
        ret,
        Outcome::Ok,
        RegKind::StaleRead {
            value: Some(value),
            rv: Some(rv),
        },
    )
}

fn cas(
    p: u32,
    key: &str,
    call: u64,
    ret: u64,
    outcome: Outcome,
    e: (u64, u64),
    n: u64,
    nrv: Option<u64>,
) -> RegOp {
    op(
        p,
        key,
        call,
        ret,
        outcome,
        RegKind::Cas {
            expect: e.0,
            expect_rv: e.1,
            new: n,
            new_rv: nrv,
        },
    )
}

fn run(ops: &[RegOp]) -> Summary {
    check(&initial(), ops, Duration::from_secs(10))
}

#[test]
fn good_history_has_no_anomalies() {
    let h = vec![
        read(1, "reg-0", 0, 5, 0, 10),
        cas(1, "reg-0", 6, 20, Outcome::Ok, (0, 10), 100, Some(12)),
        cas(2, "reg-0", 7, 21, Outcome::Fail, (0, 10), 200, None),
        read(3, "reg-1", 8, 9, 0, 11),
        cas(3, "reg-1", 10, 1000, Outcome::Unknown, (0, 11), 300, None),
        stale(2, "reg-0", 22, 23, 0, 10),
        stale(2, "reg-0", 24, 25, 100, 12),
        read(1, "reg-0", 30, 31, 100, 12),
        read(3, "reg-1", 40, 41, 300, 13),
    ];
    let s = run(&h);
    assert!(s.anomalies.is_empty(), "{:#?}", s.anomalies);
    assert_eq!(s.ops_checked, 7);
    assert_eq!(s.unknown_dropped, 0);
}

#[test]
fn unobserved_unknown_writes_are_dropped() {
    let h = vec![
        cas(1, "reg-0", 0, 100, Outcome::Unknown, (0, 10), 100, None),
        read(2, "reg-0", 200, 201, 0, 10),
    ];
    let s = run(&h);
    assert!(s.anomalies.is_empty(), "{:#?}", s.anomalies);
    assert_eq!(s.unknown_dropped, 1);
}

#[test]
fn stale_linearizable_read_is_reported_with_an_excerpt() {
    let h = vec![
        cas(1, "reg-0", 0, 10, Outcome::Ok, (0, 10), 100, Some(12)),
        read(2, "reg-0", 20, 30, 0, 10),
    ];
    let s = run(&h);
    assert_eq!(s.anomalies.len(), 1, "{:#?}", s.anomalies);
    let a = &s.anomalies[0];
    assert_eq!(a.checker, "linearizability");
    assert!(a.summary.contains("read -> 0"), "{}", a.summary);
    assert!(
        a.excerpt.contains("<-- cannot be linearized"),
        "{}",
        a.excerpt
    );
    assert!(a.excerpt.contains("(linearized #1)"), "{}", a.excerpt);
}

#[test]
fn one_version_with_two_values_is_reported() {
    let h = vec![
        cas(1, "reg-0", 0, 10, Outcome::Ok, (0, 10), 100, Some(12)),
        stale(2, "reg-0", 20, 30, 200, 12),
        cas(2, "reg-0", 1, 2, Outcome::Unknown, (0, 10), 200, None),
    ];
    let s = run(&h);
    assert!(
        s.anomalies.iter().any(|a| a.checker == "versions"),
        "{:#?}",
        s.anomalies
    );
}

#[test]
fn stale_reads_must_return_written_values_and_not_go_back() {
    let h = vec![stale(1, "reg-0", 0, 1, 4242, 50)];
    let s = run(&h);
    assert!(
        s.anomalies
            .iter()
            .any(|a| a.checker == "stale-reads" && a.excerpt.contains("never written")),
        "{:#?}",
        s.anomalies
    );

    let h = vec![
        cas(1, "reg-0", 0, 10, Outcome::Ok, (0, 10), 100, Some(12)),
        stale(2, "reg-0", 20, 21, 100, 12),
        stale(2, "reg-0", 22, 23, 0, 10),
    ];
    let s = run(&h);
    assert!(
        s.anomalies
            .iter()
            .any(|a| a.checker == "stale-reads" && a.excerpt.contains("went back")),
        "{:#?}",
        s.anomalies
    );
    // Lagging is fine: a stale read may return the old value after the write completed.
    let h = vec![
        cas(1, "reg-0", 0, 10, Outcome::Ok, (0, 10), 100, Some(12)),
        stale(2, "reg-0", 20, 21, 0, 10),
    ];
    assert!(run(&h).anomalies.is_empty());
}

#[test]
fn acknowledged_write_lost_by_the_final_read_is_reported() {
    let h = vec![
        cas(1, "reg-1", 0, 10, Outcome::Ok, (0, 11), 100, Some(12)),
        read(9, "reg-1", 100, 101, 0, 11),
    ];
    let s = run(&h);
    assert_eq!(s.anomalies.len(), 1, "{:#?}", s.anomalies);
    assert_eq!(s.anomalies[0].checker, "linearizability");
}

#[test]
fn an_observed_unknown_write_is_checked_as_applied_before_its_first_observer_returned() {
    let h = [
        read(1, "reg-0", 0, 5, 0, 10),
        cas(1, "reg-0", 10, 5_000, Outcome::Unknown, (0, 10), 100, None),
        stale(2, "reg-0", 40, 60, 100, 12),
        read(3, "reg-0", 50, 70, 100, 12),
        cas(3, "reg-0", 80, 90, Outcome::Unknown, (100, 12), 101, None),
    ];
    let refs: Vec<&RegOp> = h.iter().collect();
    let (hist, idx, dropped) = key_history(&refs, &first_observed(&refs));
    // The second unknown write was never seen: dropped. The first was seen by the stale read
    // returning at 60: it applied, before then.
    assert_eq!(dropped, 1);
    // (resourceVersion=0 reads are checked apart, not for linearizability.)
    assert_eq!(idx, vec![0, 1, 3]);
    assert_eq!(
        hist[1],
        Timed {
            call: 10,
            ret: 60,
            op: RegisterOp::CasOk {
                expect: 0,
                new: 100
            }
        }
    );
    // And a read of the old value after that moment is a violation.
    let mut bad = h.to_vec();
    bad.push(read(4, "reg-0", 65, 66, 0, 10));
    let s = run(&bad);
    let lin: Vec<_> = s
        .anomalies
        .iter()
        .filter(|a| a.checker == "linearizability")
        .collect();
    assert_eq!(lin.len(), 1, "{:#?}", s.anomalies);
    assert!(run(&h).anomalies.is_empty());
}
