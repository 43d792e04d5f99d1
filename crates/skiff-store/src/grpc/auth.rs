//! Who may call what on the peer port, decided from the verified client certificate.

use tonic::{Request, Status};

use crate::tls::{ROLE_MEMBER, ROLE_STORE, subject_of};

/// The role a call needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Raft replication and member-to-member calls.
    Member,
    /// The KV and admin services (members and the admin identity).
    Store,
}

/// Checks the caller's certificate (already verified against the cluster CA by TLS).
pub fn require<T>(request: &Request<T>, role: Role) -> Result<String, Status> {
    let Some(certs) = request.peer_certs() else {
        return Err(Status::unauthenticated(
            "a client certificate from the cluster CA is required (use the admin certificate in <data-dir>/tls)",
        ));
    };
    let Some(leaf) = certs.first() else {
        return Err(Status::unauthenticated(
            "the client presented no certificate",
        ));
    };
    let Some((cn, orgs)) = subject_of(leaf) else {
        return Err(Status::unauthenticated(
            "the client certificate cannot be parsed",
        ));
    };
    let (needed, accepted): (&str, &[&str]) = match role {
        Role::Member => (ROLE_MEMBER, &[ROLE_MEMBER]),
        Role::Store => (ROLE_STORE, &[ROLE_STORE, ROLE_MEMBER]),
    };
    if orgs.iter().any(|o| accepted.contains(&o.as_str())) {
        Ok(cn.unwrap_or_default())
    } else {
        Err(Status::permission_denied(format!(
            "certificate {:?} lacks the {needed} role needed for this call",
            cn.unwrap_or_default()
        )))
    }
}
