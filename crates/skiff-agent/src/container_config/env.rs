//! Environment variables: `envFrom` first, then `env` (later definitions win), each value with
//! `$(VAR)` references to earlier variables expanded, as the kubelet does.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{Context, Error, Result};
use crate::downward;

/// Expands `$(NAME)` from `vars`; `$$` is a literal `$`; unknown references stay as written.
pub fn expand(input: &str, vars: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + end];
                        match vars.get(name) {
                            Some(value) => out.push_str(value),
                            None => out.push_str(&input[i..i + 3 + end]),
                        }
                        i += 3 + end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        // Copy one UTF-8 character.
        let ch_len = input[i..].chars().next().map(char::len_utf8).unwrap_or(1);
        out.push_str(&input[i..i + ch_len]);
        i += ch_len;
    }
    out
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

fn set(vars: &mut Vec<(String, String)>, name: String, value: String) {
    if let Some(existing) = vars.iter_mut().find(|(k, _)| *k == name) {
        existing.1 = value;
    } else {
        vars.push((name, value));
    }
}

fn secret_value(data: Option<&k8s_openapi::ByteString>) -> Option<String> {
    data.map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

pub fn build(pod: &Pod, container: &Container, ctx: &Context<'_>) -> Result<Vec<(String, String)>> {
    let namespace = crate::pod::namespace(pod);
    let mut vars: Vec<(String, String)> = Vec::new();
    if let Some((host, port)) = &ctx.cluster.kubernetes_service {
        set(&mut vars, "KUBERNETES_SERVICE_HOST".into(), host.clone());
        set(
            &mut vars,
            "KUBERNETES_SERVICE_PORT".into(),
            port.to_string(),
        );
        set(
            &mut vars,
            "KUBERNETES_SERVICE_PORT_HTTPS".into(),
            port.to_string(),
        );
        set(
            &mut vars,
            "KUBERNETES_PORT".into(),
            format!("tcp://{host}:{port}"),
        );
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match ctx.objects.config_maps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        let name = format!("{prefix}{k}");
                        if valid_env_name(&name) {
                            set(&mut vars, name, v.clone());
                        }
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(Error::Config(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match ctx.objects.secrets.get(&r.name) {
                Some(secret) => {
                    for (k, v) in secret.data.iter().flatten() {
                        let name = format!("{prefix}{k}");
                        if valid_env_name(&name) {
                            set(&mut vars, name, String::from_utf8_lossy(&v.0).into_owned());
                        }
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(Error::Config(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => {
                let lookup: HashMap<&str, &str> =
                    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(var.value.as_deref().unwrap_or(""), &lookup)
            }
            Some(source) => {
                if let Some(r) = &source.config_map_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match ctx.objects.config_maps.get(&r.name) {
                        Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(Error::Config(format!(
                                    "couldn't find key {} in ConfigMap {namespace}/{}",
                                    r.key, r.name
                                )));
                            }
                        },
                        None if optional => continue,
                        None => {
                            return Err(Error::Config(format!(
                                "configmap \"{}\" not found",
                                r.name
                            )));
                        }
                    }
                } else if let Some(r) = &source.secret_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match ctx.objects.secrets.get(&r.name) {
                        Some(secret) => {
                            match secret_value(secret.data.as_ref().and_then(|d| d.get(&r.key))) {
                                Some(v) => v,
                                None if optional => continue,
                                None => {
                                    return Err(Error::Config(format!(
                                        "couldn't find key {} in Secret {namespace}/{}",
                                        r.key, r.name
                                    )));
                                }
                            }
                        }
                        None if optional => continue,
                        None => {
                            return Err(Error::Config(format!("secret \"{}\" not found", r.name)));
                        }
                    }
                } else if let Some(r) = &source.field_ref {
                    downward::field(pod, &r.field_path, ctx.node, false).map_err(Error::Config)?
                } else if let Some(r) = &source.resource_field_ref {
                    let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                        Some(name) => pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.containers.iter().find(|c| c.name == name))
                            .ok_or_else(|| {
                                Error::Config(format!("container \"{name}\" not found"))
                            })?,
                        None => container,
                    };
                    downward::resource(target, &r.resource, r.divisor.as_ref(), ctx.node)
                        .map_err(Error::Config)?
                } else {
                    String::new()
                }
            }
        };
        set(&mut vars, var.name.clone(), value);
    }
    Ok(vars)
}
