//! An embedding cache keyed by a hash of the model name and text: re-ingesting a changed
//! norm re-embeds only the passages whose text changed.

use std::collections::HashMap;
use std::sync::Mutex;

use cabildo_core::{Embedder, ModelError};
use sha2::{Digest, Sha256};

/// Wraps an embedder with an in-memory cache of passage vectors.
pub struct CachedEmbedder<E> {
    inner: E,
    cache: Mutex<HashMap<[u8; 32], Vec<f32>>>,
    capacity: usize,
}

impl<E: Embedder> CachedEmbedder<E> {
    /// Keeps at most `capacity` vectors (384 floats each: 100k is ~150 MB).
    pub fn new(inner: E, capacity: usize) -> Self {
        CachedEmbedder {
            inner,
            cache: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The wrapped embedder.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    fn key(&self, text: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.inner.name().as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.finalize().into()
    }

    /// Number of cached vectors.
    pub fn len(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<E: Embedder> Embedder for CachedEmbedder<E> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    fn max_tokens(&self) -> usize {
        self.inner.max_tokens()
    }

    fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| self.key(t)).collect();
        let mut out: Vec<Option<Vec<f32>>> = {
            let cache = self
                .cache
                .lock()
                .map_err(|_| ModelError::Runtime("embedding cache poisoned".into()))?;
            keys.iter().map(|k| cache.get(k).cloned()).collect()
        };
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let todo: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let fresh = self.inner.embed_passages(&todo)?;
            let mut cache = self
                .cache
                .lock()
                .map_err(|_| ModelError::Runtime("embedding cache poisoned".into()))?;
            for (&i, v) in missing.iter().zip(fresh) {
                if cache.len() < self.capacity {
                    cache.insert(keys[i], v.clone());
                }
                out[i] = Some(v);
            }
        }
        out.into_iter()
            .map(|v| v.ok_or_else(|| ModelError::Runtime("missing vector".into())))
            .collect()
    }

    fn embed_query(&self, text: &str) -> Result<Vec<f32>, ModelError> {
        self.inner.embed_query(text)
    }
}
