//! Dense vectors of passages behind one trait, [`VectorStore`], with two backends that behave
//! the same:
//!
//! - [`EdgeStore`] (default): the Qdrant engine in-process (`qdrant-edge`), persisted in a
//!   folder of the data directory. Every write is on disk before it is acknowledged, so a
//!   restart or a `kill -9` keeps every acknowledged point.
//! - [`QdrantStore`]: a Qdrant server or cluster over gRPC (`qdrant-client`), for deployments
//!   that outgrow one machine.
//!
//! Points carry the passage's filter fields as payload (access level, tenant, jurisdiction,
//! kind, validity in days), and every search applies [`Filters`] inside the vector query, never
//! by post-filtering a top-k. Point ids are derived from passage ids, so re-upserting a
//! passage replaces it.
#![deny(missing_docs)]

mod edge;
mod filter;
#[cfg(feature = "test-fixtures")]
pub mod fixtures;
mod qdrant;

use cabildo_core::{AccessLevel, Filters, Passage};
use sha2::{Digest, Sha256};

pub use edge::EdgeStore;
pub use qdrant::{Layout, QdrantStore};

/// Errors of a vector store; each says which store and what failed.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// The embedded engine failed (opening, writing, searching).
    #[error("vector store {path}: {reason}")]
    Edge {
        /// The store's folder.
        path: String,
        /// What the engine said.
        reason: String,
    },
    /// The Qdrant server failed or could not be reached (after retries).
    #[error("Qdrant at {url}: {reason}")]
    Server {
        /// The server's address.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A vector does not have the store's dimension, or the input is unusable.
    #[error("invalid input: {0}")]
    Input(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, VectorError>;

/// One nearest neighbour.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    /// The passage's id.
    pub passage_id: String,
    /// The norm it belongs to.
    pub norm_id: String,
    /// Cosine similarity to the query.
    pub score: f32,
    /// The stored vector, when the search asked for it ([`SearchOptions::with_vectors`]).
    pub vector: Option<Vec<f32>>,
}

impl VectorHit {
    /// A hit from a point's score, its stored vector (when returned) and its payload's text
    /// fields (`field` looks one up); `None` when the point lacks the passage or norm id.
    pub(crate) fn from_payload(
        score: f32,
        vector: Option<Vec<f32>>,
        field: impl Fn(&str) -> Option<String>,
    ) -> Option<Self> {
        Some(VectorHit {
            passage_id: field(keys::PASSAGE_ID)?,
            norm_id: field(keys::NORM_ID)?,
            score,
            vector,
        })
    }
}

/// How a search runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchOptions {
    /// Compare with every stored vector instead of walking the HNSW graph (ground truth for
    /// measuring the index's recall).
    pub exact: bool,
    /// Candidates the HNSW walk keeps (higher: better recall, slower); `None` is
    /// [`DEFAULT_HNSW_EF`].
    pub hnsw_ef: Option<usize>,
    /// Return each hit's stored vector (pseudo-relevance feedback reads them).
    pub with_vectors: bool,
}

impl SearchOptions {
    /// The HNSW breadth for a top-`k` search: the one asked for, else the default, and never
    /// less than `k`.
    pub fn breadth(&self, k: usize) -> usize {
        self.hnsw_ef.unwrap_or(DEFAULT_HNSW_EF).max(k)
    }
}

/// The HNSW search breadth used unless a search asks otherwise: at 100k passages it keeps
/// recall@10 against exact search at 0.98 or more (docs/benchmarks.md), where Qdrant's
/// default (the build's `ef_construct`, 100) did not.
pub const DEFAULT_HNSW_EF: usize = 512;

/// A store of passage vectors. Writes are durable when they return.
#[async_trait::async_trait]
pub trait VectorStore: Send + Sync {
    /// The backend's name (`edge`, `qdrant`).
    fn backend(&self) -> &'static str;
    /// Length of the vectors it holds.
    fn dimension(&self) -> usize;
    /// Inserts or replaces the vectors of these passages (`vectors[i]` is `passages[i]`'s).
    async fn upsert(&self, passages: &[&Passage], vectors: &[Vec<f32>]) -> Result<()>;
    /// Removes every vector of a norm.
    async fn delete_norm(&self, norm_id: &str) -> Result<()>;
    /// Sets who may read every vector of a norm (a re-ingest with another access level or
    /// tenant), without touching the vectors.
    async fn set_access(
        &self,
        norm_id: &str,
        access: AccessLevel,
        tenant: Option<&str>,
    ) -> Result<()>;
    /// Sets when one passage's vector is in force (a newer version of its norm closed it, or
    /// an older one now starts it), without touching the vector.
    async fn set_validity(
        &self,
        passage_id: &str,
        valid_from: Option<chrono::NaiveDate>,
        valid_to: Option<chrono::NaiveDate>,
    ) -> Result<()>;
    /// Removes the vectors of these passages (absent ones are ignored).
    async fn delete_passages(&self, passage_ids: &[String]) -> Result<()>;
    /// The `k` passages nearest to `query` among those `filters` let through.
    async fn search(
        &self,
        query: &[f32],
        filters: &Filters,
        k: usize,
        options: SearchOptions,
    ) -> Result<Vec<VectorHit>>;
    /// Number of vectors stored.
    async fn count(&self) -> Result<usize>;
    /// Number of vectors stored for one norm.
    async fn count_of(&self, norm_id: &str) -> Result<usize>;
    /// Builds search structures (the HNSW graph) after a large write; cheap when there is
    /// nothing to do.
    async fn optimize(&self) -> Result<()>;
}

/// The point id of a passage: the first 16 bytes of the SHA-256 of its id, as a UUID (Qdrant
/// ids are integers or UUIDs). Deterministic, so re-ingest replaces rather than duplicates.
pub fn point_uuid(passage_id: &str) -> uuid::Uuid {
    let digest = Sha256::digest(passage_id.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    uuid::Uuid::from_bytes(id)
}

/// Payload keys, shared by both backends.
pub(crate) mod keys {
    pub const PASSAGE_ID: &str = "passage_id";
    pub const NORM_ID: &str = "norm_id";
    pub const JURISDICTION: &str = "jurisdiction";
    pub const KIND: &str = "kind";
    pub const ACCESS: &str = "access";
    pub const TENANT: &str = "tenant";
    pub const VALID_FROM: &str = "valid_from";
    pub const VALID_TO: &str = "valid_to";
    /// Keyword fields (indexed as keywords).
    pub const KEYWORDS: [&str; 5] = [PASSAGE_ID, NORM_ID, JURISDICTION, KIND, TENANT];
    /// Integer fields (indexed for ranges).
    pub const INTEGERS: [&str; 3] = [ACCESS, VALID_FROM, VALID_TO];
}

/// Day number used for "valid since forever" / "still in force": beyond any real date, and
/// exact in the f64 ranges Qdrant compares with.
pub(crate) const OPEN_DAYS: i64 = 100_000_000;

/// Days since 0001-01-01 (the same numbering as the lexical index).
pub(crate) fn day_number(d: chrono::NaiveDate) -> i64 {
    (d - chrono::NaiveDate::default()).num_days()
}

/// The payload stored with a passage's vector: its ids and the fields filters look at.
pub(crate) fn payload(p: &Passage) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(keys::PASSAGE_ID.into(), p.id.clone().into());
    m.insert(keys::NORM_ID.into(), p.norm_id.clone().into());
    m.insert(
        keys::JURISDICTION.into(),
        p.jurisdiction.country.to_ascii_uppercase().into(),
    );
    m.insert(keys::KIND.into(), p.kind.as_str().into());
    m.extend(access_payload(p.access, p.tenant.as_deref()));
    m.extend(validity_payload(p.valid_from, p.valid_to));
    m
}

/// The payload fields that say when a passage is in force.
pub(crate) fn validity_payload(
    valid_from: Option<chrono::NaiveDate>,
    valid_to: Option<chrono::NaiveDate>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        keys::VALID_FROM.into(),
        valid_from.map_or(-OPEN_DAYS, day_number).into(),
    );
    m.insert(
        keys::VALID_TO.into(),
        valid_to.map_or(OPEN_DAYS, day_number).into(),
    );
    m
}

/// The payload fields that say who may read a passage.
pub(crate) fn access_payload(
    access: AccessLevel,
    tenant: Option<&str>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(keys::ACCESS.into(), (access as i64).into());
    m.insert(keys::TENANT.into(), tenant.unwrap_or_default().into());
    m
}

fn check_input(dimension: usize, passages: &[&Passage], vectors: &[Vec<f32>]) -> Result<()> {
    if passages.len() != vectors.len() {
        return Err(VectorError::Input(format!(
            "{} passages but {} vectors",
            passages.len(),
            vectors.len()
        )));
    }
    if let Some((p, v)) = passages
        .iter()
        .zip(vectors)
        .find(|(_, v)| v.len() != dimension)
    {
        return Err(VectorError::Input(format!(
            "vector of passage {} has {} dimensions, the store holds {dimension}",
            p.id,
            v.len()
        )));
    }
    Ok(())
}

fn check_query(dimension: usize, query: &[f32]) -> Result<()> {
    if query.len() != dimension {
        return Err(VectorError::Input(format!(
            "query vector has {} dimensions, the store holds {dimension}",
            query.len()
        )));
    }
    Ok(())
}
