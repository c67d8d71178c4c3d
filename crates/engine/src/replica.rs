//! Several API replicas over one shared registry (PostgreSQL) and one vector store: each
//! keeps its own lexical index in its own data folder, kept in step through the registry's
//! norm log. Whoever writes the index (an ingest, a delete) appends every norm it changed,
//! with all its passages as committed; every replica applies the entries it has not seen,
//! at start and then every second, and before it writes itself. Applying an entry replaces
//! the norm, so an entry applied twice, or by the replica that wrote it, changes nothing.
//!
//! Why not one index for all: tantivy is a library, not a server, and one index folder can
//! only have one writer. Moving lexical scoring into Qdrant as sparse vectors would replace
//! the tuned BM25 fields (heading boost, phrase proximity) whose figures docs/evaluation.md
//! records. A replica that catches up holds the same index, so it ranks the same.

use std::path::PathBuf;

use cabildo_core::Passage;
use cabildo_store::Backend;

use crate::{Engine, EngineError, Result};

/// Entries read from the log per index commit.
const PAGE: u32 = 200;

impl Engine {
    /// Whether this engine shares its registry with other replicas (a PostgreSQL one), and
    /// so publishes and applies index changes.
    pub fn is_replica(&self) -> bool {
        self.registry.backend() == Backend::Postgres
    }

    /// The file holding the last log position this data folder's index applied.
    fn log_position_path(&self) -> PathBuf {
        self.data_dir.join("norm_log.position")
    }

    fn log_position(&self) -> Result<i64> {
        match std::fs::read_to_string(self.log_position_path()) {
            Ok(s) => s.trim().parse().map_err(|_| EngineError::Io {
                path: self.log_position_path().display().to_string(),
                reason: format!("not a log position: {s:?}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(self.position_error(e)),
        }
    }

    fn position_error(&self, e: std::io::Error) -> EngineError {
        EngineError::Io {
            path: self.log_position_path().display().to_string(),
            reason: e.to_string(),
        }
    }

    /// The norm log entries of `norm_ids` as the index now holds them (after a commit),
    /// for the registry to append with its record of them; none without replicas.
    pub(crate) fn log_entries<'a>(
        &self,
        norm_ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<(String, String)>> {
        if !self.is_replica() {
            return Ok(Vec::new());
        }
        let mut entries = Vec::new();
        for id in norm_ids {
            let passages = self.index().passages_of(id)?;
            let json = serde_json::to_string(&passages).map_err(|e| EngineError::Io {
                path: format!("norm {id}"),
                reason: e.to_string(),
            })?;
            entries.push((id.to_string(), json));
        }
        Ok(entries)
    }

    /// Applies the norm log entries this index has not seen yet; returns how many. Done by
    /// the server at start and every second; an ingest does it first. A no-op without a
    /// shared registry.
    pub async fn catch_up(&self) -> Result<usize> {
        if !self.is_replica() {
            return Ok(0);
        }
        let _writing = self.writing.lock().await;
        self.catch_up_locked().await
    }

    /// [`Engine::catch_up`] with the write lock already held.
    pub(crate) async fn catch_up_locked(&self) -> Result<usize> {
        if !self.is_replica() {
            return Ok(0);
        }
        let mut position = self.log_position()?;
        let mut applied = 0;
        loop {
            let entries = self.registry.norm_log_after(position, PAGE).await?;
            let Some(last) = entries.last() else { break };
            let last = last.seq;
            let mut batch = self.index().batch()?;
            for e in &entries {
                let passages: Vec<Passage> =
                    serde_json::from_str(&e.passages).map_err(|err| EngineError::Io {
                        path: format!("norm log entry {} ({})", e.seq, e.norm_id),
                        reason: err.to_string(),
                    })?;
                batch.delete_norm(&e.norm_id);
                for p in &passages {
                    batch.add(p)?;
                }
            }
            batch.commit()?;
            // After the commit: a crash in between applies these entries again, which
            // changes nothing.
            let path = self.log_position_path();
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, last.to_string()).map_err(|e| self.position_error(e))?;
            std::fs::rename(&tmp, &path).map_err(|e| self.position_error(e))?;
            position = last;
            applied += entries.len();
        }
        if applied > 0 {
            tracing::info!(
                applied,
                position,
                "lexical index caught up with the norm log"
            );
        }
        Ok(applied)
    }
}
