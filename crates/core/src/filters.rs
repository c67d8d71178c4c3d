//! Filters every retrieval carries: who may read what, where, which kind, in force when.
//! They are applied inside the index query, never by trimming a top-k afterwards.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{Error, NormKind};

/// Who may read a norm. Ordered: a principal cleared for `Internal` also reads `Public`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    /// Anyone, including anonymous citizens.
    #[default]
    Public,
    /// Staff of the owning tenant.
    Internal,
    /// Named clearance only.
    Restricted,
}

impl AccessLevel {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Public => "public",
            AccessLevel::Internal => "internal",
            AccessLevel::Restricted => "restricted",
        }
    }
}

impl fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccessLevel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_lowercase().as_str() {
            "public" => Ok(AccessLevel::Public),
            "internal" => Ok(AccessLevel::Internal),
            "restricted" => Ok(AccessLevel::Restricted),
            _ => Err(Error::Invalid {
                what: "access level",
                value: s.into(),
                why: "expected public, internal or restricted".into(),
            }),
        }
    }
}

/// Today, the day a question without a date asks about (the machine's local calendar).
pub fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

/// Restrictions on which passages a query may return.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// ISO 3166-1 alpha-2 countries (any of); empty means all.
    #[serde(default)]
    pub jurisdictions: Vec<String>,
    /// Kinds (any of); empty means all.
    #[serde(default)]
    pub kinds: Vec<NormKind>,
    /// Only passages in force on this date: each provision as it stood that day. Unset
    /// means today ([`Filters::day`]).
    #[serde(default)]
    pub in_force_on: Option<NaiveDate>,
    /// Highest access level the caller is cleared for.
    #[serde(default)]
    pub max_access: AccessLevel,
    /// The caller's tenant: non-public passages of other tenants are excluded.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Only passages whose text was not replaced or repealed by this day (whatever day it
    /// took effect); set by [`Filters::dated`], never from a request.
    #[serde(skip)]
    pub not_ended_on: Option<NaiveDate>,
    /// Sees every tenant's documents (a local operator, an admin); never set from a request.
    #[serde(skip)]
    pub all_tenants: bool,
    /// Only passages of these norms (any of); empty means all. Set when a question names
    /// norms the index holds; never from a request.
    #[serde(skip)]
    pub norms: Vec<String>,
    /// Never passages of these norms: how `cabildo eval --answers` asks a question of the
    /// corpus as if the norms that answer it were not there; never set from a request.
    #[serde(skip)]
    pub excluded_norms: Vec<String>,
}

impl Filters {
    /// Filters for a local operator running the CLI on their own data folder: sees everything.
    pub fn operator() -> Self {
        Filters {
            max_access: AccessLevel::Restricted,
            all_tenants: true,
            ..Filters::default()
        }
    }

    /// The day these filters look at: `in_force_on`, else today.
    pub fn day(&self) -> NaiveDate {
        self.in_force_on.unwrap_or_else(today)
    }

    /// These filters as a retrieval applies them: without a date, only text that no later
    /// version replaced and no repeal ended by today (`not_ended_on`), so a search sees the
    /// law as it stands, not every version of it at once. Text whose version takes effect
    /// later stays in: LeyChile publishes consolidated texts with amendments due in the
    /// future, and for a norm known only that way it is the text there is.
    pub fn dated(&self) -> Filters {
        match self.in_force_on {
            Some(_) => self.clone(),
            None => Filters {
                not_ended_on: Some(self.day()),
                ..self.clone()
            },
        }
    }
}
