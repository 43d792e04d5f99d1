//! Build script of skiff-core: derives the protobuf schema of the Kubernetes API types that
//! `protobuf` decodes request bodies with.
//!
//! Kubernetes' `generated.proto` files are not shipped in any crate, so the schema is rebuilt
//! from two dependencies that are:
//! - `k8s-pb` (prost code generated from those `.proto` files) gives each message's fields with
//!   their tag numbers and wire types;
//! - `k8s-openapi` (code generated from the OpenAPI document) gives each type's JSON field
//!   names, which are the names the `.proto` files use (prost turned them into snake_case, which
//!   loses the case of `podIP` or `podCIDRs`), and which fields are required.
//!
//! The sources are found with `cargo metadata` (falling back to `$CARGO_HOME/registry/src`) and
//! turned into `$OUT_DIR/protobuf_schema.rs`: a table of messages sorted by lowercase full name.
//! Nothing from either crate is copied into this repository.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    println!("cargo::rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let lock_file = manifest_dir.join("../../Cargo.lock");
    if lock_file.exists() {
        println!("cargo::rerun-if-changed={}", lock_file.display());
    }
    let k8s_pb = locate("k8s-pb", &manifest_dir)?;
    let k8s_openapi = locate("k8s-openapi", &manifest_dir)?;
    let enabled = enabled_version().unwrap_or_else(|| "v1_33".into());
    let newest = newest_version(&k8s_openapi.join("src")).unwrap_or_else(|| enabled.clone());

    // Names and required fields of the version Skiff serves; fields only newer versions know
    // (and k8s-pb may already have) are named from the newest one.
    let mut json_names = JsonNames::new();
    for version in [&newest, &enabled] {
        let openapi_dir = k8s_openapi.join("src").join(version);
        let names = read_openapi(&openapi_dir)
            .map_err(|error| format!("reading {}: {error}", openapi_dir.display()))?;
        for (type_name, fields) in names {
            json_names.entry(type_name).or_default().extend(fields);
        }
    }
    let prost_dir = k8s_pb.join("src");
    let messages = read_prost(&prost_dir)
        .map_err(|error| format!("reading {}: {error}", prost_dir.display()))?;
    let table = render(&messages, &json_names)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("protobuf_schema.rs");
    std::fs::write(out, table)?;
    Ok(())
}

/// The directory of the package `name` in the dependency graph.
fn locate(name: &str, manifest_dir: &Path) -> Result<PathBuf, Error> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = manifest_dir.join("Cargo.toml");
    for offline in [true, false] {
        let mut command = Command::new(&cargo);
        command
            .args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(&manifest);
        if let Ok(target) = std::env::var("TARGET") {
            command.args(["--filter-platform", &target]);
        }
        if offline {
            command.arg("--offline");
        }
        let Ok(output) = command.output() else {
            continue;
        };
        if !output.status.success() {
            continue;
        }
        let metadata = String::from_utf8_lossy(&output.stdout);
        if let Some(dir) = manifest_dir_of(&metadata, name) {
            return Ok(dir);
        }
    }
    // Fallback: the registry cache, newest version first.
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|home| PathBuf::from(home).join(".cargo")))?;
    let mut candidates = Vec::new();
    for registry in std::fs::read_dir(home.join("registry/src"))? {
        for package in std::fs::read_dir(registry?.path())? {
            let path = package?.path();
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if file_name
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with("-0."))
            {
                candidates.push(path);
            }
        }
    }
    candidates.sort();
    candidates
        .pop()
        .ok_or_else(|| format!("cannot find the sources of {name}").into())
}

/// Finds `"name":"<name>"` in `cargo metadata` output and the `manifest_path` that follows.
fn manifest_dir_of(metadata: &str, name: &str) -> Option<PathBuf> {
    let start = metadata.find(&format!("{{\"name\":\"{name}\",\"version\""))?;
    let rest = &metadata[start..];
    let path_start = rest.find("\"manifest_path\":\"")? + "\"manifest_path\":\"".len();
    let path_end = rest[path_start..].find('"')?;
    let manifest = PathBuf::from(rest[path_start..path_start + path_end].replace("\\\\", "\\"));
    manifest.parent().map(Path::to_path_buf)
}

/// The `v1_*` module of k8s-openapi that its enabled feature selects, from the metadata its
/// build script passes to its dependents (`(1 << 16) | (minor << 8)`).
fn enabled_version() -> Option<String> {
    std::env::vars().find_map(|(name, value)| {
        let is_version = name.starts_with("DEP_K8S_OPENAPI") && name.ends_with("_VERSION");
        let encoded: u32 = value.parse().ok()?;
        is_version.then(|| format!("v1_{}", (encoded >> 8) & 0xff))
    })
}

/// The newest `v1_*` module of k8s-openapi: JSON names only ever get added, so the newest
/// version knows every field k8s-pb may have.
fn newest_version(src: &Path) -> Option<String> {
    let versions = std::fs::read_dir(src).ok()?.filter_map(|entry| {
        let name = entry.ok()?.file_name().to_string_lossy().into_owned();
        let minor: u32 = name.strip_prefix("v1_")?.parse().ok()?;
        Some((minor, name))
    });
    versions.max().map(|(_, name)| name)
}

/// Lowercase letters and digits only: how a JSON name and prost's snake_case name compare.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// normalized type name (`api.core.v1.nodespec`) → normalized field name → (JSON name, required).
type JsonNames = BTreeMap<String, BTreeMap<String, (String, bool)>>;

fn read_openapi(dir: &Path) -> Result<JsonNames, Error> {
    let mut names = JsonNames::new();
    for file in rust_files(dir)? {
        let source = std::fs::read_to_string(&file)?;
        let Some(definition) = source
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("// Generated from definition "))
        else {
            continue;
        };
        let Some(definition) = definition.trim().strip_prefix("io.k8s.") else {
            continue;
        };
        let (package, type_name) = definition.rsplit_once('.').unwrap_or(("", definition));
        let key = format!(
            "{}.{}",
            package.replace('-', "_"),
            type_name.to_ascii_lowercase()
        );
        let mut optional_fields = BTreeMap::new();
        let mut in_struct = false;
        let mut fields = BTreeMap::new();
        for line in source.lines() {
            let trimmed = line.trim();
            if line.starts_with("pub struct ") {
                in_struct = !trimmed.ends_with(';');
            } else if in_struct && line.starts_with('}') {
                in_struct = false;
            } else if in_struct && let Some(field) = trimmed.strip_prefix("pub ") {
                if let Some((rust_name, rust_type)) = field.split_once(':') {
                    optional_fields.insert(
                        rust_name.trim().to_owned(),
                        rust_type.trim().starts_with("Option<"),
                    );
                }
            } else if let Some((json, rust)) = trimmed.split_once("\" => Field::Key_") {
                let json = json.trim_start_matches('"');
                let rust = rust.trim_end_matches(',');
                let required = optional_fields.get(rust).is_some_and(|optional| !optional);
                fields.insert(normalize(json), (json.to_owned(), required));
            }
        }
        names.insert(key, fields);
    }
    Ok(names)
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

struct Message {
    /// Module path and name, e.g. `api.core.v1.ConfigMap`.
    package: String,
    name: String,
    fields: Vec<Field>,
}

struct Field {
    tag: u32,
    rust_name: String,
    /// `string`, `int32`, `int64`, `bool`, `double`, `bytes`, `message`, or `map:<value>`.
    kind: String,
    repeated: bool,
    /// Normalized full name of the message type, for messages and maps of messages.
    message: Option<String>,
}

fn read_prost(dir: &Path) -> Result<Vec<Message>, Error> {
    let mut messages = Vec::new();
    for file in rust_files(dir)? {
        let Ok(relative) = file.strip_prefix(dir) else {
            continue;
        };
        let module: Vec<String> = relative
            .parent()
            .map(|parent| {
                parent
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let source = std::fs::read_to_string(&file)?;
        parse_module(&source, &module, &mut messages)?;
    }
    Ok(messages)
}

fn parse_module(source: &str, module: &[String], messages: &mut Vec<Message>) -> Result<(), Error> {
    let mut lines = source.lines().peekable();
    let mut is_message = false;
    let mut current: Option<Message> = None;
    let mut attribute: Option<String> = None;
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed.starts_with("#[derive(") {
            is_message = trimmed.contains("::prost::Message");
        } else if let Some(rest) = line.strip_prefix("pub struct ") {
            if is_message {
                let name = rest
                    .trim_end_matches("{}")
                    .trim_end_matches('{')
                    .trim()
                    .to_owned();
                let message = Message {
                    package: module.join("."),
                    name,
                    fields: Vec::new(),
                };
                if rest.trim_end().ends_with("{}") {
                    messages.push(message);
                } else {
                    current = Some(message);
                }
            }
            is_message = false;
        } else if line.starts_with('}') {
            messages.extend(current.take());
        } else if current.is_some() && trimmed.starts_with("#[prost(") {
            attribute = Some(trimmed.to_owned());
        } else if let (Some(message), Some(attr), Some(declaration)) = (
            current.as_mut(),
            attribute.as_ref(),
            trimmed.strip_prefix("pub "),
        ) {
            let mut declaration = declaration.to_owned();
            let balanced = |text: &str| text.matches('<').count() == text.matches('>').count();
            while !declaration.ends_with(',') || !balanced(&declaration) {
                match lines.next() {
                    Some(next) => declaration.push_str(next.trim()),
                    None => break,
                }
            }
            message
                .fields
                .push(parse_field(attr, &declaration, module)?);
            attribute = None;
        }
    }
    Ok(())
}

fn parse_field(attribute: &str, declaration: &str, module: &[String]) -> Result<Field, Error> {
    let inner = attribute
        .trim_start_matches("#[prost(")
        .trim_end_matches(")]");
    let tag = inner
        .split("tag = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| format!("no tag in {attribute}"))?
        .parse()?;
    let (rust_name, rust_type) = declaration
        .split_once(':')
        .ok_or_else(|| format!("bad field {declaration}"))?;
    let rust_name = rust_name.trim().trim_start_matches("r#").to_owned();
    let first = inner.split(',').next().unwrap_or_default().trim();
    let repeated = inner.contains("repeated");
    let (kind, message) = if let Some(map) = inner.strip_prefix("btree_map = \"string, ") {
        let value = map.split('"').next().unwrap_or_default().trim();
        let message = (value == "message")
            .then(|| resolve(rust_type, module))
            .flatten();
        (format!("map:{value}"), message)
    } else if first == "message" {
        ("message".to_owned(), resolve(rust_type, module))
    } else {
        let scalar = first.split_whitespace().next().unwrap_or_default();
        (scalar.to_owned(), None)
    };
    if (kind == "message" || kind == "map:message") && message.is_none() {
        return Err(format!("cannot resolve the type of {declaration}").into());
    }
    Ok(Field {
        tag,
        rust_name,
        kind,
        repeated,
        message,
    })
}

/// The normalized full name of the message a field declaration refers to.
fn resolve(rust_type: &str, module: &[String]) -> Option<String> {
    let compact: String = rust_type.chars().filter(|c| !c.is_whitespace()).collect();
    let path = compact
        .split(['<', '>', ','])
        .rfind(|token| !token.is_empty() && !token.starts_with("::"))?;
    let mut segments: Vec<&str> = path.split("::").collect();
    let name = segments.pop()?;
    let mut package: Vec<String> = module.to_vec();
    for segment in segments {
        if segment == "super" {
            package.pop();
        } else {
            package.push(segment.to_owned());
        }
    }
    Some(format!(
        "{}.{}",
        package.join("."),
        name.to_ascii_lowercase()
    ))
}

fn render(messages: &[Message], json_names: &JsonNames) -> Result<String, Error> {
    let mut by_name: BTreeMap<String, &Message> = BTreeMap::new();
    for message in messages {
        by_name.insert(
            format!("{}.{}", message.package, message.name.to_ascii_lowercase()),
            message,
        );
    }
    let index: BTreeMap<&str, usize> = by_name
        .keys()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    let mut out =
        String::from("// Generated by build.rs from the k8s-pb and k8s-openapi sources.\n");
    writeln!(out, "static MESSAGES: &[Message] = &[")?;
    for (full_name, message) in &by_name {
        let names = json_names.get(full_name.as_str());
        writeln!(out, "    Message {{ name: {full_name:?}, fields: &[")?;
        let mut fields: Vec<&Field> = message.fields.iter().collect();
        fields.sort_by_key(|field| field.tag);
        for field in fields {
            let known = names.and_then(|names| names.get(&normalize(&field.rust_name)));
            let (json, required) = known
                .cloned()
                .unwrap_or_else(|| (lower_camel_case(&field.rust_name), false));
            // An embedded Go struct (`json:",inline"`) is a message field named after its type
            // (`localObjectReference`, `volumeSource`; `handler` for `ProbeHandler`) that the
            // JSON type lacks: its fields belong to the parent in JSON.
            let message_type = field
                .message
                .as_deref()
                .and_then(|name| name.rsplit('.').next());
            let inline = names.is_some()
                && known.is_none()
                && field.kind == "message"
                && !field.repeated
                && message_type.is_some_and(|message_type| {
                    message_type.ends_with(&normalize(&field.rust_name))
                });
            let target = |name: &Option<String>| -> Result<usize, Error> {
                let name = name.as_deref().unwrap_or_default();
                index
                    .get(name)
                    .copied()
                    .ok_or_else(|| format!("unknown message {name}").into())
            };
            let kind = match field.kind.as_str() {
                "string" => "Kind::String".to_owned(),
                "bytes" => "Kind::Bytes".to_owned(),
                "int32" => "Kind::Int32".to_owned(),
                "int64" => "Kind::Int64".to_owned(),
                "bool" => "Kind::Bool".to_owned(),
                "double" => "Kind::Double".to_owned(),
                "message" => format!("Kind::Message({})", target(&field.message)?),
                "map:string" => "Kind::MapOfStrings".to_owned(),
                "map:bytes" => "Kind::MapOfBytes".to_owned(),
                "map:message" => format!("Kind::MapOfMessages({})", target(&field.message)?),
                other => {
                    return Err(
                        format!("unsupported protobuf field kind {other} in {full_name}").into(),
                    );
                }
            };
            writeln!(
                out,
                "        Field {{ tag: {}, name: {json:?}, kind: {kind}, repeated: {}, required: {required}, inline: {inline} }},{}",
                field.tag,
                field.repeated,
                if names.is_some() && known.is_none() && !inline {
                    " // name guessed: not in k8s-openapi"
                } else {
                    ""
                }
            )?;
        }
        writeln!(out, "    ] }},")?;
    }
    writeln!(out, "];")?;
    Ok(out)
}

fn lower_camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    for (i, part) in snake.split('_').enumerate() {
        let mut chars = part.chars();
        if i == 0 {
            out.push_str(part);
        } else if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}
