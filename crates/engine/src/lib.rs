//! The engine: ingest jobs that keep the lexical index and the registry consistent, search
//! with filters, and retrieval evaluation on BEIR-style sets. The CLI (and later the HTTP
//! server) are thin layers over it.
#![deny(missing_docs)]

pub mod eval;
pub mod ingest;

use std::path::{Path, PathBuf};

use cabildo_core::{Filters, SearchHit};
use cabildo_index::LexicalIndex;
use cabildo_store::Registry;

pub use cabildo_index::QueryOptions;
pub use cabildo_ingestors::IngestDefaults;
pub use cabildo_store::JobSummary;

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
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, EngineError>;

/// An opened data folder: the lexical index and the registry.
pub struct Engine {
    data_dir: PathBuf,
    index: LexicalIndex,
    registry: Registry,
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
        let registry = Registry::open(&data_dir.join("registry.sqlite")).await?;
        Ok(Engine {
            data_dir: data_dir.to_path_buf(),
            index,
            registry,
        })
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

    /// Lexical search with filters.
    pub fn search(&self, query: &str, filters: &Filters, k: usize) -> Result<Vec<SearchHit>> {
        Ok(self
            .index
            .search(query, filters, k, &QueryOptions::default())?)
    }
}
