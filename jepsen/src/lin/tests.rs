//! Handmade histories for the linearizability engine.

use std::time::{Duration, Instant};

use super::*;

fn t(call: u64, ret: u64, op: RegisterOp) -> Timed<RegisterOp> {
    Timed { call, ret, op }
}

fn run(ops: &[Timed<RegisterOp>]) -> Verdict<u64> {
    check(
        &Register { initial: 0 },
        ops,
        Instant::now() + Duration::from_secs(10),
    )
}

use RegisterOp::*;

#[test]
fn sequential_history_is_linearizable() {
    let h = [
        t(0, 1, Read(0)),
        t(2, 3, CasOk { expect: 0, new: 1 }),
        t(4, 5, Read(1)),
        t(6, 7, CasFail { expect: 0 }),
        t(8, 9, CasOk { expect: 1, new: 2 }),
        t(10, 11, Read(2)),
    ];
    assert_eq!(run(&h), Verdict::Linearizable);
}

#[test]
fn concurrent_reads_may_see_either_value() {
    let h = [
        t(0, 10, CasOk { expect: 0, new: 1 }),
        t(1, 2, Read(1)),
        t(3, 4, Read(1)),
        t(11, 12, Read(1)),
    ];
    assert_eq!(run(&h), Verdict::Linearizable);
    // But once a read saw the new value, a later read cannot see the old one.
    let h = [
        t(0, 10, CasOk { expect: 0, new: 1 }),
        t(1, 2, Read(1)),
        t(3, 4, Read(0)),
    ];
    assert!(matches!(run(&h), Verdict::Violation { .. }));
}

#[test]
fn stale_read_after_acknowledged_write_is_a_violation() {
    let h = [
        t(0, 10, CasOk { expect: 0, new: 1 }),
        t(20, 30, Read(0)),
        t(40, 50, Read(1)),
    ];
    match run(&h) {
        Verdict::Violation {
            prefix,
            state,
            stuck,
        } => {
            assert_eq!(prefix, vec![0]);
            assert_eq!(state, 1);
            assert_eq!(stuck, 1, "the stale read is the op that cannot be placed");
        }
        v => panic!("expected a violation, got {v:?}"),
    }
}

#[test]
fn lost_write_is_a_violation() {
    let h = [
        t(0, 10, CasOk { expect: 0, new: 5 }),
        t(20, 30, CasOk { expect: 0, new: 6 }),
    ];
    assert!(matches!(run(&h), Verdict::Violation { .. }));
}

#[test]
fn unknown_writes_may_apply_late_or_never() {
    // Applied later than its timeout: seen after another read saw the old value.
    let h = [
        t(0, u64::MAX, CasUnknown { expect: 0, new: 7 }),
        t(20, 30, Read(0)),
        t(40, 50, Read(7)),
    ];
    assert_eq!(run(&h), Verdict::Linearizable);
    // Never applied.
    let h = [
        t(0, u64::MAX, CasUnknown { expect: 0, new: 7 }),
        t(20, 30, Read(0)),
        t(40, 50, CasOk { expect: 0, new: 8 }),
        t(60, 70, Read(8)),
    ];
    assert_eq!(run(&h), Verdict::Linearizable);
    // But it cannot be undone once seen.
    let h = [
        t(0, u64::MAX, CasUnknown { expect: 0, new: 7 }),
        t(20, 30, Read(7)),
        t(40, 50, Read(0)),
    ];
    assert!(matches!(run(&h), Verdict::Violation { .. }));
}

#[test]
fn refused_cas_needs_a_different_value() {
    let h = [t(0, 1, CasFail { expect: 0 })];
    assert!(matches!(run(&h), Verdict::Violation { .. }));
    let h = [
        t(0, 5, CasOk { expect: 0, new: 3 }),
        t(1, 2, CasFail { expect: 0 }),
    ];
    assert_eq!(run(&h), Verdict::Linearizable);
}

#[test]
fn many_concurrent_operations_finish_quickly() {
    // 200 overlapping writers chained through unique values, then reads: linearizable.
    let mut h = Vec::new();
    for i in 0..200u64 {
        h.push(t(
            i * 10,
            i * 10 + 25,
            CasOk {
                expect: i,
                new: i + 1,
            },
        ));
        h.push(t(i * 10 + 26, i * 10 + 27, Read(i + 1)));
    }
    assert_eq!(run(&h), Verdict::Linearizable);
}
