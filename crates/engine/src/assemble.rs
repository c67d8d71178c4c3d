//! The one place an engine is assembled from typed settings: the data folder, the embedding
//! model and vector store, the reranker, the lexical ranking's knobs, and the answer writer.
//! The CLI, the server, the tests and the benchmarks all build through here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cabildo_core::settings::{GeneratorKind, Settings, VectorBackend};
use cabildo_core::{Embedder, Reranker};
use cabildo_index::QueryOptions;
use cabildo_models::{
    CrossEncoder, DecoderEmbedder, LocalGenerator, OpenAiGenerator, Pooling, TextEmbedder,
};
use cabildo_vectors::{EdgeStore, Layout, QdrantStore, VectorStore};

use crate::answer::{AskOptions, Writer};
use cabildo_store::Registry;

use crate::{create_data_dir, Dense, Engine, EngineError, Result};

/// Whether an engine loads dense retrieval (the embedding model and the vector store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseMode {
    /// When the data folder already has vectors, or a Qdrant server is configured.
    IfPresent,
    /// Always (an ingest into a new folder creates the vectors).
    Required,
    /// Never (lexical only).
    Off,
}

fn load_error(what: String, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Load {
        what,
        reason: reason.to_string(),
    }
}

/// Whether `settings` give dense retrieval something to read: vectors in the data folder
/// (embedded backend) or a Qdrant server.
pub fn has_vectors(settings: &Settings) -> bool {
    match settings.vectors.backend {
        VectorBackend::Edge => Engine::vectors_dir(&settings.data.dir).is_dir(),
        VectorBackend::Qdrant => settings.vectors.qdrant_url.is_some(),
    }
}

/// The lexical ranking's knobs from `[lexical]`.
pub fn query_options(settings: &Settings) -> QueryOptions {
    let l = &settings.lexical;
    QueryOptions {
        head_boost: l.head_boost,
        phrase_boost: l.phrase_boost,
        legal_word_weight: l.legal_word_weight,
        max_terms: l.max_terms,
        snippet_chars: l.snippet_chars,
        snippets: true,
    }
}

/// Loads the embedding model named `name` (`[vectors] embedder`) from the models folder:
/// a decoder GGUF folder (with `:last` or `:mean` pooling), e5-small, or a BERT folder.
pub fn load_embedder(models: &Path, name: &str) -> Result<Arc<dyn Embedder>> {
    let (folder, pooling) = match name.split_once(':') {
        Some((folder, pooling)) => (
            folder,
            Some(
                pooling
                    .parse::<Pooling>()
                    .map_err(|e| load_error(format!("the embedding model {name}"), e))?,
            ),
        ),
        None => (name, None),
    };
    let dir = models.join(folder);
    let failed = |e: cabildo_core::ModelError| {
        load_error(
            format!("the embedding model {name} from {}", dir.display()),
            e,
        )
    };
    let gguf = dir.join("model.gguf");
    if gguf.is_file() {
        let tokenizer = dir.join("tokenizer.json");
        let embedder = DecoderEmbedder::from_gguf(
            &gguf,
            tokenizer.is_file().then_some(tokenizer.as_path()),
            pooling.unwrap_or(Pooling::LastToken),
        )
        .map_err(failed)?;
        return Ok(Arc::new(embedder));
    }
    if pooling.is_some() {
        return Err(load_error(
            format!("the embedding model {name}"),
            "pooling can only be chosen for a decoder (a folder with model.gguf)",
        ));
    }
    let embedder = if name == "e5-small" {
        TextEmbedder::e5_small(&dir)
    } else {
        TextEmbedder::bert_dir(&dir)
    }
    .map_err(failed)?;
    Ok(Arc::new(embedder))
}

/// Loads the cross-encoder `name` (`[vectors] reranker`) from the models folder.
pub fn load_reranker(models: &Path, name: &str) -> Result<Arc<dyn Reranker>> {
    let dir = models.join(name);
    let r = CrossEncoder::load(&dir)
        .map_err(|e| load_error(format!("the reranker {name} from {}", dir.display()), e))?;
    Ok(Arc::new(r))
}

/// The vector store `[vectors]` names, for vectors of `dimension`: the embedded engine in
/// the data folder, or a collection on a Qdrant server.
pub async fn open_vector_store(
    settings: &Settings,
    dimension: usize,
) -> Result<Arc<dyn VectorStore>> {
    let v = &settings.vectors;
    Ok(match v.backend {
        VectorBackend::Edge => Arc::new(EdgeStore::open(
            &Engine::vectors_dir(&settings.data.dir),
            dimension,
        )?),
        VectorBackend::Qdrant => {
            Arc::new(connect_qdrant(settings, &v.collection, dimension).await?)
        }
    })
}

/// A vector store for one evaluation or benchmark run, of the backend `[vectors]` names: the
/// embedded engine in a temporary folder, or a fresh collection on the Qdrant server
/// (`{collection}-scratch-{name}-{pid}`). [`ScratchStore::close`] removes it.
pub struct ScratchStore {
    /// The store. (Fields drop in order: the store, which flushes, before its folder.)
    pub store: Arc<dyn VectorStore>,
    folder: Option<tempfile::TempDir>,
    collection: Option<Arc<QdrantStore>>,
}

impl ScratchStore {
    /// A scratch store named after `name` (a set's name) for vectors of `dimension`.
    pub async fn open(settings: &Settings, dimension: usize, name: &str) -> Result<ScratchStore> {
        let v = &settings.vectors;
        match v.backend {
            VectorBackend::Edge => {
                let folder = tempfile::tempdir().map_err(|e| EngineError::Io {
                    path: std::env::temp_dir().display().to_string(),
                    reason: e.to_string(),
                })?;
                let store: Arc<dyn VectorStore> =
                    Arc::new(EdgeStore::open(folder.path(), dimension)?);
                Ok(ScratchStore {
                    store,
                    folder: Some(folder),
                    collection: None,
                })
            }
            VectorBackend::Qdrant => {
                let collection = format!("{}-scratch-{name}-{}", v.collection, std::process::id());
                let q = Arc::new(connect_qdrant(settings, &collection, dimension).await?);
                Ok(ScratchStore {
                    store: q.clone(),
                    folder: None,
                    collection: Some(q),
                })
            }
        }
    }

    /// Builds the store's vector index for what was written and waits for it: the embedded
    /// engine's `optimize`, or a server's background indexing to finish (up to an hour).
    /// Returns how long the wait for the server took (zero for the embedded engine).
    pub async fn settle(&self) -> Result<std::time::Duration> {
        self.store.optimize().await?;
        match &self.collection {
            Some(q) => Ok(q
                .wait_until_indexed(std::time::Duration::from_secs(3600))
                .await?),
            None => Ok(std::time::Duration::ZERO),
        }
    }

    /// Removes the store: the server's collection, or the folder. Whoever else holds the
    /// store must have let it go: the embedded engine flushes when dropped, and its folder
    /// must still be there then.
    pub async fn close(self) -> Result<()> {
        let ScratchStore {
            store,
            folder,
            collection,
        } = self;
        drop(store);
        if let Some(q) = collection {
            q.drop_collection().await?;
        }
        drop(folder);
        Ok(())
    }
}

/// The registry `[data]` names: the PostgreSQL database `registry` (shared by replicas), or
/// `registry.sqlite` in the data folder, created with the folder when absent.
pub async fn open_registry(settings: &Settings) -> Result<Registry> {
    match &settings.data.registry {
        Some(url) => Ok(Registry::connect(url).await?),
        None => {
            let dir = &settings.data.dir;
            create_data_dir(dir)?;
            Ok(Registry::open(&Engine::registry_path(dir)).await?)
        }
    }
}

/// `collection` on the Qdrant server `[vectors]` names, for vectors of `dimension`.
async fn connect_qdrant(
    settings: &Settings,
    collection: &str,
    dimension: usize,
) -> Result<QdrantStore> {
    let v = &settings.vectors;
    let url = v.qdrant_url.as_deref().ok_or_else(|| {
        load_error(
            "the Qdrant vector store".into(),
            "vectors.qdrant_url is not set",
        )
    })?;
    let layout = Layout {
        shards: v.shards,
        replicas: v.replication_factor,
    };
    Ok(QdrantStore::connect(url, v.qdrant_api_key.clone(), collection, dimension, layout).await?)
}

impl Engine {
    /// Opens the data folder `[data] dir` and assembles the engine `settings` describe:
    /// dense retrieval as `dense` says, the reranker when one is named, the lexical knobs.
    pub async fn from_settings(settings: &Settings, dense: DenseMode) -> Result<Engine> {
        let registry = open_registry(settings).await?;
        let mut engine = Engine::open_with_registry(&settings.data.dir, registry)
            .await?
            .with_query_options(query_options(settings));
        let wanted = match dense {
            DenseMode::IfPresent => has_vectors(settings),
            DenseMode::Required => true,
            DenseMode::Off => false,
        };
        if wanted {
            let embedder = load_embedder(&settings.data.models, &settings.vectors.embedder)?;
            let store = open_vector_store(settings, embedder.dimension()).await?;
            engine = engine.with_dense(Dense { embedder, store });
        }
        if let Some(name) = &settings.vectors.reranker {
            engine = engine.with_reranker(load_reranker(&settings.data.models, name)?);
        }
        Ok(engine)
    }
}

impl Writer {
    /// The answer writer `[answer]` names: the local model (a GGUF file or a safetensors
    /// checkpoint folder), an OpenAI-compatible server, or quotes only.
    pub fn from_settings(settings: &Settings) -> Result<Writer> {
        let a = &settings.answer;
        Ok(match a.generator {
            GeneratorKind::Extractive => Writer::Extractive,
            GeneratorKind::Local => {
                let dir = settings.data.models.join(&a.model);
                let g = LocalGenerator::from_folder(&dir)
                    .map_err(|e| load_error(format!("the generator from {}", dir.display()), e))?;
                Writer::Model(Arc::new(g))
            }
            GeneratorKind::Openai => {
                let url = a.openai_url.as_deref().ok_or_else(|| {
                    load_error(
                        "the OpenAI-compatible generator".into(),
                        "answer.openai_url is not set",
                    )
                })?;
                Writer::Model(Arc::new(OpenAiGenerator::new(
                    url,
                    a.openai_api_key.clone(),
                    &a.openai_model,
                    a.openai_context,
                    Duration::from_secs(a.openai_timeout_s),
                )))
            }
        })
    }
}

impl AskOptions {
    /// How answers are made, from `[answer]` and `[retrieval]`.
    pub fn from_settings(settings: &Settings) -> AskOptions {
        let a = &settings.answer;
        AskOptions {
            sources: a.sources,
            source_chars: a.source_chars,
            max_tokens: a.max_tokens,
            temperature: a.temperature,
            top_p: None,
            seed: 0,
            stop: Vec::new(),
            method: None,
            params: settings.retrieval.clone(),
            min_cosine: a.min_cosine,
            min_coverage: a.min_coverage,
        }
    }
}
