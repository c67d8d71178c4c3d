//! The engine: ingest jobs that keep the lexical index, the vectors and the registry
//! consistent; the retrieval pipeline ([`retrieve`]); cited, checked answers ([`answer`]);
//! retrieval and answer evaluation on BEIR-style sets ([`eval`]); and the one place all of it is
//! assembled from settings ([`assemble`]). The CLI and the HTTP server are thin layers over it.
#![deny(missing_docs)]

pub mod answer;
pub mod assemble;
pub mod check;
pub mod context;
pub mod eval;
pub mod ingest;
pub mod replica;
pub mod retrieve;
pub mod versions;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cabildo_core::{Embedder, Filters, ModelError, Reranker, SearchHit};
use cabildo_store::Registry;

use retrieve::{HybridParams, Method, Pipeline};

pub use assemble::DenseMode;
pub use cabildo_core::settings::{Layers as SettingsLayers, Settings, SettingsError};

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
    /// A model or store named in the settings could not be loaded.
    #[error("loading {what}: {reason}")]
    Load {
        /// What was being loaded, and from where.
        what: String,
        /// Why it failed.
        reason: String,
    },
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
    registry: Registry,
    pipeline: Pipeline,
    /// Held by whatever writes the lexical index (an ingest job, a delete, a replica's
    /// catch-up), so that a replica never applies the log between another write's commit
    /// and its publication.
    writing: tokio::sync::Mutex<()>,
}

fn create_data_dir(data_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(data_dir).map_err(|e| EngineError::Io {
        path: data_dir.display().to_string(),
        reason: e.to_string(),
    })
}

impl Engine {
    /// Opens (creating if needed) the data folder: `index/` for tantivy and
    /// `registry.sqlite` for the registry.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        create_data_dir(data_dir)?;
        let registry = Registry::open(&Engine::registry_path(data_dir)).await?;
        Engine::open_with_registry(data_dir, registry).await
    }

    /// Opens (creating if needed) the data folder's index, with `registry` (a PostgreSQL
    /// one that several replicas share, see [`assemble::open_registry`]).
    pub async fn open_with_registry(data_dir: &Path, registry: Registry) -> Result<Self> {
        create_data_dir(data_dir)?;
        let index = LexicalIndex::open(&data_dir.join("index"))?;
        Ok(Engine {
            data_dir: data_dir.to_path_buf(),
            registry,
            pipeline: Pipeline::new(index, None, None, QueryOptions::default()),
            writing: tokio::sync::Mutex::new(()),
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
        self.pipeline = self.pipeline.with_dense(dense);
        self
    }

    /// Adds a cross-encoder for the rerank method.
    pub fn with_reranker(mut self, reranker: Arc<dyn Reranker>) -> Self {
        self.pipeline = self.pipeline.with_reranker(reranker);
        self
    }

    /// Sets the lexical ranking's knobs (`[lexical]`).
    pub fn with_query_options(mut self, options: QueryOptions) -> Self {
        self.pipeline = self.pipeline.with_query_options(options);
        self
    }

    /// Dense retrieval, when configured.
    pub fn dense(&self) -> Option<&Dense> {
        self.pipeline.dense()
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
        self.pipeline.index()
    }

    /// The retrieval pipeline over this folder's indexes.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
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
        Ok(self
            .pipeline
            .retrieve(query, filters, k, method, params, true)
            .await?
            .hits)
    }
}
