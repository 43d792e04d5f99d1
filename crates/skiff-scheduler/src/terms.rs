//! Compiled matchers: node selector terms (node affinity, PV node affinity), tolerations against
//! taints, and pod (anti-)affinity terms. Compiled once per pod, matched many times without
//! allocating.
//!
//! Invariants: a term that cannot be compiled (a bad operator or value) matches nothing, as in
//! Kubernetes; an empty list of node selector terms matches nothing; a toleration with an empty
//! key and operator `Exists` tolerates every taint of its effect (every taint if the effect is
//! empty too).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodAffinityTerm, Taint, Toleration,
};
use skiff_core::selector::{LabelSelector, Operator, Requirement};

/// A compiled `NodeSelector`: a node matches if any term matches.
#[derive(Debug, Clone, Default)]
pub struct NodeSelectorMatcher {
    terms: Vec<CompiledNodeTerm>,
}

#[derive(Debug, Clone)]
struct CompiledNodeTerm {
    labels: Vec<Requirement>,
    /// `matchFields` on `metadata.name`: (operator In/NotIn, values).
    fields: Vec<(bool, Vec<String>)>,
    valid: bool,
}

impl NodeSelectorMatcher {
    /// Compile a node selector; `None` (no required terms) is represented by `Option` outside.
    pub fn new(selector: &NodeSelector) -> Self {
        Self {
            terms: selector
                .node_selector_terms
                .iter()
                .map(compile_node_term)
                .collect(),
        }
    }

    /// Compile a list of terms (preferred scheduling terms use one term each).
    pub fn from_term(term: &NodeSelectorTerm) -> Self {
        Self {
            terms: vec![compile_node_term(term)],
        }
    }

    /// Whether a node with these labels and this name matches any term.
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().any(|term| {
            term.valid
                && !(term.labels.is_empty() && term.fields.is_empty())
                && term.labels.iter().all(|r| r.matches(labels))
                && term
                    .fields
                    .iter()
                    .all(|(is_in, values)| values.iter().any(|value| value == node_name) == *is_in)
        })
    }
}

fn compile_node_term(term: &NodeSelectorTerm) -> CompiledNodeTerm {
    let mut compiled = CompiledNodeTerm {
        labels: Vec::new(),
        fields: Vec::new(),
        valid: true,
    };
    for requirement in term.match_expressions.iter().flatten() {
        match compile_node_requirement(requirement) {
            Some(requirement) => compiled.labels.push(requirement),
            None => compiled.valid = false,
        }
    }
    for field in term.match_fields.iter().flatten() {
        let values = field.values.clone().unwrap_or_default();
        match (field.key.as_str(), field.operator.as_str()) {
            ("metadata.name", "In") if values.len() == 1 => compiled.fields.push((true, values)),
            ("metadata.name", "NotIn") if values.len() == 1 => {
                compiled.fields.push((false, values))
            }
            _ => compiled.valid = false,
        }
    }
    compiled
}

fn compile_node_requirement(requirement: &NodeSelectorRequirement) -> Option<Requirement> {
    let operator = match requirement.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::GreaterThan,
        "Lt" => Operator::LessThan,
        _ => return None,
    };
    let values = requirement.values.clone().unwrap_or_default();
    Requirement::new(&requirement.key, operator, values).ok()
}

/// Whether a toleration tolerates a taint (Kubernetes' `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref()
        && !effect.is_empty()
        && effect != taint.effect
    {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// The first taint with one of `effects` that no toleration tolerates.
pub fn first_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effects: &[&str],
) -> Option<&'a Taint> {
    taints.iter().find(|taint| {
        effects.contains(&taint.effect.as_str())
            && !tolerations
                .iter()
                .any(|toleration| tolerates(toleration, taint))
    })
}

/// A compiled pod (anti-)affinity term.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub selector: LabelSelector,
    /// Namespaces named by the term (the pod's own when none are named and no selector is set).
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<LabelSelector>,
    pub topology_key: String,
}

impl AffinityTerm {
    /// Compile a term of a pod in `namespace`, with its `matchLabelKeys`/`mismatchLabelKeys`
    /// resolved against the pod's labels.
    pub fn new(
        term: &PodAffinityTerm,
        namespace: &str,
        pod_labels: &BTreeMap<String, String>,
    ) -> Self {
        let mut selector = term
            .label_selector
            .as_ref()
            .and_then(|selector| serde_json::to_value(selector).ok())
            .and_then(|value| LabelSelector::from_json(&value).ok())
            .unwrap_or_else(LabelSelector::nothing);
        let mut extra = Vec::new();
        for key in term.match_label_keys.iter().flatten() {
            if let Some(value) = pod_labels.get(key)
                && let Ok(requirement) = Requirement::new(key, Operator::In, vec![value.clone()])
            {
                extra.push(requirement);
            }
        }
        for key in term.mismatch_label_keys.iter().flatten() {
            if let Some(value) = pod_labels.get(key)
                && let Ok(requirement) = Requirement::new(key, Operator::NotIn, vec![value.clone()])
            {
                extra.push(requirement);
            }
        }
        if !extra.is_empty() && term.label_selector.is_some() {
            let mut requirements = selector.requirements().to_vec();
            requirements.extend(extra);
            selector = LabelSelector::from_requirements(requirements);
        }
        let namespace_selector = term
            .namespace_selector
            .as_ref()
            .and_then(|selector| serde_json::to_value(selector).ok())
            .and_then(|value| LabelSelector::from_json(&value).ok());
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.push(namespace.to_string());
        }
        Self {
            selector,
            namespaces,
            namespace_selector,
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether a pod in `namespace` (whose namespace has `namespace_labels`) with `labels`
    /// matches the term.
    pub fn matches(
        &self,
        namespace: &str,
        namespace_labels: Option<&BTreeMap<String, String>>,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        let namespace_ok = self.namespaces.iter().any(|n| n == namespace)
            || self.namespace_selector.as_ref().is_some_and(|selector| {
                namespace_labels.is_some_and(|labels| selector.matches(labels))
                    || (namespace_labels.is_none() && selector.is_everything())
            });
        namespace_ok && self.selector.matches(labels)
    }
}

/// A weighted pod (anti-)affinity term (preferred scheduling).
#[derive(Debug, Clone)]
pub struct WeightedAffinityTerm {
    pub term: AffinityTerm,
    pub weight: i64,
}
