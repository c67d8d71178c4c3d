//! Who is asking: the authenticated principal (or an anonymous citizen), the role and tenant
//! its token or API key grants, and what that lets it read. The same rule is applied inside
//! every index query (through [`Principal::filters`]) and again to every passage before its
//! text leaves the server ([`Principal::may_read`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{AccessLevel, Error, Filters};

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessRole {
    /// No credentials (only where the deployment allows it): public documents.
    Anonymous,
    /// A signed-in citizen (ClaveÚnica, gov.br…): public documents.
    Citizen,
    /// Agency staff: public documents and their own tenant's internal ones (restricted ones
    /// too with restricted clearance).
    Caseworker,
    /// A partner system calling the API, usually with an API key: public documents unless its
    /// key grants a tenant and clearance.
    Partner,
    /// Operates the deployment: ingest, delete, audit export; reads everything.
    Admin,
}

impl AccessRole {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessRole::Anonymous => "anonymous",
            AccessRole::Citizen => "citizen",
            AccessRole::Caseworker => "caseworker",
            AccessRole::Partner => "partner",
            AccessRole::Admin => "admin",
        }
    }
}

impl fmt::Display for AccessRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccessRole {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_lowercase().as_str() {
            "anonymous" => Ok(AccessRole::Anonymous),
            "citizen" => Ok(AccessRole::Citizen),
            "caseworker" => Ok(AccessRole::Caseworker),
            "partner" => Ok(AccessRole::Partner),
            "admin" => Ok(AccessRole::Admin),
            _ => Err(Error::Invalid {
                what: "role",
                value: s.into(),
                why: "expected citizen, caseworker, partner or admin".into(),
            }),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Stable identifier: the token's issuer and subject, or `key:<id>` for an API key, or
    /// `anonymous`. Never logged or audited in clear (see the audit log's pseudonyms).
    pub subject: String,
    /// What it may do.
    pub role: AccessRole,
    /// Its agency, if any.
    pub tenant: Option<String>,
    /// The highest level it is cleared for, before the role's own cap.
    pub clearance: AccessLevel,
}

impl Principal {
    /// A caller without credentials.
    pub fn anonymous() -> Self {
        Principal {
            subject: "anonymous".into(),
            role: AccessRole::Anonymous,
            tenant: None,
            clearance: AccessLevel::Public,
        }
    }

    /// A principal, checked for consistency: a caseworker belongs to a tenant, and clearance
    /// above public only means something within one.
    pub fn new(
        subject: String,
        role: AccessRole,
        tenant: Option<String>,
        clearance: AccessLevel,
    ) -> Result<Self, Error> {
        let tenant = tenant.filter(|t| !t.trim().is_empty());
        if role == AccessRole::Caseworker && tenant.is_none() {
            return Err(Error::Invalid {
                what: "principal",
                value: subject,
                why: "a caseworker needs a tenant".into(),
            });
        }
        Ok(Principal {
            subject,
            role,
            tenant,
            clearance,
        })
    }

    /// The highest access level this principal reads: citizens and anonymous callers read
    /// public documents whatever a token claims; caseworkers and partners what their
    /// clearance says, within their tenant (and public ones without a tenant); admins all.
    pub fn max_access(&self) -> AccessLevel {
        match self.role {
            AccessRole::Anonymous | AccessRole::Citizen => AccessLevel::Public,
            AccessRole::Caseworker | AccessRole::Partner if self.tenant.is_none() => {
                AccessLevel::Public
            }
            AccessRole::Caseworker | AccessRole::Partner => self.clearance,
            AccessRole::Admin => AccessLevel::Restricted,
        }
    }

    /// Whether this principal may run ingest, delete and audit export.
    pub fn is_admin(&self) -> bool {
        self.role == AccessRole::Admin
    }

    /// The access part of every query this principal makes; the request's own filters
    /// (jurisdiction, kind, date) are added to it, never the other way round.
    pub fn filters(&self) -> Filters {
        Filters {
            max_access: self.max_access(),
            tenant: self.tenant.clone(),
            all_tenants: self.is_admin(),
            ..Filters::default()
        }
    }

    /// Whether a passage or norm with this access level and owner may be shown to this
    /// principal: the same rule the index queries apply, checked again on the way out.
    pub fn may_read(&self, access: AccessLevel, owner: Option<&str>) -> bool {
        if access > self.max_access() {
            return false;
        }
        if access == AccessLevel::Public || self.is_admin() {
            return true;
        }
        match owner.filter(|o| !o.is_empty()) {
            None => true,
            Some(owner) => self.tenant.as_deref() == Some(owner),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(tenant: &str, clearance: AccessLevel) -> Principal {
        Principal::new(
            "w".into(),
            AccessRole::Caseworker,
            Some(tenant.into()),
            clearance,
        )
        .unwrap()
    }

    #[test]
    fn citizens_read_public_documents_whatever_their_token_claims() {
        let mut p = Principal::anonymous();
        p.role = AccessRole::Citizen;
        p.clearance = AccessLevel::Restricted;
        p.tenant = Some("sii".into());
        assert_eq!(p.max_access(), AccessLevel::Public);
        assert!(p.may_read(AccessLevel::Public, Some("sii")));
        assert!(!p.may_read(AccessLevel::Internal, Some("sii")));
        assert!(!p.may_read(AccessLevel::Internal, None));
    }

    #[test]
    fn caseworkers_read_their_own_tenants_documents_up_to_their_clearance() {
        let w = worker("sii", AccessLevel::Internal);
        assert!(w.may_read(AccessLevel::Internal, Some("sii")));
        assert!(!w.may_read(AccessLevel::Internal, Some("dt")));
        assert!(!w.may_read(AccessLevel::Restricted, Some("sii")));
        assert!(w.may_read(AccessLevel::Public, Some("dt")));
        let cleared = worker("sii", AccessLevel::Restricted);
        assert!(cleared.may_read(AccessLevel::Restricted, Some("sii")));
        assert!(!cleared.may_read(AccessLevel::Restricted, Some("dt")));
        let f = cleared.filters();
        assert_eq!(f.max_access, AccessLevel::Restricted);
        assert_eq!(f.tenant.as_deref(), Some("sii"));
        assert!(!f.all_tenants);
    }

    #[test]
    fn a_caseworker_needs_a_tenant_and_a_partner_without_one_reads_public_only() {
        assert!(Principal::new(
            "w".into(),
            AccessRole::Caseworker,
            Some(" ".into()),
            AccessLevel::Internal
        )
        .is_err());
        let p = Principal::new(
            "p".into(),
            AccessRole::Partner,
            None,
            AccessLevel::Restricted,
        )
        .unwrap();
        assert_eq!(p.max_access(), AccessLevel::Public);
        assert!(!p.may_read(AccessLevel::Internal, None));
    }

    #[test]
    fn admins_read_everything() {
        let a = Principal::new("a".into(), AccessRole::Admin, None, AccessLevel::Public).unwrap();
        assert!(a.may_read(AccessLevel::Restricted, Some("dt")));
        assert!(a.filters().all_tenants);
    }
}
