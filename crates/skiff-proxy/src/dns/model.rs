//! The records of the cluster domain, as a pure function of Services and EndpointSlices
//! (the Kubernetes DNS specification for Services, as CoreDNS implements it):
//!
//! - `<svc>.<ns>.svc.<domain>`: A/AAAA of the cluster IPs; for a headless Service, A/AAAA of
//!   every ready endpoint (all endpoints with `publishNotReadyAddresses`); CNAME for ExternalName.
//! - `<hostname>.<svc>.<ns>.svc.<domain>` for headless endpoints with a hostname (StatefulSet
//!   pods), else `<a-b-c-d>.<svc>.<ns>.svc.<domain>` from the address.
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV for named ports: the Service name and port,
//!   or for headless Services one record per endpoint with its name and target port.
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A of the address in the name.
//!
//! An existing name without records of the asked type answers NOERROR with no data; a name in the
//! zone that does not exist answers NXDOMAIN. Names are compared in lowercase.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::slices_by_service_any_family;

/// The data of one record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
}

/// The kind of record asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryKind {
    A,
    Aaaa,
    Srv,
    Cname,
    Any,
    /// Anything else (TXT, MX, ...): never present in the cluster zone.
    Other,
}

impl RecordData {
    fn matches(&self, kind: QueryKind) -> bool {
        matches!(
            (self, kind),
            (_, QueryKind::Any)
                | (RecordData::A(_), QueryKind::A)
                | (RecordData::Aaaa(_), QueryKind::Aaaa)
                | (RecordData::Cname(_), QueryKind::Cname)
                | (RecordData::Srv { .. }, QueryKind::Srv)
        )
    }
}

/// The answer to one question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The name is not in the cluster domain: forward it.
    NotOurs,
    /// NOERROR with these records (possibly none: the name exists, the type does not).
    Records(Vec<RecordData>),
    /// NXDOMAIN.
    NxDomain,
}

/// Every record of the cluster domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsModel {
    domain: String,
    records: BTreeMap<String, BTreeSet<RecordData>>,
    /// Names that exist without records of their own (`svc.<domain>`, `<ns>.svc.<domain>`, ...).
    interior: BTreeSet<String>,
}

/// Lowercase, without the trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

impl DnsModel {
    /// Builds the zone. Malformed objects are skipped (the API server validates them).
    pub fn build<S: Borrow<Service>, E: Borrow<EndpointSlice>>(
        domain: &str,
        services: &[S],
        slices: &[E],
    ) -> DnsModel {
        let domain = normalize(domain);
        let mut model = DnsModel {
            domain: domain.clone(),
            ..DnsModel::default()
        };
        let by_service = slices_by_service_any_family(slices);
        for service in services {
            let service: &Service = service.borrow();
            let (Some(ns), Some(name), Some(spec)) = (
                service.metadata.namespace.as_deref(),
                service.metadata.name.as_deref(),
                service.spec.as_ref(),
            ) else {
                continue;
            };
            let base = normalize(&format!("{name}.{ns}.svc.{domain}"));
            if spec.type_.as_deref() == Some("ExternalName") {
                if let Some(target) = spec.external_name.as_deref().filter(|t| !t.is_empty()) {
                    model.add(&base, RecordData::Cname(normalize(target)));
                }
                continue;
            }
            let headless = spec.cluster_ip.as_deref() == Some("None");
            if !headless {
                let ips: BTreeSet<IpAddr> = spec
                    .cluster_ip
                    .iter()
                    .chain(spec.cluster_ips.iter().flatten())
                    .filter_map(|ip| ip.parse::<IpAddr>().ok())
                    .collect();
                if ips.is_empty() {
                    continue;
                }
                for ip in ips {
                    model.add(&base, address_record(ip));
                }
                for port in spec.ports.iter().flatten() {
                    let (Some(port_name), Ok(number)) =
                        (port.name.as_deref(), u16::try_from(port.port))
                    else {
                        continue;
                    };
                    let proto = port
                        .protocol
                        .as_deref()
                        .unwrap_or("TCP")
                        .to_ascii_lowercase();
                    model.add(
                        &format!("_{port_name}._{proto}.{base}"),
                        RecordData::Srv {
                            priority: 0,
                            weight: 100,
                            port: number,
                            target: base.clone(),
                        },
                    );
                }
                model.mark_interior(&base);
                continue;
            }
            // Headless: records per endpoint.
            let include_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
            let mut srv: BTreeMap<String, Vec<(u16, String)>> = BTreeMap::new();
            for slice in by_service.get(&(ns, name)).into_iter().flatten() {
                for endpoint in &slice.endpoints {
                    let ready = endpoint
                        .conditions
                        .as_ref()
                        .and_then(|c| c.ready)
                        .unwrap_or(true);
                    if !ready && !include_not_ready {
                        continue;
                    }
                    for address in &endpoint.addresses {
                        let Ok(ip) = address.parse::<IpAddr>() else {
                            continue;
                        };
                        let host = endpoint
                            .hostname
                            .as_deref()
                            .filter(|h| !h.is_empty())
                            .map(normalize)
                            .unwrap_or_else(|| dashed(ip));
                        let endpoint_name = format!("{host}.{base}");
                        model.add(&base, address_record(ip));
                        model.add(&endpoint_name, address_record(ip));
                        for port in slice.ports.iter().flatten() {
                            let (Some(port_name), Some(Ok(number))) =
                                (port.name.as_deref(), port.port.map(u16::try_from))
                            else {
                                continue;
                            };
                            if port_name.is_empty() {
                                continue;
                            }
                            let proto = port
                                .protocol
                                .as_deref()
                                .unwrap_or("TCP")
                                .to_ascii_lowercase();
                            srv.entry(format!("_{port_name}._{proto}.{base}"))
                                .or_default()
                                .push((number, endpoint_name.clone()));
                        }
                    }
                }
            }
            for (srv_name, targets) in srv {
                let weight = u16::try_from(100 / targets.len().max(1))
                    .unwrap_or(1)
                    .max(1);
                for (port, target) in targets {
                    model.add(
                        &srv_name,
                        RecordData::Srv {
                            priority: 0,
                            weight,
                            port,
                            target,
                        },
                    );
                }
            }
            model.mark_interior(&base);
        }
        model
    }

    fn add(&mut self, name: &str, data: RecordData) {
        let name = normalize(name);
        self.mark_interior(&name);
        self.records.entry(name).or_default().insert(data);
    }

    /// Marks every ancestor of `name` inside the domain as existing.
    fn mark_interior(&mut self, name: &str) {
        let mut rest = name;
        while let Some((_, parent)) = rest.split_once('.') {
            if parent.len() < self.domain.len() {
                break;
            }
            self.interior.insert(parent.to_string());
            rest = parent;
        }
    }

    /// The cluster domain this model answers for.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether `name` (normalized) is inside the cluster domain.
    pub fn is_ours(&self, name: &str) -> bool {
        name == self.domain
            || (name.len() > self.domain.len()
                && name.ends_with(&self.domain)
                && name.as_bytes()[name.len() - self.domain.len() - 1] == b'.')
    }

    /// Answers one question.
    pub fn answer(&self, name: &str, kind: QueryKind) -> Answer {
        let name = normalize(name);
        if !self.is_ours(&name) {
            return Answer::NotOurs;
        }
        if let Some(records) = self.records.get(&name) {
            // A CNAME answers every type (the client follows it).
            let cname: Vec<RecordData> = records
                .iter()
                .filter(|r| matches!(r, RecordData::Cname(_)))
                .cloned()
                .collect();
            if !cname.is_empty() && kind != QueryKind::Cname {
                return Answer::Records(cname);
            }
            return Answer::Records(
                records
                    .iter()
                    .filter(|r| r.matches(kind))
                    .cloned()
                    .collect(),
            );
        }
        if let Some(ip) = self.pod_address(&name) {
            let record = RecordData::A(ip);
            return Answer::Records(if record.matches(kind) {
                vec![record]
            } else {
                vec![]
            });
        }
        if name == self.domain || self.interior.contains(&name) {
            return Answer::Records(Vec::new());
        }
        Answer::NxDomain
    }

    /// `<a-b-c-d>.<ns>.pod.<domain>` → a.b.c.d.
    fn pod_address(&self, name: &str) -> Option<Ipv4Addr> {
        let head = name.strip_suffix(&format!(".pod.{}", self.domain))?;
        let (dashed_ip, namespace) = head.split_once('.')?;
        if namespace.is_empty() || namespace.contains('.') {
            return None;
        }
        dashed_ip.replace('-', ".").parse().ok()
    }
}

fn address_record(ip: IpAddr) -> RecordData {
    match ip {
        IpAddr::V4(v4) => RecordData::A(v4),
        IpAddr::V6(v6) => RecordData::Aaaa(v6),
    }
}

#[cfg(test)]
mod tests;
