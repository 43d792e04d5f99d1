//! The nemesis: picks a fault (pure, from a seeded RNG and the current leader), applies it,
//! holds it, and undoes it. Faults never overlap; the schedule is in the history.

use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use rand::seq::SliceRandom;

use crate::net::{self, Drops};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// A random majority and minority, cut both ways.
    Partition,
    /// The leader alone on one side.
    IsolateLeader,
    /// One random member (often a follower) alone on one side.
    IsolateOne,
    /// Two halves that cannot talk, and one member that talks to both.
    Bridge,
    /// One member hears nobody, but everybody hears it.
    OneWay,
    /// kill -9 one random member (restarted when the fault ends).
    Kill,
    /// kill -9 the leader.
    KillLeader,
    /// kill -9 every member at once, restart them in random order.
    KillAll,
    /// SIGSTOP one member (often the leader), SIGCONT when the fault ends.
    Pause,
}

pub const ALL: &[Fault] = &[
    Fault::Partition,
    Fault::IsolateLeader,
    Fault::IsolateOne,
    Fault::Bridge,
    Fault::OneWay,
    Fault::Kill,
    Fault::KillLeader,
    Fault::KillAll,
    Fault::Pause,
];

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Fault, String> {
        Ok(match s {
            "partition" => Fault::Partition,
            "isolate-leader" => Fault::IsolateLeader,
            "isolate-one" => Fault::IsolateOne,
            "bridge" => Fault::Bridge,
            "one-way" => Fault::OneWay,
            "kill" => Fault::Kill,
            "kill-leader" => Fault::KillLeader,
            "kill-all" => Fault::KillAll,
            "pause" => Fault::Pause,
            _ => {
                return Err(format!(
                    "unknown nemesis {s:?}: use partition, isolate-leader, isolate-one, bridge, one-way, kill, kill-leader, kill-all, pause, all or none"
                ));
            }
        })
    }
}

/// Parses a comma-separated list ("all" and "none" allowed).
pub fn parse_list(s: &str) -> Result<Vec<Fault>, String> {
    match s {
        "all" => Ok(ALL.to_vec()),
        "none" | "" => Ok(Vec::new()),
        _ => s.split(',').map(|x| x.trim().parse()).collect(),
    }
}

/// What to do to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Partition { drops: Drops, what: String },
    Kill { members: Vec<usize>, what: String },
    Pause { members: Vec<usize>, what: String },
}

impl Action {
    pub fn what(&self) -> &str {
        match self {
            Action::Partition { what, .. }
            | Action::Kill { what, .. }
            | Action::Pause { what, .. } => what,
        }
    }
}

fn names(ms: &[usize]) -> String {
    ms.iter()
        .map(|m| format!("m{}", m + 1))
        .collect::<Vec<_>>()
        .join(",")
}

/// The action for `fault` on `n` members (pure; `leader` as last seen).
pub fn plan(fault: Fault, n: usize, leader: Option<usize>, rng: &mut impl Rng) -> Action {
    let mut all: Vec<usize> = (0..n).collect();
    all.shuffle(rng);
    let leader = leader.unwrap_or(all[0]);
    let others = |x: usize| (0..n).filter(|&i| i != x).collect::<Vec<_>>();
    match fault {
        Fault::Partition => {
            let (minority, majority) = all.split_at(n / 2);
            Action::Partition {
                drops: net::split(n, minority, majority),
                what: format!("partition {} | {}", names(minority), names(majority)),
            }
        }
        Fault::IsolateLeader | Fault::IsolateOne => {
            let x = if fault == Fault::IsolateLeader {
                leader
            } else {
                all[0]
            };
            Action::Partition {
                drops: net::split(n, &[x], &others(x)),
                what: format!("isolate m{}", x + 1),
            }
        }
        Fault::Bridge => {
            let bridge = all[0];
            let rest = &all[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            Action::Partition {
                drops: net::split(n, a, b),
                what: format!(
                    "bridge: {} | {} | {} (m{} talks to both)",
                    names(a),
                    names(&[bridge]),
                    names(b),
                    bridge + 1
                ),
            }
        }
        Fault::OneWay => {
            let x = if rng.random_bool(0.5) { leader } else { all[0] };
            Action::Partition {
                drops: net::one_way(n, &[x], &others(x)),
                what: format!("m{} hears nobody (one way)", x + 1),
            }
        }
        Fault::Kill => Action::Kill {
            members: vec![all[0]],
            what: format!("kill -9 m{}", all[0] + 1),
        },
        Fault::KillLeader => Action::Kill {
            members: vec![leader],
            what: format!("kill -9 leader m{}", leader + 1),
        },
        Fault::KillAll => Action::Kill {
            members: all.clone(),
            what: format!("kill -9 all ({})", names(&all)),
        },
        Fault::Pause => {
            let x = if rng.random_bool(0.5) { leader } else { all[0] };
            Action::Pause {
                members: vec![x],
                what: format!("SIGSTOP m{}", x + 1),
            }
        }
    }
}

/// How long a fault holds and the quiet time between faults.
pub fn hold(rng: &mut impl Rng) -> (Duration, Duration) {
    (
        Duration::from_millis(rng.random_range(2_000..8_000)),
        Duration::from_millis(rng.random_range(1_000..4_000)),
    )
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn partitions_leave_a_majority_and_the_right_member_alone() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let Action::Partition { drops, .. } = plan(Fault::Partition, 5, None, &mut rng) else {
                panic!("not a partition");
            };
            let cut: Vec<usize> = (0..5).filter(|&i| drops[i].len() == 3).collect();
            assert_eq!(cut.len(), 2, "minority of 2: {drops:?}");
            let Action::Partition { drops, what } =
                plan(Fault::IsolateLeader, 3, Some(1), &mut rng)
            else {
                panic!("not a partition");
            };
            assert_eq!(drops[1], vec![0, 2], "{what}");
            assert_eq!(drops[0], vec![1]);
        }
    }

    #[test]
    fn bridge_keeps_one_member_connected_to_both_sides() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let Action::Partition { drops, .. } = plan(Fault::Bridge, 5, None, &mut rng) else {
            panic!("not a partition");
        };
        let connected: Vec<usize> = (0..5).filter(|&i| drops[i].is_empty()).collect();
        assert_eq!(connected.len(), 1, "{drops:?}");
        assert!(drops.iter().all(|d| d.len() <= 2));
    }

    #[test]
    fn lists_parse() {
        assert_eq!(parse_list("all").map(|l| l.len()), Ok(ALL.len()));
        assert_eq!(
            parse_list("kill,pause"),
            Ok(vec![Fault::Kill, Fault::Pause])
        );
        assert!(parse_list("explode").is_err());
        assert_eq!(parse_list("none"), Ok(vec![]));
    }
}
