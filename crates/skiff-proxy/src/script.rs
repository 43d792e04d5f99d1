//! Turns a desired [`RuleSet`] into one `nft -f` transaction. Pure; no I/O.
//!
//! The kernel applies a whole `nft -f` input atomically: packets see either the old rules or the
//! new ones. A full sync (no previous state, or after a failure) declares every object, flushes
//! and refills every chain and map, and removes objects of our table that are no longer wanted
//! (learned from [`parse_listing`]). An incremental sync against the previously applied rule set
//! rewrites only the chains that changed, adds and deletes only the map elements that changed, and
//! deletes what disappeared. Affinity sets are never flushed, so client stickiness survives
//! updates and restarts. Order inside a transaction: declarations, map elements, chain rules, then
//! flushing and deleting stale objects (a chain can be deleted only once nothing refers to it).
//!
//! Invariant: every command names our one table (`ip skiff` unless configured otherwise);
//! nothing else is ever touched.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::rules::{Chain, RuleSet, TABLE};

/// Names of the objects currently in our table (from `nft -t list table ip skiff`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Existing {
    pub chains: BTreeSet<String>,
    pub maps: BTreeSet<String>,
    pub sets: BTreeSet<String>,
}

/// Parses the text of `nft -t list table ip skiff` (terse: no set elements).
pub fn parse_listing(text: &str) -> Existing {
    let mut existing = Existing::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(name), Some("{")) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let name = name.trim_matches('"').to_string();
        match kind {
            "chain" => existing.chains.insert(name),
            "map" => existing.maps.insert(name),
            "set" => existing.sets.insert(name),
            _ => false,
        };
    }
    existing
}

/// The script that removes the default table (and nothing else); succeeds whether or not it
/// exists.
pub fn cleanup() -> String {
    cleanup_in(TABLE)
}

/// The script that removes `table ip <table>` (and nothing else).
pub fn cleanup_in(table: &str) -> String {
    format!("add table ip {table}\ndelete table ip {table}\n")
}

fn declare_chain(out: &mut String, table: &str, name: &str, chain: &Chain) {
    match &chain.hook {
        Some(hook) => {
            let _ = writeln!(out, "add chain ip {table} {name} {{ {hook} }}");
        }
        None => {
            let _ = writeln!(out, "add chain ip {table} {name}");
        }
    }
}

fn fill_chain(out: &mut String, table: &str, name: &str, chain: &Chain) {
    let _ = writeln!(out, "flush chain ip {table} {name}");
    for rule in &chain.rules {
        let _ = writeln!(out, "add rule ip {table} {name} {rule}");
    }
}

/// Renders the transaction that takes the table from `previous` (what we applied last; `None`
/// for a full sync) to `desired`. `existing` lists what the kernel holds (used in full syncs).
pub fn render(previous: Option<&RuleSet>, desired: &RuleSet, existing: &Existing) -> String {
    render_in(TABLE, previous, desired, existing)
}

/// [`render`] for `table ip <table>` (one table per proxy when several share a host).
pub fn render_in(
    table: &str,
    previous: Option<&RuleSet>,
    desired: &RuleSet,
    existing: &Existing,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "add table ip {table}");
    let empty = RuleSet::default();
    let before = previous.unwrap_or(&empty);
    let full = previous.is_none();

    // 1. Declarations (idempotent `add`).
    for (name, chain) in &desired.chains {
        if full || !before.chains.contains_key(name) {
            declare_chain(&mut out, table, name, chain);
        }
    }
    for (name, map) in &desired.maps {
        if full || !before.maps.contains_key(name) {
            let _ = writeln!(out, "add map ip {table} {name} {{ type {}; }}", map.kind);
        }
    }
    for (name, decl) in &desired.sets {
        if full || !before.sets.contains_key(name) {
            let _ = writeln!(out, "add set ip {table} {name} {{ {decl} }}");
        }
    }

    // 2. Map elements.
    for (name, map) in &desired.maps {
        if full {
            let _ = writeln!(out, "flush map ip {table} {name}");
            add_elements(&mut out, table, name, map.elements.iter());
            continue;
        }
        let old = before.maps.get(name).map(|m| &m.elements);
        let mut removed = Vec::new();
        if let Some(old) = old {
            for (key, verdict) in old {
                if map.elements.get(key) != Some(verdict) {
                    removed.push(key);
                }
            }
        }
        if !removed.is_empty() {
            let keys: Vec<&str> = removed.iter().map(|k| k.as_str()).collect();
            let _ = writeln!(
                out,
                "delete element ip {table} {name} {{ {} }}",
                keys.join(", ")
            );
        }
        add_elements(
            &mut out,
            table,
            name,
            map.elements
                .iter()
                .filter(|(k, v)| old.and_then(|o| o.get(*k)) != Some(*v)),
        );
    }

    // 3. Chain contents.
    for (name, chain) in &desired.chains {
        if full || before.chains.get(name) != Some(chain) {
            fill_chain(&mut out, table, name, chain);
        }
    }

    // 4. Stale objects: flush every stale chain first, then delete chains, maps and sets.
    let stale = |desired_names: &dyn Fn(&str) -> bool, known: &mut dyn Iterator<Item = &String>| {
        known
            .filter(|n| !desired_names(n))
            .cloned()
            .collect::<BTreeSet<String>>()
    };
    let known_chains: BTreeSet<&String> =
        existing.chains.iter().chain(before.chains.keys()).collect();
    let known_maps: BTreeSet<&String> = existing.maps.iter().chain(before.maps.keys()).collect();
    let known_sets: BTreeSet<&String> = existing.sets.iter().chain(before.sets.keys()).collect();
    let stale_chains = stale(
        &|n| desired.chains.contains_key(n),
        &mut known_chains.into_iter(),
    );
    let stale_maps = stale(
        &|n| desired.maps.contains_key(n),
        &mut known_maps.into_iter(),
    );
    let stale_sets = stale(
        &|n| desired.sets.contains_key(n),
        &mut known_sets.into_iter(),
    );
    for name in &stale_chains {
        let _ = writeln!(out, "flush chain ip {table} {name}");
    }
    for name in &stale_chains {
        let _ = writeln!(out, "delete chain ip {table} {name}");
    }
    for name in &stale_maps {
        let _ = writeln!(out, "delete map ip {table} {name}");
    }
    for name in &stale_sets {
        let _ = writeln!(out, "delete set ip {table} {name}");
    }
    out
}

/// Elements are added in batches of at most 1000 per command to keep lines reasonable.
fn add_elements<'a>(
    out: &mut String,
    table: &str,
    map: &str,
    elements: impl Iterator<Item = (&'a String, &'a String)>,
) {
    let all: Vec<String> = elements.map(|(k, v)| format!("{k} : {v}")).collect();
    for batch in all.chunks(1000) {
        let _ = writeln!(
            out,
            "add element ip {table} {map} {{ {} }}",
            batch.join(", ")
        );
    }
}

#[cfg(test)]
mod tests;
