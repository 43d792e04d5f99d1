//! `skiff backup`: save a backup from any member, list, verify and prune a directory of them,
//! and restore one into a new cluster. `schedule.rs` runs the scheduled backups of a member.

pub mod schedule;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use futures::StreamExt;
use skiff_store::backup;
use skiff_store::pb::raft::BackupRequest;
use skiff_store::peers::MAX_MESSAGE_BYTES;
use skiff_store::snapshot::Header;

use crate::control_plane::ENCRYPTION_KEYS;
use crate::endpoints::Target;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Save a consistent backup of the cluster, taken by any member, to a file.
    Save {
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// List the backups in a directory (newest first).
    List { dir: PathBuf },
    /// Check backups end to end (checksum, format version, Skiff release): files or directories.
    Verify {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Delete all but the newest backups in a directory.
    Prune {
        dir: PathBuf,
        #[arg(long, default_value_t = 5)]
        keep: usize,
    },
    /// Create a new cluster (new cluster id and CA) from a backup, in an empty data directory.
    Restore(RestoreArgs),
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    pub file: PathBuf,
    /// The new member's data directory (must be empty or absent).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The directory holding the old cluster's shared files (a member's
    /// `<data-dir>/cluster-files`); it must contain `encryption-keys.json`, without which
    /// the backup's Secrets cannot be read.
    #[arg(long)]
    pub cluster_files: PathBuf,
    /// The new member's name.
    #[arg(long)]
    pub name: Option<String>,
    /// The peer address the new member will listen on (for the printed commands).
    #[arg(long, default_value = "0.0.0.0:2380")]
    pub peer_addr: String,
    /// How far the revision moves ahead of the backup's (older history is compacted).
    #[arg(long, default_value_t = backup::DEFAULT_REVISION_BUMP)]
    pub revision_bump: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Save { file, target } => save(&file, &target).await.map(|_| ()),
        Command::List { dir } => list(&dir),
        Command::Verify { paths } => verify(&paths),
        Command::Prune { dir, keep } => {
            for removed in backup::prune_dir(&dir, keep)? {
                println!("removed {}", removed.display());
            }
            Ok(())
        }
        Command::Restore(a) => restore(a).await,
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Describes a backup in one line.
pub fn describe(h: &Header) -> String {
    let members: Vec<String> = h
        .membership
        .membership()
        .nodes()
        .map(|(id, m)| format!("{}={}", m.name, id))
        .collect();
    format!(
        "revision {}, cluster {}, members [{}], Skiff {}, taken {}",
        h.counters.revision,
        h.cluster_id,
        members.join(","),
        h.skiff_version,
        created(h)
    )
}

fn created(h: &Header) -> String {
    k8s_openapi::jiff::Timestamp::from_millisecond(h.created_unix_ms as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Streams a backup from the first member that answers into `file`, verifies it, and
/// returns its header. Progress goes to stderr.
pub async fn save(file: &Path, target: &Target) -> anyhow::Result<Header> {
    let started = Instant::now();
    let creds = target.credentials()?;
    let part = file.with_extension("part");
    let mut last_err = String::new();
    for endpoint in &target.endpoints {
        let mut admin = creds
            .admin(endpoint)
            .context("invalid endpoint")?
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        eprintln!("backup: {endpoint} is writing a consistent snapshot...");
        let mut stream = match admin.backup(BackupRequest {}).await {
            Ok(s) => s.into_inner(),
            Err(status) => {
                last_err = format!("{endpoint}: {}", status.message());
                continue;
            }
        };
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?,
        );
        let mut received = 0u64;
        let mut last_report = Instant::now();
        let mut failed = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    out.write_all(&c.data)?;
                    received += c.data.len() as u64;
                    if last_report.elapsed().as_millis() >= 500 || received == c.total_bytes {
                        eprintln!(
                            "backup: {} / {} (revision {})",
                            mib(received),
                            mib(c.total_bytes),
                            c.revision
                        );
                        last_report = Instant::now();
                    }
                }
                Err(status) => {
                    failed = Some(format!("{endpoint}: {}", status.message()));
                    break;
                }
            }
        }
        if let Some(e) = failed {
            let _ = std::fs::remove_file(&part);
            last_err = e;
            continue;
        }
        let file_handle = out.into_inner().map_err(|e| e.into_error())?;
        file_handle.sync_all()?;
        drop(file_handle);
        let checked = {
            let part = part.clone();
            tokio::task::spawn_blocking(move || backup::check(&part)).await?
        };
        let (header, records) = match checked {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                bail!("the backup received from {endpoint} does not verify: {e}");
            }
        };
        std::fs::rename(&part, file)?;
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        println!(
            "saved {}: {records} records, {}, {} ({} ms)",
            file.display(),
            mib(received),
            describe(&header),
            started.elapsed().as_millis()
        );
        return Ok(header);
    }
    bail!("no member could take the backup: {last_err}")
}

fn list(dir: &Path) -> anyhow::Result<()> {
    let entries =
        backup::list_dir(dir).with_context(|| format!("listing backups in {}", dir.display()))?;
    println!(
        "{:<48} {:<20} {:>12} {:<16} {:>10}  STATUS",
        "FILE", "TAKEN", "REVISION", "CLUSTER", "SIZE"
    );
    for e in entries {
        let name = e
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match e.header {
            Ok(h) => println!(
                "{:<48} {:<20} {:>12} {:<16} {:>10}  ok (header)",
                name,
                created(&h),
                h.counters.revision,
                h.cluster_id,
                mib(e.size)
            ),
            Err(why) => println!(
                "{:<48} {:<20} {:>12} {:<16} {:>10}  unusable: {why}",
                name,
                "-",
                "-",
                "-",
                mib(e.size)
            ),
        }
    }
    Ok(())
}

fn verify(paths: &[PathBuf]) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(backup::list_dir(p)?.into_iter().map(|l| l.path));
        } else {
            files.push(p.clone());
        }
    }
    let mut bad = 0;
    for f in &files {
        match backup::check(f) {
            Ok((h, records)) => println!(
                "ok      {}: {records} records, {}",
                f.display(),
                describe(&h)
            ),
            Err(e) => {
                bad += 1;
                println!("FAILED  {}: {e}", f.display());
            }
        }
    }
    if bad > 0 {
        bail!("{bad} of {} backups failed verification", files.len());
    }
    Ok(())
}

/// Reads the old cluster's shared files; refuses without the Secret encryption key.
pub fn read_cluster_files(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let key = dir.join(ENCRYPTION_KEYS);
    if !key.is_file() {
        bail!(
            "{} is missing: a backup keeps Secrets encrypted, and only the old cluster's key file can read them. \
             Pass --cluster-files <a member's data-dir>/cluster-files from the old cluster (or the copy you keep with your backups)",
            key.display()
        );
    }
    let mut files = crate::control_plane::new_cluster_files()?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file()
            && let Some(name) = path.file_name().and_then(|n| n.to_str())
            && !name.starts_with('.')
            && !name.ends_with("tmp~")
        {
            files.insert(name.to_string(), std::fs::read(&path)?);
        }
    }
    Ok(files)
}

async fn restore(a: RestoreArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let cluster_files = read_cluster_files(&a.cluster_files)?;
    let node_secret = cluster_files
        .get(crate::control_plane::NODE_SECRET)
        .map(|s| String::from_utf8_lossy(s).trim().to_string());
    let name = a.name.clone().unwrap_or_else(crate::server::host_name);
    let (file, data_dir) = (a.file.clone(), a.data_dir.clone());
    eprintln!("restore: checking {}...", file.display());
    let restored = tokio::task::spawn_blocking(move || {
        backup::restore(
            backup::RestoreOptions {
                backup: &file,
                data_dir: &data_dir,
                name: &name,
                cluster_files,
                revision_bump: a.revision_bump,
            },
            |n| eprintln!("restore: {n} records loaded"),
        )
    })
    .await??;
    let h = &restored.header;
    println!(
        "Restored {} ({}) into {} in {} ms.",
        a.file.display(),
        describe(h),
        a.data_dir.display(),
        started.elapsed().as_millis()
    );
    println!(
        "New cluster {}: member {} (id {}), {} keys, revision {} (everything before it is compacted: watchers relist).",
        restored.identity.cluster_id,
        restored.identity.name,
        restored.identity.member_id,
        restored.keys,
        restored.revision
    );
    println!(
        "  start it:     skiff server --data-dir {} --peer-listen {} --api-listen <host:port>",
        a.data_dir.display(),
        a.peer_addr
    );
    println!(
        "  add members:  skiff server --join {} --token {} --name <name> --data-dir <empty dir>",
        a.peer_addr, restored.token
    );
    println!(
        "  kubeconfig:   {}/admin.kubeconfig (after the first start)",
        a.data_dir.display()
    );
    // The node secret comes from the old cluster files; the CA is new, so is the token.
    let ca = skiff_store::identity::DataDir::new(&a.data_dir).load_ca()?;
    if let Some(secret) = node_secret {
        println!(
            "  node agents:  skiff agent --server https://<api host:port> --token skiffnode1.{}.{secret} --name <node> \
             (with the node's usual --data-dir: it joins the new CA, keeps running containers and relists its pods)",
            ca.fingerprint()?
        );
    }
    Ok(())
}
