//! Opening the data folder with the parts each command needs: the embedder and vector store
//! for dense retrieval, a reranker when one is configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cabildo_engine::{Dense, EdgeStore, Engine, QdrantStore};
use cabildo_models::{CrossEncoder, DecoderEmbedder, Embedder, Pooling, Reranker, TextEmbedder};
use clap::{Args, ValueEnum};

/// Where passage vectors live.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The embedded Qdrant engine, in the data folder's `vectors/` (no server needed).
    Edge,
    /// A Qdrant server or cluster at --qdrant-url.
    Qdrant,
}

/// Options of dense retrieval, shared by every command.
#[derive(Args, Clone)]
pub struct DenseOptions {
    /// Embedding model: `e5-small`, a BERT-family folder under --models, or a Llama-family
    /// GGUF folder (`model.gguf`; Latam-GPT, qwen2.5-0.5b) as `NAME` or `NAME:last`
    /// (last-token pooling after a one-word prompt) or `NAME:mean` (mean pooling).
    #[arg(
        long,
        global = true,
        env = "CABILDO_EMBEDDER",
        default_value = "e5-small"
    )]
    pub embedder: String,
    /// Where passage vectors live.
    #[arg(long, global = true, env = "CABILDO_VECTORS", value_enum, default_value_t = Backend::Edge)]
    pub vectors: Backend,
    /// Qdrant's gRPC address for `--vectors qdrant` (e.g. http://localhost:6334).
    #[arg(long, global = true, env = "QDRANT_URL")]
    pub qdrant_url: Option<String>,
    /// Qdrant API key.
    #[arg(long, global = true, env = "QDRANT_API_KEY", hide_env_values = true)]
    pub qdrant_api_key: Option<String>,
    /// Qdrant collection.
    #[arg(
        long,
        global = true,
        env = "CABILDO_QDRANT_COLLECTION",
        default_value = "cabildo"
    )]
    pub qdrant_collection: String,
    /// Cross-encoder folder under --models for the rerank method.
    #[arg(long, global = true, env = "CABILDO_RERANKER")]
    pub reranker: Option<String>,
}

impl DenseOptions {
    /// Whether the data folder already has vectors (edge) or a server is configured (qdrant).
    pub fn has_vectors(&self, data: &Path) -> bool {
        match self.vectors {
            Backend::Edge => Engine::vectors_dir(data).is_dir(),
            Backend::Qdrant => self.qdrant_url.is_some(),
        }
    }
}

/// Loads the embedding model named `name` from the models folder.
pub fn load_embedder(models: &Path, name: &str) -> Result<Arc<dyn Embedder>> {
    let (folder, pooling) = match name.split_once(':') {
        Some((folder, pooling)) => (
            folder,
            Some(pooling.parse::<Pooling>().map_err(anyhow::Error::msg)?),
        ),
        None => (name, None),
    };
    let dir = models.join(folder);
    let context = || format!("loading the embedding model {name} from {}", dir.display());
    let gguf = dir.join("model.gguf");
    if gguf.is_file() {
        let tokenizer = dir.join("tokenizer.json");
        let embedder = DecoderEmbedder::from_gguf(
            &gguf,
            tokenizer.is_file().then_some(tokenizer.as_path()),
            pooling.unwrap_or(Pooling::LastToken),
        )
        .with_context(context)?;
        return Ok(Arc::new(embedder));
    }
    if pooling.is_some() {
        anyhow::bail!(
            "{name}: pooling can only be chosen for a decoder (a folder with model.gguf)"
        );
    }
    let embedder = if name == "e5-small" {
        TextEmbedder::e5_small(&dir)
    } else {
        TextEmbedder::bert_dir(&dir)
    }
    .with_context(context)?;
    Ok(Arc::new(embedder))
}

/// Loads the reranker, when one is configured.
pub fn load_reranker(models: &Path, name: Option<&str>) -> Result<Option<Arc<dyn Reranker>>> {
    let Some(name) = name else { return Ok(None) };
    let dir: PathBuf = models.join(name);
    let r = CrossEncoder::load(&dir)
        .with_context(|| format!("loading the reranker {name} from {}", dir.display()))?;
    Ok(Some(Arc::new(r)))
}

/// Opens the data folder; with `dense`, also the embedder and the vector store (creating the
/// embedded store when absent).
pub async fn open(
    data: &Path,
    models: &Path,
    options: &DenseOptions,
    dense: bool,
) -> Result<Engine> {
    let mut engine = Engine::open(data)
        .await
        .with_context(|| format!("opening data folder {}", data.display()))?;
    if dense {
        let embedder = load_embedder(models, &options.embedder)?;
        let dim = embedder.dimension();
        let store: Arc<dyn cabildo_engine::VectorStore> = match options.vectors {
            Backend::Edge => Arc::new(EdgeStore::open(&Engine::vectors_dir(data), dim)?),
            Backend::Qdrant => {
                let Some(url) = &options.qdrant_url else {
                    bail!("--vectors qdrant needs --qdrant-url (or QDRANT_URL)");
                };
                Arc::new(
                    QdrantStore::connect(
                        url,
                        options.qdrant_api_key.clone(),
                        &options.qdrant_collection,
                        dim,
                    )
                    .await?,
                )
            }
        };
        engine = engine.with_dense(Dense { embedder, store });
    }
    if let Some(r) = load_reranker(models, options.reranker.as_deref())? {
        engine = engine.with_reranker(r);
    }
    Ok(engine)
}
