//! The set checker: every acknowledged create is present at the end, and nothing is present
//! that no client tried to create. Creates with unknown outcomes may go either way (counted).

use std::collections::{BTreeSet, HashMap};

use crate::history::{Outcome, SetOp, secs};
use crate::registers::Anomaly;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub attempted: usize,
    pub acknowledged: usize,
    pub unknown_present: usize,
    pub unknown_absent: usize,
    pub anomalies: Vec<Anomaly>,
}

pub fn check(ops: &[SetOp], final_set: Option<&[String]>) -> Summary {
    let mut s = Summary {
        attempted: ops.len(),
        ..Summary::default()
    };
    let Some(final_set) = final_set else {
        s.anomalies.push(Anomaly {
            checker: "set",
            summary: "the final list could not be read: nothing can be concluded".into(),
            excerpt: String::new(),
        });
        return s;
    };
    let present: BTreeSet<&str> = final_set.iter().map(String::as_str).collect();
    let by_name: HashMap<&str, &SetOp> = ops.iter().map(|o| (o.name.as_str(), o)).collect();
    let mut lost = Vec::new();
    for op in ops {
        let here = present.contains(op.name.as_str());
        match op.outcome {
            Outcome::Ok => {
                s.acknowledged += 1;
                if !here {
                    lost.push(op);
                }
            }
            Outcome::Unknown if here => s.unknown_present += 1,
            Outcome::Unknown => s.unknown_absent += 1,
            Outcome::Fail if here => lost.push(op),
            Outcome::Fail => {}
        }
    }
    let lost_acked: Vec<&&SetOp> = lost.iter().filter(|o| o.outcome == Outcome::Ok).collect();
    if !lost_acked.is_empty() {
        s.anomalies.push(Anomaly {
            checker: "set",
            summary: format!(
                "{} acknowledged creates are missing at the end",
                lost_acked.len()
            ),
            excerpt: lost_acked
                .iter()
                .take(10)
                .map(|o| line(o))
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    let refused_present: Vec<&&SetOp> =
        lost.iter().filter(|o| o.outcome == Outcome::Fail).collect();
    if !refused_present.is_empty() {
        s.anomalies.push(Anomaly {
            checker: "set",
            summary: format!(
                "{} creates that were definitely refused are present at the end",
                refused_present.len()
            ),
            excerpt: refused_present
                .iter()
                .take(10)
                .map(|o| line(o))
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    let phantoms: Vec<&str> = present
        .iter()
        .filter(|n| !by_name.contains_key(*n))
        .copied()
        .collect();
    if !phantoms.is_empty() {
        s.anomalies.push(Anomaly {
            checker: "set",
            summary: format!(
                "{} objects are present that no client created",
                phantoms.len()
            ),
            excerpt: phantoms
                .iter()
                .take(10)
                .map(|n| format!("  {n}"))
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    s
}

fn line(o: &SetOp) -> String {
    format!(
        "  [{} .. {}] p{} via m{} create {}: {:?}{}",
        secs(o.call),
        secs(o.ret),
        o.process,
        o.member + 1,
        o.name,
        o.outcome,
        o.rv.map(|r| format!(" (rv {r})")).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, outcome: Outcome) -> SetOp {
        SetOp {
            process: 1,
            member: 0,
            name: name.into(),
            call: 0,
            ret: 1,
            outcome,
            rv: (outcome == Outcome::Ok).then_some(5),
        }
    }

    #[test]
    fn complete_set_passes_and_counts_unknowns() {
        let ops = [
            op("a", Outcome::Ok),
            op("b", Outcome::Unknown),
            op("c", Outcome::Unknown),
            op("d", Outcome::Fail),
        ];
        let s = check(&ops, Some(&["a".to_string(), "b".to_string()]));
        assert!(s.anomalies.is_empty(), "{:#?}", s.anomalies);
        assert_eq!(
            (s.acknowledged, s.unknown_present, s.unknown_absent),
            (1, 1, 1)
        );
    }

    #[test]
    fn lost_and_phantom_elements_are_reported() {
        let ops = [op("a", Outcome::Ok), op("b", Outcome::Ok)];
        let s = check(&ops, Some(&["a".to_string(), "zz".to_string()]));
        assert_eq!(s.anomalies.len(), 2, "{:#?}", s.anomalies);
        assert!(
            s.anomalies[0]
                .summary
                .contains("1 acknowledged creates are missing")
        );
        assert!(s.anomalies[0].excerpt.contains("create b"));
        assert!(s.anomalies[1].excerpt.contains("zz"));
    }

    #[test]
    fn missing_final_read_is_not_a_pass() {
        let s = check(&[op("a", Outcome::Ok)], None);
        assert_eq!(s.anomalies.len(), 1);
    }
}
