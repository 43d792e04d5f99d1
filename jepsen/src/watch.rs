//! The watch checker, with etcd's watch guarantees.
//!
//! The reference is a watch from the start revision taken after the run. It must itself agree
//! with what clients were told: every acknowledged write appears at its revision with its value,
//! and every event is a write some client attempted. Then each watcher's log (which restarts
//! from the last revision it saw, on whichever member) must be exactly the reference from its
//! start revision on:
//!
//! - **ordered** and **unique**: revisions never go back or repeat;
//! - **atomic**: all events of one revision arrive together (a resume inside a revision would
//!   skip the rest: a gap);
//! - **reliable**: no gaps relative to the reference;
//! - **resumable**: a watch started from revision R continues with the first event after R;
//! - **bookmarks truthful**: after a bookmark at R, no event at or below R arrives, and every
//!   reference event at or below R was already delivered;
//! - the watcher reaches the final revision once the workload stops (no stalled watch).

use std::collections::HashSet;

use crate::history::{Event, EventKind, WatchEntry, WatchLog};
use crate::registers::Anomaly;

#[derive(Debug)]
pub struct Input<'a> {
    pub start_rv: u64,
    pub final_rv: u64,
    pub reference: &'a [Event],
    pub watches: &'a [WatchLog],
    /// Acknowledged writes: (rv, kind, name, value) as the client was told.
    pub acked: &'a [Event],
    /// Every (name, value) a client tried to write.
    pub attempted: &'a HashSet<(String, Option<String>)>,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub reference_events: usize,
    pub watchers: usize,
    pub events_seen: usize,
    pub restarts: usize,
    pub bookmarks: usize,
    pub anomalies: Vec<Anomaly>,
}

fn ev(e: &Event) -> String {
    format!(
        "rv {} {:?} {}{}",
        e.rv,
        e.kind,
        e.name,
        e.value
            .as_ref()
            .map(|v| format!(" = {v}"))
            .unwrap_or_default()
    )
}

pub fn check(input: &Input) -> Summary {
    let mut s = Summary {
        reference_events: input.reference.len(),
        watchers: input.watches.len(),
        ..Summary::default()
    };
    check_reference(input, &mut s.anomalies);
    for log in input.watches {
        check_watcher(input, log, &mut s);
    }
    s
}

fn check_reference(input: &Input, out: &mut Vec<Anomaly>) {
    let r = input.reference;
    let mut bad = Vec::new();
    for w in r.windows(2) {
        if w[1].rv < w[0].rv {
            bad.push(format!("  out of order: {} then {}", ev(&w[0]), ev(&w[1])));
        }
        if w[1] == w[0] {
            bad.push(format!("  repeated: {}", ev(&w[1])));
        }
    }
    if let Some(first) = r.first()
        && first.rv <= input.start_rv
    {
        bad.push(format!(
            "  starts at or before the start revision {}: {}",
            input.start_rv,
            ev(first)
        ));
    }
    if r.last().map_or(input.start_rv, |e| e.rv) != input.final_rv {
        bad.push(format!(
            "  ends at rv {} but the final state is at rv {}",
            r.last().map_or(input.start_rv, |e| e.rv),
            input.final_rv
        ));
    }
    for a in input.acked {
        if !r.iter().any(|e| e == a) {
            let at = r
                .iter()
                .find(|e| e.rv == a.rv)
                .map(|e| format!("; at rv {} the history has {}", a.rv, ev(e)))
                .unwrap_or_default();
            bad.push(format!("  acknowledged write missing: {}{at}", ev(a)));
        }
    }
    for e in r {
        let attempted = match e.kind {
            EventKind::Deleted => false,
            _ => input.attempted.contains(&(e.name.clone(), e.value.clone())),
        };
        if !attempted {
            bad.push(format!("  no client wrote this: {}", ev(e)));
        }
    }
    if !bad.is_empty() {
        let n = bad.len();
        out.push(Anomaly {
            checker: "watch",
            summary: format!("the final history (a watch from the start) disagrees with the clients ({n} problems)"),
            excerpt: bad.into_iter().take(12).collect::<Vec<_>>().join("\n"),
        });
    }
}

fn check_watcher(input: &Input, log: &WatchLog, s: &mut Summary) {
    let r = input.reference;
    let mut last = input.start_rv;
    // Index of the next reference event this watcher must deliver.
    let mut pos = r.partition_point(|e| e.rv <= last);
    let mut recent: Vec<String> = Vec::new();
    let mut problem: Option<String> = None;
    for entry in &log.entries {
        match entry {
            WatchEntry::Start {
                member, from_rv, ..
            } => {
                s.restarts += 1;
                recent.push(format!("  watch from rv {from_rv} on m{}", member + 1));
                if *from_rv != last {
                    problem = Some(format!(
                        "restarted from rv {from_rv}, but the last revision it saw was {last}"
                    ));
                    break;
                }
            }
            WatchEntry::Event(e) if e.rv > input.final_rv => {
                // A write with an unknown outcome that landed after the final read: beyond
                // the history being compared.
                break;
            }
            WatchEntry::Event(e) => {
                s.events_seen += 1;
                recent.push(format!("  event {}", ev(e)));
                if e.rv < last {
                    problem = Some(format!("went back: {} after rv {last}", ev(e)));
                    break;
                }
                if e.rv == last && r.get(pos).is_none_or(|w| w != e) {
                    problem = Some(format!("repeated: {} after rv {last}", ev(e)));
                    break;
                }
                match r.get(pos) {
                    Some(want) if want == e => {
                        pos += 1;
                        last = e.rv;
                    }
                    Some(want) if want.rv < e.rv => {
                        let skipped: Vec<String> = r[pos..]
                            .iter()
                            .take_while(|x| x.rv < e.rv)
                            .take(5)
                            .map(ev)
                            .collect();
                        problem = Some(format!(
                            "gap: got {} but never got {}",
                            ev(e),
                            skipped.join(", ")
                        ));
                        break;
                    }
                    Some(want) => {
                        problem = Some(format!("got {} where the history has {}", ev(e), ev(want)));
                        break;
                    }
                    None => {
                        problem = Some(format!(
                            "got {} which is not in the history (it ends at rv {})",
                            ev(e),
                            r.last().map_or(input.start_rv, |x| x.rv)
                        ));
                        break;
                    }
                }
            }
            WatchEntry::Bookmark { rv } => {
                s.bookmarks += 1;
                recent.push(format!("  bookmark rv {rv}"));
                if *rv < last {
                    problem = Some(format!("bookmark at rv {rv} after an event at rv {last}"));
                    break;
                }
                if let Some(want) = r.get(pos)
                    && want.rv <= *rv
                {
                    problem = Some(format!(
                        "bookmark at rv {rv} but {} was not delivered yet",
                        ev(want)
                    ));
                    break;
                }
                last = *rv;
            }
            WatchEntry::Error { message, gone } => {
                recent.push(format!("  error: {message}"));
                if *gone {
                    problem = Some(format!(
                        "410 Gone at rv {last}, inside the history window: {message}"
                    ));
                    break;
                }
            }
        }
        if recent.len() > 8 {
            recent.remove(0);
        }
    }
    if problem.is_none() && !log.caught_up {
        problem = Some(format!(
            "did not reach the final revision {} after the workload stopped (last rv {last})",
            input.final_rv
        ));
    }
    if let Some(p) = problem {
        s.anomalies.push(Anomaly {
            checker: "watch",
            summary: format!("watcher w{}: {p}", log.watcher),
            excerpt: format!("  last entries of w{}:\n{}", log.watcher, recent.join("\n")),
        });
    }
}

#[cfg(test)]
mod tests;
