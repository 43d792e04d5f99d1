//! The batching decision.

use std::collections::VecDeque;

use super::*;
use crate::types::Txn;

fn queue(sizes: &[usize]) -> VecDeque<(usize, usize)> {
    sizes
        .iter()
        .copied()
        .enumerate()
        .map(|(i, b)| (b, i))
        .collect()
}

#[test]
fn a_batch_takes_requests_in_order_up_to_the_count() {
    let mut q = queue(&[10; 5]);
    assert_eq!(take_batch(&mut q, 3, 1000), vec![0, 1, 2]);
    assert_eq!(take_batch(&mut q, 3, 1000), vec![3, 4]);
    assert!(take_batch(&mut q, 3, 1000).is_empty());
}

#[test]
fn a_batch_stops_before_the_byte_limit_but_always_takes_one() {
    let mut q = queue(&[40, 50, 20, 500, 10]);
    // 40 + 50 = 90 fits in 100; adding 20 would not.
    assert_eq!(take_batch(&mut q, 10, 100), vec![0, 1]);
    assert_eq!(take_batch(&mut q, 10, 100), vec![2]);
    // Larger than the limit on its own: goes out alone rather than never.
    assert_eq!(take_batch(&mut q, 10, 100), vec![3]);
    assert_eq!(take_batch(&mut q, 10, 100), vec![4]);
}

#[test]
fn the_size_of_a_request_counts_its_keys_and_values() {
    let small = Request::new(Op::Txn(Txn {
        compares: vec![],
        success: vec![TxnOp::Put {
            key: b"k".to_vec(),
            value: vec![0; 10],
            lease: 0,
            prev_kv: false,
        }],
        failure: vec![],
    }));
    let big = Request::new(Op::Txn(Txn {
        compares: vec![],
        success: vec![TxnOp::Put {
            key: b"k".to_vec(),
            value: vec![0; 1 << 20],
            lease: 0,
            prev_kv: false,
        }],
        failure: vec![],
    }));
    assert!(approx_bytes(&small) < 200);
    assert!(approx_bytes(&big) > 1 << 20);
    let both = Request::new(Op::Batch(vec![small.clone(), big.clone()]));
    assert!(approx_bytes(&both) >= approx_bytes(&small) + approx_bytes(&big));
}
