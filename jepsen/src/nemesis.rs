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
    /// Remove one member (sometimes the leader) from the cluster, delete its data, and join it
    /// again as a new member when the fault ends: remove, add and replace under load.
    Replace,
    /// Restart one member under libfaketime: its clock jumps ahead or behind, or runs fast or
    /// slow; restarted with the true clock when the fault ends.
    Skew,
    /// kill -9 one member and flip a byte in its newest write-ahead log segment: it must refuse
    /// to start (then it is replaced) or recover without serving damaged data.
    DiskFlip,
    /// kill -9 one member and leave a torn write at the end of its newest write-ahead log
    /// segment (a record header promising more bytes than follow, as a crash in the middle of
    /// an unacknowledged write does): it must start and drop the torn record.
    DiskTorn,
    /// kill -9 one member and cut bytes off the end of its newest write-ahead log segment,
    /// which may remove records that were fsynced and acknowledged: a disk that loses synced
    /// data. Raft assumes stable storage, so this is not in `all`; see jepsen/README.md.
    DiskTruncate,
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
    Fault::Replace,
    Fault::Skew,
    Fault::DiskFlip,
    Fault::DiskTorn,
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
            "replace" => Fault::Replace,
            "skew" => Fault::Skew,
            "disk-flip" => Fault::DiskFlip,
            "disk-torn" => Fault::DiskTorn,
            "disk-truncate" => Fault::DiskTruncate,
            _ => {
                return Err(format!(
                    "unknown nemesis {s:?}: use partition, isolate-leader, isolate-one, bridge, one-way, kill, kill-leader, kill-all, pause, replace, skew, disk-flip, disk-torn, disk-truncate, all or none"
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
    Partition {
        drops: Drops,
        what: String,
    },
    Kill {
        members: Vec<usize>,
        what: String,
    },
    Pause {
        members: Vec<usize>,
        what: String,
    },
    Replace {
        member: usize,
        what: String,
    },
    /// `faketime` in libfaketime's `FAKETIME` syntax.
    Skew {
        member: usize,
        faketime: String,
        what: String,
    },
    Disk {
        member: usize,
        damage: Damage,
        what: String,
    },
}

/// What a disk fault does to the newest write-ahead log segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// XOR the byte at this fraction (in thousandths) of the file's length with 0x5a.
    Flip { at_permille: u32 },
    /// Append a record header claiming `bytes` + 1 or more bytes, then `bytes` bytes.
    Torn { bytes: u64 },
    /// Cut this many bytes off the end.
    Truncate { bytes: u64 },
}

impl Action {
    pub fn what(&self) -> &str {
        match self {
            Action::Partition { what, .. }
            | Action::Kill { what, .. }
            | Action::Pause { what, .. }
            | Action::Replace { what, .. }
            | Action::Skew { what, .. }
            | Action::Disk { what, .. } => what,
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
        Fault::Replace => {
            let x = if rng.random_bool(0.3) { leader } else { all[0] };
            Action::Replace {
                member: x,
                what: format!(
                    "membership change: remove m{} and join it again empty",
                    x + 1
                ),
            }
        }
        Fault::Skew => {
            let x = if rng.random_bool(0.5) { leader } else { all[0] };
            let faketime = match rng.random_range(0..4) {
                0 => format!("+{}s", rng.random_range(30..600)),
                1 => format!("-{}s", rng.random_range(30..600)),
                2 => "+0 x2".to_string(),
                _ => "+0 x0.5".to_string(),
            };
            Action::Skew {
                member: x,
                what: format!("clock skew: m{} runs with clock {faketime:?}", x + 1),
                faketime,
            }
        }
        Fault::DiskFlip | Fault::DiskTorn | Fault::DiskTruncate => {
            let x = all[0];
            let damage = match fault {
                Fault::DiskFlip => Damage::Flip {
                    at_permille: rng.random_range(0..1000),
                },
                Fault::DiskTorn => Damage::Torn {
                    bytes: rng.random_range(0..200),
                },
                _ => Damage::Truncate {
                    bytes: rng.random_range(1..64),
                },
            };
            Action::Disk {
                member: x,
                what: format!(
                    "disk damage: kill -9 m{} and {damage:?} its newest WAL segment",
                    x + 1
                ),
                damage,
            }
        }
    }
}

/// Applies `damage` to the newest non-empty write-ahead log segment (`*.log`) of the RocksDB
/// directory `db`; returns the file and what was done.
pub fn damage_wal(db: &std::path::Path, damage: Damage) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let mut segments: Vec<(u64, std::path::PathBuf, u64)> = std::fs::read_dir(db)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let number: u64 = name.strip_suffix(".log")?.parse().ok()?;
            let len = e.metadata().ok()?.len();
            (len > 0).then(|| (number, e.path(), len))
        })
        .collect();
    segments.sort();
    let Some((_, path, len)) = segments.pop() else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("no non-empty WAL segment in {}", db.display()),
        ));
    };
    match damage {
        Damage::Flip { at_permille } => {
            let at = (len - 1) * u64::from(at_permille) / 1000;
            let mut bytes = std::fs::read(&path)?;
            bytes[at as usize] ^= 0x5a;
            std::fs::write(&path, &bytes)?;
            Ok(format!(
                "flipped byte {at} of {} ({len} bytes)",
                path.display()
            ))
        }
        Damage::Torn { bytes } => {
            let tail = torn_tail(len, bytes);
            use std::io::Write;
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)?
                .write_all(&tail)?;
            Ok(format!(
                "appended a torn record ({} bytes) to {} ({len} bytes)",
                tail.len(),
                path.display()
            ))
        }
        Damage::Truncate { bytes } => {
            let keep = len.saturating_sub(bytes);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(keep)?;
            Ok(format!(
                "cut {} ({len} bytes) to {keep} bytes",
                path.display()
            ))
        }
    }
}

/// The bytes a crash in the middle of appending one record leaves after a `len`-byte segment:
/// a header and fewer payload bytes than it promises, about `bytes` long.
///
/// RocksDB's log is made of 32 KiB blocks. The writer never lets a fragment cross a block, so a
/// header never promises more than is left of its block, and fewer than 7 bytes left are zero
/// padding. A torn record therefore ends before the block does: one that filled the block
/// exactly would be a complete record, and one whose header claimed past the block could only
/// come from damage (RocksDB rightly calls that "bad record length").
pub fn torn_tail(len: u64, bytes: u64) -> Vec<u8> {
    const BLOCK: u64 = 32 * 1024;
    const HEADER: u64 = 7;
    let room = BLOCK - len % BLOCK;
    let mut tail = Vec::new();
    if room > HEADER {
        let body = bytes.min(room - HEADER - 1);
        let claimed = (body + 1 + body / 2).min(room - HEADER);
        tail.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        tail.extend_from_slice(&u16::try_from(claimed).unwrap_or(u16::MAX).to_le_bytes());
        tail.push(1); // a full record
        tail.extend((0..body).map(|i| (i * 31 % 251) as u8));
    } else {
        // Part of the zero padding, or of a header (never all of it).
        tail.extend(std::iter::repeat_n(0u8, (room - 1).min(3) as usize));
    }
    tail
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
    fn wal_damage_hits_the_newest_non_empty_segment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("000007.log"), vec![0u8; 100]).unwrap();
        std::fs::write(dir.path().join("000009.log"), vec![1u8; 50]).unwrap();
        std::fs::write(dir.path().join("000011.log"), b"").unwrap();
        std::fs::write(dir.path().join("000010.sst"), vec![2u8; 10]).unwrap();
        let what = damage_wal(dir.path(), Damage::Flip { at_permille: 1000 }).unwrap();
        assert!(what.contains("000009.log"), "{what}");
        let bytes = std::fs::read(dir.path().join("000009.log")).unwrap();
        assert_eq!(bytes[49], 1 ^ 0x5a);
        assert_eq!(bytes[..49], [1u8; 49]);
        damage_wal(dir.path(), Damage::Truncate { bytes: 20 }).unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("000009.log"))
                .unwrap()
                .len(),
            30
        );
        damage_wal(dir.path(), Damage::Torn { bytes: 10 }).unwrap();
        let torn = std::fs::read(dir.path().join("000009.log")).unwrap();
        assert_eq!(torn.len(), 30 + 7 + 10);
        let claimed = u16::from_le_bytes([torn[34], torn[35]]);
        assert!(
            u64::from(claimed) > 10,
            "the header must promise more than follows"
        );
        assert_eq!(torn[36], 1);
        assert_eq!(
            std::fs::read(dir.path().join("000007.log")).unwrap(),
            vec![0u8; 100]
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(damage_wal(empty.path(), Damage::Truncate { bytes: 1 }).is_err());
    }

    #[test]
    fn a_torn_tail_never_reaches_the_end_of_its_block() {
        const BLOCK: u64 = 32 * 1024;
        for room in 1..=64u64 {
            for bytes in [0, 1, 6, 9, 10, 40, 100] {
                let len = 3 * BLOCK - room;
                let tail = torn_tail(len, bytes);
                let tail_len = tail.len() as u64;
                assert!(tail_len < room, "room {room} bytes {bytes}: {tail_len}");
                if room > 7 {
                    let claimed = u64::from(u16::from_le_bytes([tail[4], tail[5]]));
                    let body = tail_len - 7;
                    assert!(claimed > body, "room {room} bytes {bytes}");
                    assert!(claimed <= room - 7, "room {room} bytes {bytes}");
                }
            }
        }
        // The case a CI run hit: 16 bytes left in the block.
        let tail = torn_tail(2_981_872, 9);
        assert_eq!(tail.len(), 15);
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
