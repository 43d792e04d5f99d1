//! The register checker: turns the recorded ConfigMap operations into per-key histories for
//! the linearizability engine, and checks what linearizability does not cover:
//!
//! - **versions are a function**: one (key, resourceVersion) never shows two values;
//! - **stale reads** (`resourceVersion=0`) may lag, but only return values that were written
//!   (or the initial one), and one client's stale reads of a key never go back in version.
//!
//! A CAS whose outcome is unknown is settled by its unique value:
//!
//! - nobody ever observed the value: the CAS is dropped. Had it applied, its value would stay
//!   until a CAS naming its version (which requires having observed it), so the final read
//!   would have seen it;
//! - someone observed it: only this CAS can have written it, so it applied, and it did so
//!   before the first observer returned. It is checked as an acknowledged CAS whose return is
//!   that moment. Left as "maybe applied, any time later", every such CAS could also be placed
//!   as a no-op anywhere, and an hour of faults leaves enough of them to make the search
//!   exponential.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::history::{Outcome, RegKind, RegOp, secs};
use crate::lin::{self, ABSENT, Register, RegisterOp, Timed, Verdict};

/// A violated guarantee, with a history excerpt a person can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub checker: &'static str,
    pub summary: String,
    pub excerpt: String,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub keys: usize,
    pub ops_checked: usize,
    pub unknown_dropped: usize,
    pub timeouts: Vec<String>,
    pub anomalies: Vec<Anomaly>,
}

/// One line describing an operation.
pub fn describe(op: &RegOp) -> String {
    let what = match &op.kind {
        RegKind::Read { value, rv } => format!("read -> {} (rv {})", val(*value), opt(*rv)),
        RegKind::StaleRead { value, rv } => {
            format!("read rv=0 -> {} (rv {})", val(*value), opt(*rv))
        }
        RegKind::Cas {
            expect,
            expect_rv,
            new,
            new_rv,
        } => format!(
            "cas {expect} (rv {expect_rv}) -> {new}{}",
            new_rv.map(|r| format!(" (rv {r})")).unwrap_or_default()
        ),
    };
    format!(
        "[{} .. {}] p{} via m{} {}: {what} {:?}",
        secs(op.call),
        secs(op.ret),
        op.process,
        op.member + 1,
        op.key,
        op.outcome
    )
}

fn val(v: Option<u64>) -> String {
    v.map(|v| v.to_string())
        .unwrap_or_else(|| "not found".into())
}
fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// When each value of a key was first known to exist: the earliest return of a read that
/// returned it, or the earliest invocation of a CAS that expected it (its client had seen it).
pub fn first_observed(ops: &[&RegOp]) -> HashMap<u64, u64> {
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut note = |v: u64, at: u64| {
        let e = seen.entry(v).or_insert(at);
        *e = (*e).min(at);
    };
    for op in ops {
        match (&op.kind, op.outcome) {
            (RegKind::Read { value: Some(v), .. }, Outcome::Ok)
            | (RegKind::StaleRead { value: Some(v), .. }, Outcome::Ok) => note(*v, op.ret),
            (RegKind::Cas { expect, .. }, _) => note(*expect, op.call),
            _ => {}
        }
    }
    seen
}

/// The per-key history the engine checks (indices into `ops` alongside), and how many
/// unobserved unknown CASes were dropped. `observed` is [`first_observed`].
pub fn key_history(
    ops: &[&RegOp],
    observed: &HashMap<u64, u64>,
) -> (Vec<Timed<RegisterOp>>, Vec<usize>, usize) {
    let mut out = Vec::new();
    let mut idx = Vec::new();
    let mut dropped = 0;
    for (i, op) in ops.iter().enumerate() {
        let m = match (&op.kind, op.outcome) {
            (RegKind::Read { value, .. }, Outcome::Ok) => RegisterOp::Read(value.unwrap_or(ABSENT)),
            (RegKind::Cas { expect, new, .. }, Outcome::Ok) => RegisterOp::CasOk {
                expect: *expect,
                new: *new,
            },
            (RegKind::Cas { expect, .. }, Outcome::Fail) => RegisterOp::CasFail { expect: *expect },
            (RegKind::Cas { expect, new, .. }, Outcome::Unknown) => {
                let Some(&seen) = observed.get(new) else {
                    dropped += 1;
                    continue;
                };
                out.push(Timed {
                    call: op.call,
                    ret: seen.max(op.call),
                    op: RegisterOp::CasOk {
                        expect: *expect,
                        new: *new,
                    },
                });
                idx.push(i);
                continue;
            }
            _ => continue,
        };
        out.push(Timed {
            call: op.call,
            ret: op.ret,
            op: m,
        });
        idx.push(i);
    }
    (out, idx, dropped)
}

/// `initial` maps keys to their (value, rv) before the workload.
/// Checks every key; the linearizability search may take `limit` per key.
pub fn check(initial: &BTreeMap<String, (u64, u64)>, ops: &[RegOp], limit: Duration) -> Summary {
    let mut s = Summary {
        keys: initial.len(),
        ..Summary::default()
    };
    let mut by_key: BTreeMap<&str, Vec<&RegOp>> = BTreeMap::new();
    for op in ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    for (key, key_ops) in &by_key {
        let Some(&(init, init_rv)) = initial.get(*key) else {
            s.anomalies.push(Anomaly {
                checker: "register",
                summary: format!("operations on unknown key {key}"),
                excerpt: String::new(),
            });
            continue;
        };
        versions(key, init, init_rv, key_ops, &mut s.anomalies);
        stale_reads(key, init, key_ops, &mut s.anomalies);
        let observed = first_observed(key_ops);
        let (hist, idx, dropped) = key_history(key_ops, &observed);
        s.ops_checked += hist.len();
        s.unknown_dropped += dropped;
        let deadline = Instant::now() + limit;
        match lin::check(&Register { initial: init }, &hist, deadline) {
            Verdict::Linearizable => {}
            Verdict::Timeout => s.timeouts.push(key.to_string()),
            Verdict::Violation {
                prefix,
                state,
                stuck,
            } => {
                let stuck_op = key_ops[idx[stuck]];
                s.anomalies.push(Anomaly {
                    checker: "linearizability",
                    summary: format!(
                        "{key}: no linearization; after the {} operations that can be ordered the value is {}, and this one cannot follow: {}",
                        prefix.len(),
                        if state == ABSENT { "absent".into() } else { state.to_string() },
                        describe(stuck_op)
                    ),
                    excerpt: excerpt(key_ops, &idx, &prefix, stuck),
                });
            }
        }
    }
    s
}

/// The last operations of the best linearization and everything concurrent with the stuck op.
fn excerpt(key_ops: &[&RegOp], idx: &[usize], prefix: &[usize], stuck: usize) -> String {
    let stuck_op = key_ops[idx[stuck]];
    let tail: Vec<usize> = prefix.iter().rev().take(6).rev().copied().collect();
    let from = tail
        .iter()
        .map(|&p| key_ops[idx[p]].call)
        .min()
        .unwrap_or(stuck_op.call)
        .min(stuck_op.call);
    let in_prefix: HashMap<usize, usize> =
        prefix.iter().enumerate().map(|(n, &p)| (p, n)).collect();
    let mut lines: Vec<(u64, String)> = Vec::new();
    for (h, &i) in idx.iter().enumerate() {
        let op = key_ops[i];
        let overlaps = op.call <= stuck_op.ret && op.ret >= from;
        if !(overlaps || tail.contains(&h) || h == stuck) {
            continue;
        }
        let mark = if h == stuck {
            "  <-- cannot be linearized".to_string()
        } else if let Some(n) = in_prefix.get(&h) {
            format!("  (linearized #{})", n + 1)
        } else {
            String::new()
        };
        lines.push((op.call, format!("  {}{mark}", describe(op))));
    }
    lines.sort();
    let total = lines.len();
    let mut text: Vec<String> = lines.into_iter().map(|(_, l)| l).take(30).collect();
    if total > 30 {
        text.push(format!("  ... {} more concurrent operations", total - 30));
    }
    text.join("\n")
}

/// One (key, resourceVersion) is one value.
fn versions(key: &str, init: u64, init_rv: u64, ops: &[&RegOp], out: &mut Vec<Anomaly>) {
    let mut seen: HashMap<u64, (u64, &RegOp)> = HashMap::new();
    let mut bad = Vec::new();
    for op in ops {
        let pairs: Vec<(u64, u64)> = match (&op.kind, op.outcome) {
            (
                RegKind::Read {
                    value: Some(v),
                    rv: Some(r),
                },
                Outcome::Ok,
            )
            | (
                RegKind::StaleRead {
                    value: Some(v),
                    rv: Some(r),
                },
                Outcome::Ok,
            ) => vec![(*r, *v)],
            (
                RegKind::Cas {
                    new,
                    new_rv: Some(r),
                    ..
                },
                Outcome::Ok,
            ) => vec![(*r, *new)],
            _ => vec![],
        };
        for (rv, v) in pairs {
            if rv == init_rv && v != init {
                bad.push(format!(
                    "  rv {rv} is the initial value {init}, but: {}",
                    describe(op)
                ));
            }
            match seen.get(&rv) {
                Some((v0, op0)) if *v0 != v => bad.push(format!(
                    "  rv {rv} holds {v0} in: {}\n  and {v} in: {}",
                    describe(op0),
                    describe(op)
                )),
                _ => {
                    seen.insert(rv, (v, op));
                }
            }
        }
    }
    if !bad.is_empty() {
        out.push(Anomaly {
            checker: "versions",
            summary: format!("{key}: one resourceVersion with two values"),
            excerpt: bad.into_iter().take(10).collect::<Vec<_>>().join("\n"),
        });
    }
}

/// Stale reads return written values, and never go back for one client.
fn stale_reads(key: &str, init: u64, ops: &[&RegOp], out: &mut Vec<Anomaly>) {
    // Values written by CAS and when each write was invoked.
    let mut written: HashMap<u64, u64> = HashMap::new();
    for op in ops {
        if let RegKind::Cas { new, .. } = op.kind {
            written.insert(new, op.call);
        }
    }
    let mut last: HashMap<u32, (u64, &RegOp)> = HashMap::new();
    let mut bad = Vec::new();
    let mut ordered: Vec<&&RegOp> = ops.iter().collect();
    ordered.sort_by_key(|o| o.call);
    for op in ordered {
        let RegKind::StaleRead { value: Some(v), rv } = op.kind else {
            continue;
        };
        if op.outcome != Outcome::Ok {
            continue;
        }
        let legit = v == init || written.get(&v).is_some_and(|&call| call <= op.ret);
        if !legit {
            bad.push(format!(
                "  never written (or written later): {}",
                describe(op)
            ));
        }
        if let Some(rv) = rv {
            if let Some((prev_rv, prev)) = last.get(&op.process)
                && *prev_rv > rv
            {
                bad.push(format!(
                    "  went back from rv {prev_rv}:\n    {}\n    {}",
                    describe(prev),
                    describe(op)
                ));
            }
            last.insert(op.process, (rv, op));
        }
    }
    if !bad.is_empty() {
        out.push(Anomaly {
            checker: "stale-reads",
            summary: format!("{key}: a resourceVersion=0 read returned an impossible state"),
            excerpt: bad.into_iter().take(10).collect::<Vec<_>>().join("\n"),
        });
    }
}

#[cfg(test)]
mod tests;
