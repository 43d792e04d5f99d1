//! Pod volumes: a pure layout step decides, for each volume, where it lives on the node and
//! (for configMap, secret, downwardAPI and projected volumes) which files it holds with which
//! modes; [`writer`] makes it so on disk: directories, tmpfs mounts (secrets and projected
//! volumes never touch the node's disk), and the kubelet's atomic `..data` symlink swap so a
//! container sees a changed ConfigMap or Secret all at once.
//!
//! Layout: `<data_dir>/pods/<uid>/volumes/<plugin>/<volume name>`; hostPath and local
//! PersistentVolumes are used where they are.

pub mod writer;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{KeyToPath, Pod, Volume};

use crate::container_config::{Objects, VolumeSource};
use crate::downward::{self, NodeFacts};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The kubelet's `FailedMount`: the pod waits in ContainerCreating.
    #[error("MountVolume.SetUp failed for volume \"{volume}\": {detail}")]
    Mount { volume: String, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub const DEFAULT_MODE: u32 = 0o644;
pub const DEFAULT_TOKEN_EXPIRATION: i64 = 3600;

/// A file of a file-backed volume, relative to the volume's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory on the node's disk, or a tmpfs (`medium: Memory`).
    EmptyDir {
        memory: bool,
        size_limit_bytes: Option<i64>,
    },
    /// A path on the node, checked or created per its `type`.
    HostPath { host_type: String },
    /// Files written atomically; on tmpfs when `memory`.
    Files { memory: bool, files: Vec<File> },
    /// A PersistentVolumeClaim's bound local volume (a directory on the node).
    Claim,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumePlan {
    pub name: String,
    pub host_path: String,
    pub read_only: bool,
    pub kind: Kind,
}

/// A ServiceAccount token the pod needs, obtained from the API (`serviceaccounts/token`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenRequest {
    pub service_account: String,
    pub audience: Option<String>,
    pub expiration_seconds: i64,
}

/// Everything the pod's volumes and environment reference in the API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
    pub tokens: BTreeSet<TokenRequest>,
    pub claims: BTreeSet<String>,
}

/// The objects a layout is computed from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub objects: Objects,
    pub tokens: HashMap<TokenRequest, String>,
    /// Claim name → the host directory of its bound PersistentVolume (`None`: not bound).
    pub claims: HashMap<String, Option<String>>,
}

fn service_account(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_string())
}

/// What the pod references, so the shell can fetch it before planning.
pub fn requirements(pod: &Pod) -> Requirements {
    let mut req = Requirements::default();
    let Some(spec) = pod.spec.as_ref() else {
        return req;
    };
    for volume in spec.volumes.iter().flatten() {
        if let Some(cm) = &volume.config_map {
            req.config_maps.insert(cm.name.clone());
        }
        if let Some(secret) = &volume.secret
            && let Some(name) = &secret.secret_name
        {
            req.secrets.insert(name.clone());
        }
        if let Some(claim) = &volume.persistent_volume_claim {
            req.claims.insert(claim.claim_name.clone());
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(cm) = &source.config_map {
                req.config_maps.insert(cm.name.clone());
            }
            if let Some(secret) = &source.secret {
                req.secrets.insert(secret.name.clone());
            }
            if let Some(token) = &source.service_account_token {
                req.tokens.insert(TokenRequest {
                    service_account: service_account(pod),
                    audience: token.audience.clone().filter(|a| !a.is_empty()),
                    expiration_seconds: token
                        .expiration_seconds
                        .unwrap_or(DEFAULT_TOKEN_EXPIRATION),
                });
            }
        }
    }
    for container in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for from in container.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                req.config_maps.insert(r.name.clone());
            }
            if let Some(r) = &from.secret_ref {
                req.secrets.insert(r.name.clone());
            }
        }
        for var in container.env.iter().flatten() {
            if let Some(source) = &var.value_from {
                if let Some(r) = &source.config_map_key_ref {
                    req.config_maps.insert(r.name.clone());
                }
                if let Some(r) = &source.secret_key_ref {
                    req.secrets.insert(r.name.clone());
                }
            }
        }
    }
    req
}

fn mount_err(volume: &str, detail: impl Into<String>) -> Error {
    Error::Mount {
        volume: volume.to_string(),
        detail: detail.into(),
    }
}

fn valid_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.split('/').any(|p| p == ".." || p.starts_with(".."))
        && !path.contains('\0')
}

/// Files from a key → bytes map, per `items` (or every key) and modes.
#[allow(clippy::too_many_arguments)] // one call shape for four volume sources
fn key_files(
    volume: &str,
    kind: &str,
    object: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
    prefix: &str,
    out: &mut Vec<File>,
) -> Result<()> {
    let default_mode = default_mode
        .map(|m| (m as u32) & 0o777)
        .unwrap_or(DEFAULT_MODE);
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                let Some(bytes) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(mount_err(
                        volume,
                        format!(
                            "configuration key \"{}\" not found in {kind} {object}",
                            item.key
                        ),
                    ));
                };
                if !valid_relative(&item.path) {
                    return Err(mount_err(volume, format!("invalid path \"{}\"", item.path)));
                }
                out.push(File {
                    path: format!("{prefix}{}", item.path),
                    data: bytes.clone(),
                    mode: item
                        .mode
                        .map(|m| (m as u32) & 0o777)
                        .unwrap_or(default_mode),
                });
            }
        }
        _ => {
            for (key, bytes) in data {
                if !valid_relative(key) {
                    continue;
                }
                out.push(File {
                    path: format!("{prefix}{key}"),
                    data: bytes.clone(),
                    mode: default_mode,
                });
            }
        }
    }
    Ok(())
}

fn config_map_data(sources: &Sources, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let cm = sources.objects.config_maps.get(name)?;
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        data.insert(k.clone(), v.0.clone());
    }
    Some(data)
}

fn secret_data(sources: &Sources, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let secret = sources.objects.secrets.get(name)?;
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    Some(data)
}

fn downward_files(
    pod: &Pod,
    volume: &str,
    items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    facts: &NodeFacts,
    out: &mut Vec<File>,
) -> Result<()> {
    let default_mode = default_mode
        .map(|m| (m as u32) & 0o777)
        .unwrap_or(DEFAULT_MODE);
    for item in items {
        if !valid_relative(&item.path) {
            return Err(mount_err(volume, format!("invalid path \"{}\"", item.path)));
        }
        let value = if let Some(field) = &item.field_ref {
            downward::field(pod, &field.field_path, facts, true)
                .map_err(|e| mount_err(volume, e))?
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.clone().unwrap_or_default();
            let container = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == name))
                .ok_or_else(|| mount_err(volume, format!("container \"{name}\" not found")))?;
            downward::resource(container, &r.resource, r.divisor.as_ref(), facts)
                .map_err(|e| mount_err(volume, e))?
        } else {
            String::new()
        };
        out.push(File {
            path: item.path.clone(),
            data: value.into_bytes(),
            mode: item
                .mode
                .map(|m| (m as u32) & 0o777)
                .unwrap_or(default_mode),
        });
    }
    Ok(())
}

fn plan_volume(
    pod: &Pod,
    volume: &Volume,
    volumes_dir: &str,
    sources: &Sources,
    facts: &NodeFacts,
) -> Result<VolumePlan> {
    let name = &volume.name;
    let at = |plugin: &str| format!("{volumes_dir}/{plugin}/{name}");
    if let Some(empty) = &volume.empty_dir {
        return Ok(VolumePlan {
            name: name.clone(),
            host_path: at("empty-dir"),
            read_only: false,
            kind: Kind::EmptyDir {
                memory: empty.medium.as_deref() == Some("Memory"),
                size_limit_bytes: empty
                    .size_limit
                    .as_ref()
                    .and_then(downward::quantity)
                    .map(|v| v as i64),
            },
        });
    }
    if let Some(host) = &volume.host_path {
        return Ok(VolumePlan {
            name: name.clone(),
            host_path: host.path.clone(),
            read_only: false,
            kind: Kind::HostPath {
                host_type: host.type_.clone().unwrap_or_default(),
            },
        });
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        let path = match sources.claims.get(&claim.claim_name) {
            Some(Some(path)) => path.clone(),
            Some(None) => {
                return Err(mount_err(
                    name,
                    format!(
                        "persistentvolumeclaim \"{}\" is not bound to a local volume",
                        claim.claim_name
                    ),
                ));
            }
            None => {
                return Err(mount_err(
                    name,
                    format!("persistentvolumeclaim \"{}\" not found", claim.claim_name),
                ));
            }
        };
        return Ok(VolumePlan {
            name: name.clone(),
            host_path: path,
            read_only: claim.read_only.unwrap_or(false),
            kind: Kind::Claim,
        });
    }
    let mut files = Vec::new();
    let (plugin, memory) = if let Some(cm) = &volume.config_map {
        let optional = cm.optional.unwrap_or(false);
        match config_map_data(sources, &cm.name) {
            Some(data) => key_files(
                name,
                "ConfigMap",
                &cm.name,
                &data,
                cm.items.as_ref(),
                cm.default_mode,
                optional,
                "",
                &mut files,
            )?,
            None if optional => {}
            None => {
                return Err(mount_err(
                    name,
                    format!("configmap \"{}\" not found", cm.name),
                ));
            }
        }
        ("config-map", false)
    } else if let Some(secret) = &volume.secret {
        let secret_name = secret.secret_name.clone().unwrap_or_default();
        let optional = secret.optional.unwrap_or(false);
        match secret_data(sources, &secret_name) {
            Some(data) => key_files(
                name,
                "Secret",
                &secret_name,
                &data,
                secret.items.as_ref(),
                secret.default_mode,
                optional,
                "",
                &mut files,
            )?,
            None if optional => {}
            None => {
                return Err(mount_err(
                    name,
                    format!("secret \"{secret_name}\" not found"),
                ));
            }
        }
        ("secret", true)
    } else if let Some(d) = &volume.downward_api {
        downward_files(
            pod,
            name,
            d.items.as_deref().unwrap_or(&[]),
            d.default_mode,
            facts,
            &mut files,
        )?;
        ("downward-api", false)
    } else if let Some(projected) = &volume.projected {
        for source in projected.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                let optional = cm.optional.unwrap_or(false);
                match config_map_data(sources, &cm.name) {
                    Some(data) => key_files(
                        name,
                        "ConfigMap",
                        &cm.name,
                        &data,
                        cm.items.as_ref(),
                        projected.default_mode,
                        optional,
                        "",
                        &mut files,
                    )?,
                    None if optional => {}
                    None => {
                        return Err(mount_err(
                            name,
                            format!("configmap \"{}\" not found", cm.name),
                        ));
                    }
                }
            }
            if let Some(secret) = &source.secret {
                let optional = secret.optional.unwrap_or(false);
                match secret_data(sources, &secret.name) {
                    Some(data) => key_files(
                        name,
                        "Secret",
                        &secret.name,
                        &data,
                        secret.items.as_ref(),
                        projected.default_mode,
                        optional,
                        "",
                        &mut files,
                    )?,
                    None if optional => {}
                    None => {
                        return Err(mount_err(
                            name,
                            format!("secret \"{}\" not found", secret.name),
                        ));
                    }
                }
            }
            if let Some(d) = &source.downward_api {
                downward_files(
                    pod,
                    name,
                    d.items.as_deref().unwrap_or(&[]),
                    projected.default_mode,
                    facts,
                    &mut files,
                )?;
            }
            if let Some(token) = &source.service_account_token {
                let request = TokenRequest {
                    service_account: service_account(pod),
                    audience: token.audience.clone().filter(|a| !a.is_empty()),
                    expiration_seconds: token
                        .expiration_seconds
                        .unwrap_or(DEFAULT_TOKEN_EXPIRATION),
                };
                let value = sources.tokens.get(&request).ok_or_else(|| {
                    mount_err(
                        name,
                        format!(
                            "failed to fetch token for service account \"{}\"",
                            request.service_account
                        ),
                    )
                })?;
                if !valid_relative(&token.path) {
                    return Err(mount_err(name, format!("invalid path \"{}\"", token.path)));
                }
                files.push(File {
                    path: token.path.clone(),
                    data: value.clone().into_bytes(),
                    mode: projected
                        .default_mode
                        .map(|m| (m as u32) & 0o777)
                        .unwrap_or(0o600),
                });
            }
        }
        ("projected", true)
    } else {
        return Err(mount_err(name, "unsupported volume type"));
    };
    // Later sources win on the same path, as in the kubelet's projection.
    let mut seen = BTreeMap::new();
    for file in files {
        seen.insert(file.path.clone(), file);
    }
    Ok(VolumePlan {
        name: name.clone(),
        host_path: at(plugin),
        read_only: true,
        kind: Kind::Files {
            memory,
            files: seen.into_values().collect(),
        },
    })
}

/// The pod's volumes laid out under `pod_dir` (`<data_dir>/pods/<uid>`).
pub fn plan(
    pod: &Pod,
    pod_dir: &str,
    sources: &Sources,
    facts: &NodeFacts,
) -> Result<Vec<VolumePlan>> {
    let volumes_dir = format!("{}/volumes", pod_dir.trim_end_matches('/'));
    pod.spec
        .as_ref()
        .map(|s| {
            s.volumes
                .iter()
                .flatten()
                .map(|v| plan_volume(pod, v, &volumes_dir, sources, facts))
                .collect()
        })
        .unwrap_or_else(|| Ok(Vec::new()))
}

/// Where each planned volume is mounted from, for the container config step.
pub fn sources_of(plans: &[VolumePlan]) -> HashMap<String, VolumeSource> {
    plans
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                VolumeSource {
                    host_path: p.host_path.clone(),
                    read_only: p.read_only,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
