//! Whether a data folder is consistent, for operators and for the crash loop
//! (`scripts/crashloop.sh`): every norm the registry records as committed is in the lexical
//! index (and the vector store) with exactly its passages, and the audit chain verifies.
//!
//! Ingest writes vectors first, then commits the index, then records the registry, so an
//! interrupted ingest may leave norms in the index that the registry does not know yet:
//! those are reported as pending (the next ingest records them), not as problems.

use serde::Serialize;

use crate::{Engine, Result};

/// What [`Engine::check`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Consistency {
    /// Norms the registry records.
    pub norms: usize,
    /// Passages the registry records.
    pub passages: u64,
    /// Whether vectors were checked (dense retrieval configured).
    pub vectors_checked: bool,
    /// A registry norm whose passages are missing, or more, in the index or the vector
    /// store: each one is a failure.
    pub problems: Vec<String>,
    /// Norms in the index the registry does not record yet.
    pub pending: Vec<String>,
    /// Audit records walked.
    pub audit_records: u64,
    /// Breaks in the audit chain.
    pub audit_problems: Vec<String>,
}

impl Consistency {
    /// Whether nothing is missing, extra or broken.
    pub fn consistent(&self) -> bool {
        self.problems.is_empty() && self.audit_problems.is_empty()
    }
}

impl Engine {
    /// Compares the registry with the lexical index and the vector store, norm by norm, and
    /// walks the audit chain.
    pub async fn check(&self) -> Result<Consistency> {
        let recorded = self.registry.norm_passages().await?;
        let mut indexed = self.index().norm_counts()?;
        let mut problems = Vec::new();
        for (norm, &passages) in &recorded {
            let in_index = indexed.remove(norm).unwrap_or(0) as u64;
            if in_index != passages {
                problems.push(format!(
                    "{norm}: the registry records {passages} passages, the index holds {in_index}"
                ));
            }
            if let Some(d) = self.dense() {
                let in_store = d.store.count_of(norm).await? as u64;
                if in_store != passages {
                    problems.push(format!(
                        "{norm}: the registry records {passages} passages, the vector store holds {in_store}"
                    ));
                }
            }
        }
        let audit = self.registry.verify_audit().await?;
        Ok(Consistency {
            norms: recorded.len(),
            passages: recorded.values().sum(),
            vectors_checked: self.dense().is_some(),
            problems,
            pending: indexed.into_keys().collect(),
            audit_records: audit.records,
            audit_problems: audit.problems,
        })
    }
}
