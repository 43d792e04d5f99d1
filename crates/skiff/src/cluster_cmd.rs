//! `skiff cluster`: show and change membership through any member, and recover from a lost
//! quorum (`force-new-cluster`, offline, on the survivor's data directory).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use skiff_store::client::Credentials;
use skiff_store::pb::kv::{StatusRequest, StatusResponse};
use skiff_store::pb::raft::{
    MemberInfo, MembersRequest, MembersResponse, RemoveMemberRequest, TransferLeaderRequest,
};

use crate::endpoints::Target;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub target: Target,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List the members, their roles and replication progress.
    Members,
    /// Remove a member by name (e.g. a dead one).
    Remove { name: String },
    /// Make the named voting member the leader.
    TransferLeader { name: String },
    /// Every member's health and progress: role, leader, term, commit/apply index, revision,
    /// database size.
    Status,
    /// Print the command that adds a member (optionally removing a dead one it replaces).
    Add {
        name: String,
        /// A dead member this one replaces: removed from the cluster first.
        #[arg(long)]
        replace: Option<String>,
    },
    /// Recover from a lost quorum: make the stopped member in --data-dir the only member of
    /// its cluster, keeping its data. Then start it with `skiff server --data-dir`.
    ForceNewCluster,
}

pub fn print_members(members: &[MemberInfo], leader: u64, term: u64) {
    println!(
        "{:<6} {:<16} {:<24} {:<8} {:<8} MATCHED",
        "ID", "NAME", "ADDRESS", "ROLE", "LEADER"
    );
    for m in members {
        let matched = if m.has_matched {
            m.matched_index.to_string()
        } else {
            "-".into()
        };
        println!(
            "{:<6} {:<16} {:<24} {:<8} {:<8} {}",
            m.id,
            m.name,
            m.addr,
            if m.voter { "voter" } else { "learner" },
            if m.id == leader { "*" } else { "" },
            matched
        );
    }
    println!("term {term}, {} members, leader id {leader}", members.len());
}

/// One member's row in `cluster status`.
pub struct Row {
    pub member: MemberInfo,
    pub status: Result<StatusResponse, String>,
}

/// What `cluster status` concludes, purely from the rows.
pub fn summarize(rows: &[Row]) -> String {
    let voters = rows.iter().filter(|r| r.member.voter).count();
    let healthy_voters = rows
        .iter()
        .filter(|r| r.member.voter && matches!(&r.status, Ok(s) if s.leader_id != 0))
        .count();
    let quorum = voters / 2 + 1;
    let verdict = if healthy_voters == voters {
        "healthy".to_string()
    } else if healthy_voters >= quorum {
        let spare = healthy_voters - quorum;
        format!(
            "DEGRADED: {} of {voters} voters down; {}",
            voters - healthy_voters,
            if spare == 0 {
                "one more loss loses quorum".to_string()
            } else {
                format!("{spare} more can fail")
            }
        )
    } else {
        format!(
            "QUORUM LOST: {healthy_voters} of {voters} voters up, {quorum} needed; bring members back, or recover with `skiff server --force-new-cluster` on one survivor"
        )
    };
    format!("{healthy_voters}/{voters} voters healthy: {verdict}")
}

async fn member_status(creds: &Credentials, addr: &str) -> Result<StatusResponse, String> {
    let mut kv = creds.kv(addr).map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(2), kv.status(StatusRequest {})).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(s.message().to_string()),
        Err(_) => Err("no answer within 2 s".into()),
    }
}

async fn members(creds: &Credentials, endpoints: &[String]) -> anyhow::Result<MembersResponse> {
    let mut last_err = String::new();
    for endpoint in endpoints {
        let mut admin = creds.admin(endpoint).context("invalid endpoint")?;
        match tokio::time::timeout(Duration::from_secs(5), admin.members(MembersRequest {})).await {
            Ok(Ok(r)) => return Ok(r.into_inner()),
            Ok(Err(s)) => last_err = format!("{endpoint}: {}", s.message()),
            Err(_) => last_err = format!("{endpoint}: no answer within 5 s"),
        }
    }
    bail!("no member answered: {last_err}")
}

async fn status(creds: &Credentials, endpoints: &[String]) -> anyhow::Result<()> {
    let r = members(creds, endpoints).await?;
    let mut rows = Vec::new();
    for m in r.members {
        let status = member_status(creds, &m.addr).await;
        rows.push(Row { member: m, status });
    }
    println!("cluster {}", r.cluster_id);
    println!(
        "{:<5} {:<14} {:<22} {:<8} {:<7} {:>6} {:>9} {:>9} {:>11} {:>9}  HEALTH",
        "ID", "NAME", "ADDRESS", "ROLE", "LEADER", "TERM", "COMMIT", "APPLIED", "REVISION", "DB"
    );
    for row in &rows {
        let m = &row.member;
        let role = if m.voter { "voter" } else { "learner" };
        let leader = if m.id == r.leader_id { "*" } else { "" };
        match &row.status {
            Ok(s) => println!(
                "{:<5} {:<14} {:<22} {:<8} {:<7} {:>6} {:>9} {:>9} {:>11} {:>9}  {}",
                m.id,
                m.name,
                m.addr,
                role,
                leader,
                s.raft_term,
                s.commit_index,
                s.applied_index,
                s.header.as_ref().map(|h| h.revision).unwrap_or(0),
                format!("{:.1}M", s.db_size as f64 / (1 << 20) as f64),
                if s.leader_id != 0 { "ok" } else { "no leader" }
            ),
            Err(e) => println!(
                "{:<5} {:<14} {:<22} {:<8} {:<7} {:>6} {:>9} {:>9} {:>11} {:>9}  unreachable: {e}",
                m.id, m.name, m.addr, role, leader, "-", "-", "-", "-", "-"
            ),
        }
    }
    println!("{}", summarize(&rows));
    Ok(())
}

async fn add(
    target: &crate::endpoints::Target,
    name: &str,
    replace: Option<&str>,
) -> anyhow::Result<()> {
    skiff_store::cluster::validate_member_name(name)?;
    let creds = target.credentials()?;
    let token = skiff_store::identity::DataDir::new(&target.data_dir)
        .load_token()
        .with_context(|| {
            format!(
                "reading the join token from {} (pass --data-dir of a member)",
                target.data_dir.display()
            )
        })?;
    if let Some(old) = replace {
        let mut last_err = String::new();
        let mut removed = false;
        for endpoint in &target.endpoints {
            let mut admin = creds.admin(endpoint).context("invalid endpoint")?;
            match admin
                .remove_member(RemoveMemberRequest {
                    name: old.to_string(),
                })
                .await
            {
                Ok(_) => {
                    removed = true;
                    break;
                }
                Err(s) if s.code() == tonic::Code::NotFound => {
                    removed = true;
                    break;
                }
                Err(s) => last_err = format!("{endpoint}: {}", s.message()),
            }
        }
        if !removed {
            bail!("could not remove {old}: {last_err}");
        }
        println!("removed {old} from the cluster");
    }
    let r = members(&creds, &target.endpoints).await?;
    if r.members.iter().any(|m| m.name == name) {
        bail!(
            "a member named {name} already exists; remove it first (`skiff cluster remove {name}`) or pick another name"
        );
    }
    let joins: Vec<String> = r
        .members
        .iter()
        .map(|m| format!("--join {}", m.addr))
        .collect();
    println!("On the new machine, with an empty data directory, run:");
    println!(
        "  skiff server {} --token {token} --name {name} --data-dir <dir> --peer-listen <ip:2380> --api-listen <ip:6443>",
        joins.join(" ")
    );
    println!(
        "It joins as a learner and becomes a voter once it has caught up (new id, never reused)."
    );
    Ok(())
}

/// `force-new-cluster`: offline, on the survivor's data directory.
pub fn force_new_cluster(data_dir: &Path) -> anyhow::Result<()> {
    let forced = skiff_store::backup::force_new_cluster(data_dir)?;
    let dropped: Vec<String> = forced
        .dropped
        .iter()
        .map(|(id, name)| format!("{name} (id {id})"))
        .collect();
    eprintln!(
        "force-new-cluster: {} (id {}) is now the only member of cluster {} at revision {} ({} log entries applied); dropped: {}",
        forced.identity.name,
        forced.identity.member_id,
        forced.identity.cluster_id,
        forced.revision,
        forced.applied_entries,
        if dropped.is_empty() {
            "none".to_string()
        } else {
            dropped.join(", ")
        }
    );
    eprintln!(
        "force-new-cluster: never start the dropped members with their old data; add members again with `skiff cluster add <name>`"
    );
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match &args.command {
        Command::Status => {
            return status(&args.target.credentials()?, &args.target.endpoints).await;
        }
        Command::Add { name, replace } => {
            return add(&args.target, name, replace.as_deref()).await;
        }
        Command::ForceNewCluster => {
            force_new_cluster(&args.target.data_dir)?;
            println!(
                "Start the member with `skiff server --data-dir {}`.",
                args.target.data_dir.display()
            );
            return Ok(());
        }
        _ => {}
    }
    let creds = args.target.credentials()?;
    let mut last_err = None;
    for endpoint in &args.target.endpoints {
        let mut admin = creds.admin(endpoint).context("invalid endpoint")?;
        let outcome = match &args.command {
            Command::Members => admin.members(MembersRequest {}).await.map(|r| {
                let r = r.into_inner();
                print_members(&r.members, r.leader_id, r.term);
                if r.changing {
                    println!(
                        "a membership change is in progress (old and new voters both decide until it finishes)"
                    );
                }
            }),
            Command::Remove { name } => admin
                .remove_member(RemoveMemberRequest { name: name.clone() })
                .await
                .map(|r| {
                    println!("removed {name}");
                    print_members(&r.into_inner().members, 0, 0);
                }),
            Command::TransferLeader { name } => admin
                .transfer_leader(TransferLeaderRequest { name: name.clone() })
                .await
                .map(|r| {
                    let r = r.into_inner();
                    println!(
                        "{name} (id {}) is now the leader (term {})",
                        r.leader_id, r.term
                    );
                }),
            Command::Status | Command::Add { .. } | Command::ForceNewCluster => Ok(()),
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    || status.message().contains("not ready") =>
            {
                last_err = Some(format!("{endpoint}: {}", status.message()));
            }
            Err(status) => bail!("{}", status.message()),
        }
    }
    bail!("no member answered: {}", last_err.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, voter: bool, up: bool) -> Row {
        Row {
            member: MemberInfo {
                id,
                voter,
                ..Default::default()
            },
            status: if up {
                Ok(StatusResponse {
                    leader_id: 1,
                    ..Default::default()
                })
            } else {
                Err("down".into())
            },
        }
    }

    #[test]
    fn summary_says_how_close_quorum_is() {
        let all = [row(1, true, true), row(2, true, true), row(3, true, true)];
        assert_eq!(summarize(&all), "3/3 voters healthy: healthy");
        let one_down = [row(1, true, true), row(2, true, false), row(3, true, true)];
        assert!(summarize(&one_down).contains("one more loss loses quorum"));
        let lost = [row(1, true, true), row(2, true, false), row(3, true, false)];
        assert!(summarize(&lost).contains("QUORUM LOST"));
        assert!(summarize(&lost).contains("--force-new-cluster"));
        // Learners do not count.
        let learner = [row(1, true, true), row(2, false, false)];
        assert_eq!(summarize(&learner), "1/1 voters healthy: healthy");
    }
}
