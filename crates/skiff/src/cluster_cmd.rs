//! `skiff cluster`: show and change membership through any member.

use anyhow::{Context, bail};
use skiff_store::pb::raft::{
    MemberInfo, MembersRequest, RemoveMemberRequest, TransferLeaderRequest,
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

pub async fn run(args: Args) -> anyhow::Result<()> {
    let creds = args.target.credentials()?;
    let mut last_err = None;
    for endpoint in &args.target.endpoints {
        let mut admin = creds.admin(endpoint).context("invalid endpoint")?;
        let outcome = match &args.command {
            Command::Members => admin.members(MembersRequest {}).await.map(|r| {
                let r = r.into_inner();
                print_members(&r.members, r.leader_id, r.term);
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
