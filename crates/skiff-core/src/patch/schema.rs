//! Per-field list and map semantics of the built-in kinds: the data that the strategic merge
//! patch and server-side apply need and that JSON alone cannot tell.
//!
//! For each field that is not "merge maps, replace lists", the table records two things that
//! Kubernetes keeps separately:
//! - [`Strategy`]: the `patchStrategy`/`patchMergeKey` struct tags of k8s.io/api, used by the
//!   strategic merge patch (containers merge by `name`, Service ports by `port`, finalizers
//!   merge as a set of strings, a PodDisruptionBudget's selector is replaced whole, ...).
//! - [`ListType`]: the `+listType`/`+listMapKey` markers (`x-kubernetes-list-type` in OpenAPI),
//!   used by server-side apply (container ports are keyed by `containerPort` *and*
//!   `protocol`; a Job's conditions are atomic for apply yet merge by `type` in a patch).
//!
//! Invariants: every path not in the table behaves like JSON merge patch for objects and is
//! atomic (replaced whole) for lists, which is exactly how custom resources and fields without
//! metadata behave. `$retainKeys` needs no entry: like kube-apiserver, the strategic merge patch
//! honours the directive wherever a client sends it. The table is written from the Kubernetes
//! API types of v1.33; it covers the fields that clients actually patch, not every type.

#[cfg(test)]
mod tests;

/// The schema of a JSON object: its fields that need more than the default semantics.
#[derive(Debug)]
pub struct Type {
    /// Fields with list or map semantics of their own, or with such fields below them.
    pub fields: &'static [Field],
    /// Server-side apply owns the whole object as one value (`+structType=atomic`), as for
    /// label selectors.
    pub atomic: bool,
}

/// One field of a [`Type`].
#[derive(Debug)]
pub struct Field {
    /// The JSON name.
    pub name: &'static str,
    /// How the strategic merge patch treats the field.
    pub strategy: Strategy,
    /// How server-side apply treats the field when it is a list.
    pub list_type: ListType,
    /// The schema of the field's value (an object) or of each element (a list of objects).
    pub schema: Option<&'static Type>,
}

/// `patchStrategy` / `patchMergeKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Objects merge field by field; lists are replaced whole.
    Default,
    /// Lists merge: lists of objects by the value of the merge key, lists of strings or
    /// numbers as a union (`None`).
    Merge(Option<&'static str>),
    /// The patch value replaces the field whole, even for objects.
    Replace,
}

/// `x-kubernetes-list-type` for server-side apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// The list is one value, owned and replaced whole.
    Atomic,
    /// A list of distinct scalars; each value is owned separately.
    Set,
    /// A list of objects identified by these key fields; each element is owned separately.
    Map(&'static [Key]),
}

/// A key field of a list map, with the value the API server defaults it to when absent (so
/// `{"containerPort": 80}` and `{"containerPort": 80, "protocol": "TCP"}` are one element).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub default: Option<&'static str>,
}

impl Type {
    /// The entry for the field `name`, if the table has one.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|field| field.name == name)
    }
}

/// The schema of the built-in kind `kind` in API group `group` ("" for core), or `None` for
/// kinds the table does not know (custom resources).
pub fn for_kind(group: &str, kind: &str) -> Option<&'static Type> {
    let schema = match (group, kind) {
        ("", "Pod") => &POD,
        ("", "PodTemplate") => &POD_TEMPLATE,
        ("", "ReplicationController") => &REPLICATION_CONTROLLER,
        ("", "Service") => &SERVICE,
        ("", "Node") => &NODE,
        ("", "Namespace" | "PersistentVolumeClaim" | "ComponentStatus") => &WITH_CONDITIONS,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => &WORKLOAD,
        ("batch", "Job") => &JOB,
        ("batch", "CronJob") => &CRON_JOB,
        ("autoscaling", "HorizontalPodAutoscaler") => &WITH_CONDITIONS,
        ("policy", "PodDisruptionBudget") => &POD_DISRUPTION_BUDGET,
        ("networking.k8s.io", "ServiceCIDR") => &WITH_CONDITIONS,
        ("storage.k8s.io", "CSINode") => &CSI_NODE,
        (
            ""
            | "apps"
            | "batch"
            | "autoscaling"
            | "policy"
            | "networking.k8s.io"
            | "discovery.k8s.io"
            | "coordination.k8s.io"
            | "rbac.authorization.k8s.io"
            | "storage.k8s.io"
            | "scheduling.k8s.io"
            | "events.k8s.io"
            | "node.k8s.io"
            | "authentication.k8s.io"
            | "authorization.k8s.io"
            | "certificates.k8s.io"
            | "admissionregistration.k8s.io"
            | "apiextensions.k8s.io"
            | "flowcontrol.apiserver.k8s.io",
            _,
        ) => &OBJECT,
        _ => return None,
    };
    Some(schema)
}

/// The schema every object shares: only its metadata is known. Server-side apply uses it for
/// custom resources.
pub static OBJECT: Type = Type::of(&[object("metadata", &OBJECT_META)]);

const fn object(name: &'static str, schema: &'static Type) -> Field {
    Field {
        name,
        strategy: Strategy::Default,
        list_type: ListType::Atomic,
        schema: Some(schema),
    }
}

/// A list that merges by `merge_key` in a patch and is a list map keyed by `keys` for apply.
const fn keyed(
    name: &'static str,
    merge_key: &'static str,
    keys: &'static [Key],
    schema: Option<&'static Type>,
) -> Field {
    Field {
        name,
        strategy: Strategy::Merge(Some(merge_key)),
        list_type: ListType::Map(keys),
        schema,
    }
}

/// A list that merges by `merge_key` in a patch but is atomic for apply.
const fn keyed_atomic(name: &'static str, merge_key: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::Merge(Some(merge_key)),
        list_type: ListType::Atomic,
        schema: None,
    }
}

/// A list replaced whole by a patch but a list map for apply.
const fn list_map(name: &'static str, keys: &'static [Key]) -> Field {
    Field {
        name,
        strategy: Strategy::Default,
        list_type: ListType::Map(keys),
        schema: None,
    }
}

/// A list of strings merged as a set by both.
const fn set(name: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::Merge(None),
        list_type: ListType::Set,
        schema: None,
    }
}

const fn key(name: &'static str) -> Key {
    Key {
        name,
        default: None,
    }
}

const NAME: &[Key] = &[key("name")];
const TYPE: &[Key] = &[key("type")];
const IP: &[Key] = &[key("ip")];
const PROTOCOL_TCP: Key = Key {
    name: "protocol",
    default: Some("TCP"),
};

impl Type {
    const fn of(fields: &'static [Field]) -> Type {
        Type {
            fields,
            atomic: false,
        }
    }
}

static ATOMIC: Type = Type {
    fields: &[],
    atomic: true,
};

static OBJECT_META: Type = Type::of(&[
    set("finalizers"),
    keyed("ownerReferences", "uid", &[key("uid")], None),
]);

static WITH_CONDITIONS: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    object("status", &CONDITIONS),
]);

static CONDITIONS: Type = Type::of(&[keyed("conditions", "type", TYPE, None)]);

static POD: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    object("spec", &POD_SPEC),
    object("status", &POD_STATUS),
]);

static POD_TEMPLATE: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    object("template", &POD_TEMPLATE_SPEC),
]);

static POD_TEMPLATE_SPEC: Type =
    Type::of(&[object("metadata", &OBJECT_META), object("spec", &POD_SPEC)]);

static POD_SPEC: Type = Type::of(&[
    keyed("volumes", "name", NAME, None),
    keyed("initContainers", "name", NAME, Some(&CONTAINER)),
    keyed("containers", "name", NAME, Some(&CONTAINER)),
    keyed("ephemeralContainers", "name", NAME, Some(&CONTAINER)),
    keyed("imagePullSecrets", "name", NAME, None),
    keyed("hostAliases", "ip", IP, None),
    keyed(
        "topologySpreadConstraints",
        "topologyKey",
        &[key("topologyKey"), key("whenUnsatisfiable")],
        Some(&TOPOLOGY_SPREAD_CONSTRAINT),
    ),
    keyed("schedulingGates", "name", NAME, None),
    keyed("resourceClaims", "name", NAME, None),
]);

static CONTAINER: Type = Type::of(&[
    keyed(
        "ports",
        "containerPort",
        &[key("containerPort"), PROTOCOL_TCP],
        None,
    ),
    keyed("env", "name", NAME, Some(&ENV_VAR)),
    keyed("volumeMounts", "mountPath", &[key("mountPath")], None),
    keyed("volumeDevices", "devicePath", &[key("devicePath")], None),
    object("resources", &RESOURCE_REQUIREMENTS),
]);

static ENV_VAR: Type = Type::of(&[object("valueFrom", &ENV_VAR_SOURCE)]);

static ENV_VAR_SOURCE: Type = Type::of(&[
    object("fieldRef", &ATOMIC),
    object("resourceFieldRef", &ATOMIC),
    object("configMapKeyRef", &ATOMIC),
    object("secretKeyRef", &ATOMIC),
]);

static RESOURCE_REQUIREMENTS: Type = Type::of(&[list_map("claims", NAME)]);

static TOPOLOGY_SPREAD_CONSTRAINT: Type = Type::of(&[object("labelSelector", &ATOMIC)]);

static POD_STATUS: Type = Type::of(&[
    keyed("conditions", "type", TYPE, None),
    keyed("podIPs", "ip", IP, None),
    keyed_atomic("hostIPs", "ip"),
    keyed("resourceClaimStatuses", "name", NAME, None),
]);

static REPLICATION_CONTROLLER: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    object("spec", &REPLICATION_CONTROLLER_SPEC),
    object("status", &CONDITIONS),
]);

static REPLICATION_CONTROLLER_SPEC: Type = Type::of(&[object("template", &POD_TEMPLATE_SPEC)]);

static SERVICE: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    object("spec", &SERVICE_SPEC),
    object("status", &CONDITIONS),
]);

static SERVICE_SPEC: Type = Type::of(&[keyed("ports", "port", &[key("port"), PROTOCOL_TCP], None)]);

static SERVICE_ACCOUNT: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    keyed("secrets", "name", NAME, None),
]);

static NODE: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    object("spec", &NODE_SPEC),
    object("status", &NODE_STATUS),
]);

static NODE_SPEC: Type = Type::of(&[set("podCIDRs")]);

static NODE_STATUS: Type = Type::of(&[
    keyed("conditions", "type", TYPE, None),
    keyed("addresses", "type", TYPE, None),
]);

/// Deployments, ReplicaSets, StatefulSets and DaemonSets.
static WORKLOAD: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    object("spec", &WORKLOAD_SPEC),
    object("status", &CONDITIONS),
]);

static WORKLOAD_SPEC: Type = Type::of(&[
    object("selector", &ATOMIC),
    object("template", &POD_TEMPLATE_SPEC),
]);

static JOB: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    object("spec", &WORKLOAD_SPEC),
    object("status", &JOB_STATUS),
]);

static JOB_STATUS: Type = Type::of(&[keyed_atomic("conditions", "type")]);

static CRON_JOB: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    object("spec", &CRON_JOB_SPEC),
]);

static CRON_JOB_SPEC: Type = Type::of(&[object("jobTemplate", &JOB_TEMPLATE)]);

static JOB_TEMPLATE: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    object("spec", &WORKLOAD_SPEC),
]);

static POD_DISRUPTION_BUDGET: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    object("spec", &POD_DISRUPTION_BUDGET_SPEC),
    object("status", &CONDITIONS),
]);

static POD_DISRUPTION_BUDGET_SPEC: Type = Type::of(&[Field {
    name: "selector",
    strategy: Strategy::Replace,
    list_type: ListType::Atomic,
    schema: Some(&ATOMIC),
}]);

static CSI_NODE: Type = Type::of(&[
    object("metadata", &OBJECT_META),
    object("spec", &CSI_NODE_SPEC),
]);

static CSI_NODE_SPEC: Type = Type::of(&[keyed("drivers", "name", NAME, None)]);
