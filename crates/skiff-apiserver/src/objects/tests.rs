//! The fence log rides along with fenced writes only.

use serde_json::{Value, json};
use skiff_store::types::{Txn, TxnOp};

use super::{FENCE_LOG_KEY, absent, log_fenced_write, put};

fn txn() -> Txn {
    Txn {
        compares: vec![absent("/registry/pods/a/b")],
        success: vec![put("/registry/pods/a/b", b"{}".to_vec())],
        failure: vec![],
    }
}

#[test]
fn an_unfenced_write_is_not_logged() {
    let mut t = txn();
    log_fenced_write(&mut t, None);
    assert_eq!(t, txn());
}

#[test]
fn a_fenced_write_puts_its_term_and_key_in_the_same_transaction() {
    let mut t = txn();
    log_fenced_write(&mut t, Some(7));
    assert_eq!(t.compares, txn().compares, "no new precondition");
    assert_eq!(t.success.len(), 2);
    let TxnOp::Put { key, value, .. } = &t.success[1] else {
        panic!("expected a put, got {:?}", t.success[1]);
    };
    assert_eq!(key, FENCE_LOG_KEY.as_bytes());
    let record: Value = serde_json::from_slice(value).expect("JSON");
    assert_eq!(record, json!({"term": 7, "key": "/registry/pods/a/b"}));
}
