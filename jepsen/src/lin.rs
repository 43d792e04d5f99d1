//! A linearizability checker: Wing & Gong's search with Lowe's memoisation (the algorithm
//! porcupine uses), over any sequential `Model`. Histories are checked per key (registers are
//! independent objects, so a history is linearizable iff each key's sub-history is).
//!
//! Operations whose outcome is unknown get a return time of "never" (`u64::MAX`): they may be
//! linearized anywhere after their call, including after everything else (= never happened).

use std::collections::HashSet;
use std::hash::Hash;
use std::time::Instant;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash + std::fmt::Debug;
    type Op: std::fmt::Debug;
    fn init(&self) -> Self::State;
    /// The state after `op`, or None if `op` (with its recorded output) is impossible here.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
}

/// An operation with its call and return times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timed<O> {
    pub call: u64,
    pub ret: u64,
    pub op: O,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<S> {
    Linearizable,
    /// No linearization exists. `prefix` is the longest linearization the search found (op
    /// indices in order), `state` the state after it, `stuck` the op whose return it could not
    /// get past.
    Violation {
        prefix: Vec<usize>,
        state: S,
        stuck: usize,
    },
    /// The search ran out of time (neither proven nor refuted).
    Timeout,
}

const NONE: usize = usize::MAX;

/// The set of linearized operations, kept as a 128-bit Zobrist hash (the XOR of a random key
/// per member) so that remembering a visited (set, state) pair costs 16 bytes and one step,
/// not a copy of an n-bit set: a history of 60,000 operations would otherwise need 7 KiB per
/// memo entry. Two different sets collide with probability 2^-128 per pair.
struct LinSet {
    keys: Vec<u128>,
    hash: u128,
}

impl LinSet {
    fn new(n: usize) -> Self {
        let mut x: u64 = 0x5ee1_f00d_cafe_f00d;
        let mut next = move || {
            // splitmix64
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let keys = (0..n)
            .map(|_| (u128::from(next()) << 64) | u128::from(next()))
            .collect();
        LinSet { keys, hash: 0 }
    }
    /// Adds or removes operation `i` (XOR is its own inverse).
    fn toggle(&mut self, i: usize) {
        self.hash ^= self.keys[i];
    }
}

/// Checks one (single-object) history.
pub fn check<M: Model>(model: &M, ops: &[Timed<M::Op>], deadline: Instant) -> Verdict<M::State> {
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Entries 1..=2n in time order; 0 is the list head. Calls sort before returns at equal
    // times (such operations are treated as concurrent).
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        order.push((o.call, false, i));
        order.push((o.ret.max(o.call), true, i));
    }
    order.sort();
    let len = 2 * n + 1;
    let mut op_of = vec![0usize; len];
    let mut is_call = vec![false; len];
    let mut ret_entry = vec![0usize; n];
    for (k, &(_, is_ret, i)) in order.iter().enumerate() {
        let e = k + 1;
        op_of[e] = i;
        is_call[e] = !is_ret;
        if is_ret {
            ret_entry[i] = e;
        }
    }
    let mut next: Vec<usize> = (0..len)
        .map(|e| if e + 1 < len { e + 1 } else { NONE })
        .collect();
    let mut prev: Vec<usize> = (0..len)
        .map(|e| if e == 0 { NONE } else { e - 1 })
        .collect();

    let lift = |e: usize, next: &mut [usize], prev: &mut [usize], r: usize| {
        next[prev[e]] = next[e];
        if next[e] != NONE {
            prev[next[e]] = prev[e];
        }
        next[prev[r]] = next[r];
        if next[r] != NONE {
            prev[next[r]] = prev[r];
        }
    };
    let unlift = |e: usize, next: &mut [usize], prev: &mut [usize], r: usize| {
        next[prev[r]] = r;
        if next[r] != NONE {
            prev[next[r]] = r;
        }
        next[prev[e]] = e;
        if next[e] != NONE {
            prev[next[e]] = e;
        }
    };

    let mut state = model.init();
    let mut lin = LinSet::new(n);
    let mut cache: HashSet<(u128, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut best: Vec<usize> = Vec::new();
    let mut best_state = state.clone();
    let mut best_stuck = NONE;
    let mut entry = next[0];
    let mut steps: u64 = 0;
    while next[0] != NONE {
        steps += 1;
        if steps.is_multiple_of(4096) && Instant::now() > deadline {
            return Verdict::Timeout;
        }
        if entry == NONE {
            // Cannot happen: every call is followed by its return.
            break;
        }
        if is_call[entry] {
            let i = op_of[entry];
            if let Some(s2) = model.step(&state, &ops[i].op) {
                lin.toggle(i);
                if cache.insert((lin.hash, s2.clone())) {
                    let old = std::mem::replace(&mut state, s2);
                    stack.push((entry, old));
                    lift(entry, &mut next, &mut prev, ret_entry[i]);
                    entry = next[0];
                    continue;
                }
                lin.toggle(i);
            }
            entry = next[entry];
        } else {
            // Stuck: this op must return, and cannot be linearized next. The longest prefix
            // that got stuck is what a violation reports (copied only here, so that a search
            // that never backtracks never copies its stack).
            if best_stuck == NONE || stack.len() > best.len() {
                best = stack.iter().map(|(e, _)| op_of[*e]).collect();
                best_state = state.clone();
                best_stuck = op_of[entry];
            }
            let Some((e, s)) = stack.pop() else {
                return Verdict::Violation {
                    prefix: best,
                    state: best_state,
                    stuck: best_stuck,
                };
            };
            state = s;
            let i = op_of[e];
            lin.toggle(i);
            unlift(e, &mut next, &mut prev, ret_entry[i]);
            entry = next[e];
        }
    }
    Verdict::Linearizable
}

/// The register of the workload: a value that reads return and compare-and-set replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOp {
    /// A read returned this value (`ABSENT` for not found).
    Read(u64),
    /// The CAS was acknowledged.
    CasOk { expect: u64, new: u64 },
    /// The CAS was refused because the current version was not the expected one.
    CasFail { expect: u64 },
    /// The CAS may or may not have happened.
    CasUnknown { expect: u64, new: u64 },
}

/// The value of a register that does not exist (never equal to a written value).
pub const ABSENT: u64 = u64::MAX;

pub struct Register {
    pub initial: u64,
}

impl Model for Register {
    type State = u64;
    type Op = RegisterOp;
    fn init(&self) -> u64 {
        self.initial
    }
    fn step(&self, s: &u64, op: &RegisterOp) -> Option<u64> {
        match *op {
            RegisterOp::Read(v) => (*s == v).then_some(*s),
            RegisterOp::CasOk { expect, new } => (*s == expect).then_some(new),
            RegisterOp::CasFail { expect } => (*s != expect).then_some(*s),
            RegisterOp::CasUnknown { expect, new } => Some(if *s == expect { new } else { *s }),
        }
    }
}

#[cfg(test)]
mod tests;
