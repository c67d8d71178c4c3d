//! [`Filters`] as payload conditions, in one backend-neutral form that each backend turns
//! into its own filter type. The clauses mirror the lexical index's exactly, so both halves
//! of a hybrid search see the same passages.

use cabildo_core::{AccessLevel, Filters};

use crate::{day_number, keys};

/// One payload condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    /// The keyword field equals one of these values.
    AnyOf(&'static str, Vec<String>),
    /// The integer field lies within the bounds.
    Range {
        key: &'static str,
        gt: Option<i64>,
        lte: Option<i64>,
    },
    /// At least one of these holds.
    Either(Vec<Cond>),
    /// The keyword field equals none of these values.
    NoneOf(&'static str, Vec<String>),
}

/// The conditions a passage must all meet to pass `filters`.
pub(crate) fn conditions(filters: &Filters) -> Vec<Cond> {
    let mut all = Vec::new();
    if !filters.jurisdictions.is_empty() {
        all.push(Cond::AnyOf(
            keys::JURISDICTION,
            filters
                .jurisdictions
                .iter()
                .map(|j| j.to_ascii_uppercase())
                .collect(),
        ));
    }
    if !filters.kinds.is_empty() {
        all.push(Cond::AnyOf(
            keys::KIND,
            filters
                .kinds
                .iter()
                .map(|k| k.as_str().to_string())
                .collect(),
        ));
    }
    if !filters.norms.is_empty() {
        all.push(Cond::AnyOf(keys::NORM_ID, filters.norms.clone()));
    }
    if !filters.excluded_norms.is_empty() {
        all.push(Cond::NoneOf(keys::NORM_ID, filters.excluded_norms.clone()));
    }
    all.push(Cond::Range {
        key: keys::ACCESS,
        gt: None,
        lte: Some(filters.max_access as i64),
    });
    if !filters.all_tenants {
        // Public documents, documents without an owner, and the caller's own tenant's.
        let mut tenants = vec![String::new()];
        tenants.extend(filters.tenant.iter().cloned());
        all.push(Cond::Either(vec![
            Cond::Range {
                key: keys::ACCESS,
                gt: None,
                lte: Some(AccessLevel::Public as i64),
            },
            Cond::AnyOf(keys::TENANT, tenants),
        ]));
    }
    if let Some(date) = filters.in_force_on {
        let day = day_number(date);
        all.push(Cond::Range {
            key: keys::VALID_FROM,
            gt: None,
            lte: Some(day),
        });
        all.push(Cond::Range {
            key: keys::VALID_TO,
            gt: Some(day),
            lte: None,
        });
    }
    if let Some(date) = filters.not_ended_on {
        all.push(Cond::Range {
            key: keys::VALID_TO,
            gt: Some(day_number(date)),
            lte: None,
        });
    }
    all
}

/// The condition that selects every vector of one norm.
pub(crate) fn of_norm(norm_id: &str) -> Vec<Cond> {
    vec![Cond::AnyOf(keys::NORM_ID, vec![norm_id.to_string()])]
}

/// A condition in Qdrant's JSON filter language (what the embedded engine deserialises).
pub(crate) fn to_json(cond: &Cond) -> serde_json::Value {
    use serde_json::json;
    match cond {
        Cond::AnyOf(key, values) => json!({ "key": key, "match": { "any": values } }),
        Cond::Range { key, gt, lte } => {
            let mut range = serde_json::Map::new();
            if let Some(v) = gt {
                range.insert("gt".into(), json!(*v as f64));
            }
            if let Some(v) = lte {
                range.insert("lte".into(), json!(*v as f64));
            }
            json!({ "key": key, "range": range })
        }
        Cond::Either(any) => json!({ "should": any.iter().map(to_json).collect::<Vec<_>>() }),
        Cond::NoneOf(key, values) => {
            json!({ "must_not": [{ "key": key, "match": { "any": values } }] })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anonymous_caller_gets_the_public_or_unowned_clause() {
        let conds = conditions(&Filters::default());
        assert_eq!(conds.len(), 2);
        assert!(matches!(&conds[1], Cond::Either(c) if c.len() == 2));
        let ops = conditions(&Filters::operator());
        assert_eq!(ops.len(), 1, "an operator sees every tenant");
    }

    #[test]
    fn json_form_is_qdrant_filter_language() {
        let v = to_json(&Cond::Range {
            key: keys::VALID_TO,
            gt: Some(5),
            lte: None,
        });
        assert_eq!(v["range"]["gt"], 5.0);
        assert!(v["range"].get("lte").is_none());
        let v = to_json(&Cond::Either(vec![Cond::AnyOf(
            keys::TENANT,
            vec!["a".into()],
        )]));
        assert_eq!(v["should"][0]["match"]["any"][0], "a");
    }
}
