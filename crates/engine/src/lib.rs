//! The engine: ingest jobs that keep the lexical index and the registry consistent, search
//! with filters, and retrieval evaluation on BEIR-style sets. The CLI (and later the HTTP
//! server) are thin layers over it.
#![deny(missing_docs)]

pub mod answer;
pub mod context;
pub mod eval;
pub mod ingest;
pub mod retrieve;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cabildo_core::{Embedder, Filters, ModelError, Reranker, SearchHit};
use cabildo_store::Registry;

use retrieve::{HybridParams, Method, Retriever};

pub use cabildo_index::{Analysis, LexicalIndex, QueryOptions};
pub use cabildo_ingestors::IngestDefaults;
pub use cabildo_store::JobSummary;
pub use cabildo_vectors::{
    EdgeStore, QdrantStore, SearchOptions, VectorError, VectorHit, VectorStore, DEFAULT_HNSW_EF,
};

/// Errors of the engine; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The lexical index failed.
    #[error(transparent)]
    Index(#[from] cabildo_index::IndexError),
    /// The registry failed.
    #[error(transparent)]
    Store(#[from] cabildo_store::StoreError),
    /// A file or folder could not be read.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// An evaluation set is missing a file or malformed.
    #[error("evaluation set {0}")]
    EvalSet(String),
    /// The vector store failed.
    #[error(transparent)]
    Vectors(#[from] VectorError),
    /// A model failed (embedding a question, reranking).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The method needs something this engine was not given.
    #[error("{0}")]
    Unavailable(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, EngineError>;

/// Dense retrieval: the model that embeds passages and questions, and the store of vectors.
#[derive(Clone)]
pub struct Dense {
    /// Embeds passages at ingest and questions at search.
    pub embedder: Arc<dyn Embedder>,
    /// Holds the passages' vectors.
    pub store: Arc<dyn VectorStore>,
}

/// An opened data folder: the lexical index and the registry, and, when configured, the
/// vector store with its embedder and a reranker.
pub struct Engine {
    data_dir: PathBuf,
    index: LexicalIndex,
    registry: Registry,
    dense: Option<Dense>,
    reranker: Option<Arc<dyn Reranker>>,
}

impl Engine {
    /// Opens (creating if needed) the data folder: `index/` for tantivy and
    /// `registry.sqlite` for the registry.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| EngineError::Io {
            path: data_dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let index = LexicalIndex::open(&data_dir.join("index"))?;
        let registry = Registry::open(&Engine::registry_path(data_dir)).await?;
        Ok(Engine {
            data_dir: data_dir.to_path_buf(),
            index,
            registry,
            dense: None,
            reranker: None,
        })
    }

    /// The registry's SQLite file inside a data folder.
    pub fn registry_path(data_dir: &Path) -> PathBuf {
        data_dir.join("registry.sqlite")
    }

    /// The folder of the embedded vector store inside a data folder.
    pub fn vectors_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("vectors")
    }

    /// Adds dense retrieval: ingest embeds passages into `dense.store`, and the dense,
    /// hybrid and rerank methods become available.
    pub fn with_dense(mut self, dense: Dense) -> Self {
        self.dense = Some(dense);
        self
    }

    /// Adds a cross-encoder for the rerank method.
    pub fn with_reranker(mut self, reranker: Arc<dyn Reranker>) -> Self {
        self.reranker = Some(reranker);
        self
    }

    /// Dense retrieval, when configured.
    pub fn dense(&self) -> Option<&Dense> {
        self.dense.as_ref()
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The lexical index.
    pub fn index(&self) -> &LexicalIndex {
        &self.index
    }

    /// Searches with `method` under `filters`, returning at most `k` hits with snippets.
    pub async fn search(
        &self,
        query: &str,
        filters: &Filters,
        k: usize,
        method: Method,
        params: &HybridParams,
    ) -> Result<Vec<SearchHit>> {
        self.retriever()
            .search(query, filters, k, method, params)
            .await
    }

    /// The retrieval methods over this folder's indexes.
    pub fn retriever(&self) -> Retriever<'_> {
        Retriever {
            index: &self.index,
            dense: self.dense.as_ref(),
            reranker: self.reranker.as_deref(),
        }
    }
}
