//! Resource quantities and a pod's effective requests, computed as kube-scheduler does.
//!
//! Invariants: quantities parse with Kubernetes' suffixes (`m`, `k`, `Ki`, `M`, `Mi`, ..., `e3`);
//! CPU is kept in millicores and every other resource in whole units rounded up, so a request is
//! never under-counted. A pod's request is the larger of the sum of its regular (and sidecar)
//! containers and the largest init container, plus `spec.overhead`. A quantity that does not
//! parse counts as zero (the API server validates them; the scheduler never panics on input).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Requests assumed for scoring a container that requests no CPU (kube-scheduler's 100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Requests assumed for scoring a container that requests no memory (kube-scheduler's 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// A set of resource amounts: the well-known ones as fields, extended resources by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Number of pods (only meaningful for a node's allocatable and requested sums).
    pub pods: i64,
    /// Extended and hugepage resources, in whole units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Amounts from a `ResourceList` (`requests`, `limits`, `allocatable`).
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Self {
        let mut resources = Self::default();
        if let Some(list) = list {
            for (name, quantity) in list {
                resources.set(name, quantity);
            }
        }
        resources
    }

    fn set(&mut self, name: &str, quantity: &Quantity) {
        match name {
            "cpu" => self.milli_cpu = milli_value(quantity),
            "memory" => self.memory = value(quantity),
            "ephemeral-storage" => self.ephemeral_storage = value(quantity),
            "pods" => self.pods = value(quantity),
            _ => {
                self.scalar.insert(name.to_string(), value(quantity));
            }
        }
    }

    /// Add another set of amounts to this one.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        self.pods = self.pods.saturating_add(other.pods);
        for (name, amount) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_insert(0);
            *entry = entry.saturating_add(*amount);
        }
    }

    /// Subtract another set of amounts from this one.
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_sub(other.ephemeral_storage);
        self.pods = self.pods.saturating_sub(other.pods);
        for (name, amount) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_insert(0);
            *entry = entry.saturating_sub(*amount);
        }
    }

    /// Raise every amount to at least the other's.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.pods = self.pods.max(other.pods);
        for (name, amount) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_insert(0);
            *entry = (*entry).max(*amount);
        }
    }

    /// Whether no amount is set.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|amount| *amount == 0)
    }
}

/// A pod's requests for fitting (`requests`) and for scoring (`non_zero`: CPU and memory with
/// kube-scheduler's defaults for containers that request none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequests {
    pub requests: Resources,
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
}

fn container_requests(container: &Container) -> Resources {
    let resources = container.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    let mut amounts = Resources::from_list(requests);
    // A limit without a request defaults the request (the API server does this too; repeat it
    // so that objects written by older clients are counted the same way).
    if let Some(limits) = resources.and_then(|r| r.limits.as_ref()) {
        for (name, quantity) in limits {
            let missing = requests.is_none_or(|requests| !requests.contains_key(name));
            if missing {
                amounts.set(name, quantity);
            }
        }
    }
    amounts
}

fn non_zero(amounts: &Resources) -> (i64, i64) {
    let cpu = if amounts.milli_cpu == 0 {
        DEFAULT_MILLI_CPU_REQUEST
    } else {
        amounts.milli_cpu
    };
    let memory = if amounts.memory == 0 {
        DEFAULT_MEMORY_REQUEST
    } else {
        amounts.memory
    };
    (cpu, memory)
}

fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// The effective requests of a pod: max(sum of containers + sidecars, each init container on top
/// of the sidecars started before it) + overhead.
pub fn pod_requests(pod: &Pod) -> PodRequests {
    let Some(spec) = pod.spec.as_ref() else {
        return PodRequests::default();
    };
    let mut sum = Resources::default();
    let (mut nz_cpu, mut nz_memory) = (0i64, 0i64);
    for container in &spec.containers {
        let amounts = container_requests(container);
        let (cpu, memory) = non_zero(&amounts);
        nz_cpu += cpu;
        nz_memory += memory;
        sum.add(&amounts);
    }
    let mut init_max = Resources::default();
    let (mut init_nz_cpu, mut init_nz_memory) = (0i64, 0i64);
    let mut sidecars = Resources::default();
    let (mut sidecar_nz_cpu, mut sidecar_nz_memory) = (0i64, 0i64);
    for container in spec.init_containers.iter().flatten() {
        let amounts = container_requests(container);
        let (cpu, memory) = non_zero(&amounts);
        if is_sidecar(container) {
            sidecars.add(&amounts);
            sidecar_nz_cpu += cpu;
            sidecar_nz_memory += memory;
            sum.add(&amounts);
            nz_cpu += cpu;
            nz_memory += memory;
            init_max.max_with(&sidecars);
            init_nz_cpu = init_nz_cpu.max(sidecar_nz_cpu);
            init_nz_memory = init_nz_memory.max(sidecar_nz_memory);
        } else {
            let mut peak = sidecars.clone();
            peak.add(&amounts);
            init_max.max_with(&peak);
            init_nz_cpu = init_nz_cpu.max(sidecar_nz_cpu + cpu);
            init_nz_memory = init_nz_memory.max(sidecar_nz_memory + memory);
        }
    }
    sum.max_with(&init_max);
    let mut nz_cpu = nz_cpu.max(init_nz_cpu);
    let mut nz_memory = nz_memory.max(init_nz_memory);
    if let Some(overhead) = spec.overhead.as_ref() {
        let overhead = Resources::from_list(Some(overhead));
        nz_cpu += overhead.milli_cpu;
        nz_memory += overhead.memory;
        sum.add(&overhead);
    }
    PodRequests {
        requests: sum,
        non_zero_milli_cpu: nz_cpu,
        non_zero_memory: nz_memory,
    }
}

/// A quantity in thousandths of its unit, rounded up (CPU: millicores).
pub fn milli_value(quantity: &Quantity) -> i64 {
    parse(&quantity.0)
        .map(|q| q.scaled_ceil(3))
        .unwrap_or_default()
}

/// A quantity in whole units, rounded up (memory: bytes).
pub fn value(quantity: &Quantity) -> i64 {
    parse(&quantity.0)
        .map(|q| q.scaled_ceil(0))
        .unwrap_or_default()
}

/// A parsed quantity: `mantissa * 2^binary_exponent * 10^decimal_exponent`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Parsed {
    negative: bool,
    /// Digits without the decimal point, with `fraction_digits` of them after it.
    digits: u128,
    fraction_digits: i32,
    binary_exponent: u32,
    decimal_exponent: i32,
}

impl Parsed {
    /// The value times 10^scale, rounded towards +infinity, saturated to i64.
    fn scaled_ceil(&self, scale: i32) -> i64 {
        let mut numerator = self
            .digits
            .saturating_mul(1u128 << self.binary_exponent.min(60));
        let exponent = self.decimal_exponent + scale - self.fraction_digits;
        let mut denominator: u128 = 1;
        if exponent >= 0 {
            for _ in 0..exponent {
                numerator = numerator.saturating_mul(10);
            }
        } else {
            for _ in 0..(-exponent).min(38) {
                denominator *= 10;
            }
        }
        let quotient = numerator / denominator;
        let rounded = if self.negative {
            quotient
        } else if !numerator.is_multiple_of(denominator) {
            quotient + 1
        } else {
            quotient
        };
        let clamped = i64::try_from(rounded).unwrap_or(i64::MAX);
        if self.negative { -clamped } else { clamped }
    }
}

fn parse(text: &str) -> Option<Parsed> {
    let text = text.trim();
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    if number.is_empty() || number == "." {
        return None;
    }
    let mut digits: u128 = 0;
    let mut fraction_digits = 0i32;
    let mut seen_point = false;
    for c in number.chars() {
        if c == '.' {
            if seen_point {
                return None;
            }
            seen_point = true;
            continue;
        }
        let digit = u128::from(c.to_digit(10)?);
        if digits < u128::MAX / 100 {
            digits = digits * 10 + digit;
            if seen_point {
                fraction_digits += 1;
            }
        } else if !seen_point {
            return None;
        }
    }
    let (binary_exponent, decimal_exponent) = match suffix {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        other => {
            let exponent = other.strip_prefix(['e', 'E'])?;
            (0, exponent.parse::<i32>().ok()?.clamp(-40, 40))
        }
    };
    Some(Parsed {
        negative,
        digits,
        fraction_digits,
        binary_exponent,
        decimal_exponent,
    })
}

#[cfg(test)]
mod tests;
