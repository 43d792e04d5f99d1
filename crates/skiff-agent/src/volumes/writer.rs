//! Making a volume layout real on the node: directories, tmpfs mounts, hostPath checks, and the
//! atomic writer for file-backed volumes.
//!
//! **Invariant:** a file-backed volume's visible files are symlinks through `..data`, which
//! points at a timestamped directory holding one complete version; an update writes a new
//! directory and renames a fresh `..data` symlink over the old one, so readers see either the
//! old or the new version, never a mix. Secret and projected volumes are tmpfs mounts made
//! before anything is written into them.

use std::collections::BTreeSet;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::{File, Kind, VolumePlan};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("mounting tmpfs at {path}: {source}")]
    Mount { path: String, source: nix::Error },
    #[error("hostPath {path}: {detail}")]
    HostPath { path: String, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

const DATA_LINK: &str = "..data";

/// Mount points (from `/proc/self/mountinfo`) at or under `root`.
pub fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(root))
        .collect();
    found.sort();
    found.dedup();
    found
}

fn is_mount_point(path: &Path) -> bool {
    mounts_under(path).iter().any(|p| p == path)
}

fn mount_tmpfs(path: &Path, size_limit: Option<i64>) -> Result<()> {
    if is_mount_point(path) {
        return Ok(());
    }
    let mut options = String::from("mode=0755");
    if let Some(size) = size_limit.filter(|s| *s > 0) {
        options.push_str(&format!(",size={size}"));
    }
    nix::mount::mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|source| Error::Mount {
        path: path.display().to_string(),
        source,
    })
}

fn timestamped_name() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    format!("..{}", now.strftime("%Y_%m_%d_%H_%M_%S.%f"))
}

/// The files currently visible through `..data`, with modes.
fn current_files(dir: &Path) -> Option<Vec<File>> {
    let data = dir.join(DATA_LINK);
    let target = std::fs::read_link(&data).ok()?;
    let root = dir.join(target);
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).ok()? {
            let entry = entry.ok()?;
            let path = entry.path();
            let meta = entry.metadata().ok()?;
            if meta.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(&root)
                    .ok()?
                    .to_string_lossy()
                    .into_owned();
                files.push(File {
                    path: relative,
                    data: std::fs::read(&path).ok()?,
                    mode: meta.permissions().mode() & 0o777,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Some(files)
}

/// Writes `files` into `dir` atomically; returns whether anything changed.
pub fn write_atomic(dir: &Path, files: &[File]) -> Result<bool> {
    let mut wanted = files.to_vec();
    wanted.sort_by(|a, b| a.path.cmp(&b.path));
    if current_files(dir).as_ref() == Some(&wanted) {
        return Ok(false);
    }
    let version = timestamped_name();
    let version_dir = dir.join(&version);
    std::fs::create_dir_all(&version_dir).map_err(io(&version_dir))?;
    std::fs::set_permissions(&version_dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io(&version_dir))?;
    for file in &wanted {
        let path = version_dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, &file.data).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))
            .map_err(io(&path))?;
    }
    let old_version = std::fs::read_link(dir.join(DATA_LINK)).ok();
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    symlink(&version, &tmp_link).map_err(io(&tmp_link))?;
    std::fs::rename(&tmp_link, dir.join(DATA_LINK)).map_err(io(&tmp_link))?;
    // Top-level names point through ..data.
    let top: BTreeSet<String> = wanted
        .iter()
        .filter_map(|f| f.path.split('/').next().map(str::to_string))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("{DATA_LINK}/{name}"), &link).map_err(io(&link))?;
        }
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || top.contains(&name) {
            continue;
        }
        let _ = std::fs::remove_file(entry.path());
    }
    if let Some(old) = old_version
        && old != Path::new(&version)
    {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

fn check_host_path(path: &Path, host_type: &str) -> Result<()> {
    let err = |detail: &str| Error::HostPath {
        path: path.display().to_string(),
        detail: detail.to_string(),
    };
    let meta = std::fs::metadata(path);
    match host_type {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(path).map_err(io(path))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                    .map_err(io(path))?;
            }
            Ok(())
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                std::fs::write(path, b"").map_err(io(path))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                    .map_err(io(path))?;
            }
            Ok(())
        }
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            _ => Err(err("is not a directory")),
        },
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => Err(err("is not a file")),
        },
        _ => match meta {
            Ok(_) => Ok(()),
            Err(_) => Err(err("does not exist")),
        },
    }
}

/// Makes one planned volume real (idempotent: called on every sync, it updates files in place).
pub fn materialize(plan: &VolumePlan) -> Result<bool> {
    let path = Path::new(&plan.host_path);
    match &plan.kind {
        Kind::HostPath { host_type } => {
            check_host_path(path, host_type)?;
            Ok(false)
        }
        Kind::Claim => {
            if !path.is_dir() {
                std::fs::create_dir_all(path).map_err(io(path))?;
            }
            Ok(false)
        }
        Kind::EmptyDir {
            memory,
            size_limit_bytes,
        } => {
            std::fs::create_dir_all(path).map_err(io(path))?;
            if *memory {
                mount_tmpfs(path, *size_limit_bytes)?;
            }
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))
                .map_err(io(path))?;
            Ok(false)
        }
        Kind::Files { memory, files } => {
            std::fs::create_dir_all(path).map_err(io(path))?;
            if *memory {
                mount_tmpfs(path, None)?;
            }
            write_atomic(path, files)
        }
    }
}

/// Unmounts everything under a pod's directory and removes it.
pub fn release(pod_dir: &Path) -> Result<()> {
    let mut mounted = mounts_under(pod_dir);
    // Deepest first.
    mounted.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for mount in mounted {
        nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH).map_err(|source| {
            Error::Mount {
                path: mount.display().to_string(),
                source,
            }
        })?;
    }
    match std::fs::remove_dir_all(pod_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            path: pod_dir.display().to_string(),
            source: e,
        }),
    }
}
