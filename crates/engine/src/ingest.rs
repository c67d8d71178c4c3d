//! Ingest jobs: walk the given paths, parse each file, and write its passages to the index
//! and its norm to the registry.
//!
//! Versions: a file whose text is dated (LeyChile's `version_date`, BCN's `fechaVersion`…)
//! adds that version to the norm's others instead of replacing them ([`crate::versions`]:
//! each provision is kept once per stretch of versions over which it did not change). An
//! undated text replaces whatever its norm held.
//!
//! Consistency: passages become visible only when a batch commits (tantivy commits are
//! atomic), and a norm's old passages are deleted in the same batch that adds the new ones,
//! so a norm moves from one set of versions to the next at once. The registry is written after the
//! commit; a crash in between only means the next run re-ingests those files, which is
//! idempotent (deterministic ids, delete-then-add). Unchanged files are skipped by content
//! hash. A file that fails is reported and the batch goes on.
//!
//! With dense retrieval configured, each parsed file's passages are embedded in batches and
//! written to the vector store (its old vectors deleted first) before they are added to the
//! index batch, so by the time the registry records a file both indexes hold it; a crash in
//! between again only means the file is redone. A file whose text is unchanged is re-embedded
//! only when its vectors were made by another model, or not made at all.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cabildo_core::{Norm, Passage};
use cabildo_ingestors::{is_metadata_file, parse_file, IngestDefaults};
use cabildo_store::{JobSummary, VersionRecord, Written};
use cabildo_text::redact_pii;
use chrono::NaiveDate;
use serde::Serialize;

use crate::context::{stored_vectors, vector_recipe};
use crate::versions::{self, provision_id, Contents};
use crate::{Dense, Engine, EngineError, Result};

/// Commit after this many passages, to bound memory and the work a crash can lose.
const COMMIT_EVERY_PASSAGES: usize = 5_000;

/// Passages embedded and written to the vector store at a time.
const EMBED_BATCH: usize = 64;

/// Own embeddings an ingest job keeps for reuse (384 floats each: ~30 MB).
const OWN_VECTORS_KEPT: usize = 20_000;

/// What happened to one file.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum FileOutcome {
    /// Parsed and written.
    Indexed {
        /// The norm's id.
        norm_id: String,
        /// Passages written.
        passages: usize,
    },
    /// Same content hash as already indexed.
    Unchanged,
    /// Same content, ingested with another access level or tenant: its passages and vectors
    /// were relabelled (not re-parsed, not re-embedded).
    Relabelled {
        /// The norm's id.
        norm_id: String,
        /// Passages relabelled.
        passages: usize,
    },
    /// Could not be ingested.
    Failed {
        /// One line saying why.
        reason: String,
    },
}

/// Receives progress of a running job (a progress bar, log lines).
pub trait Progress {
    /// Called once with the number of files and their total size.
    fn start(&mut self, files: usize, bytes: u64);
    /// Called after each file.
    fn file_done(&mut self, path: &Path, bytes: u64, outcome: &FileOutcome);
    /// Called after each batch of passages is embedded (embedding is the long part).
    fn embedded(&mut self, _passages: usize) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: usize, _: u64) {}
    fn file_done(&mut self, _: &Path, _: u64, _: &FileOutcome) {}
}

/// The result of a job.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// The registry's job id.
    pub job_id: i64,
    /// Totals.
    #[serde(flatten)]
    pub summary: JobSummary,
    /// Bytes read.
    pub bytes: u64,
    /// Metadata files skipped (README, LICENSE…).
    pub skipped: u64,
    /// Files that failed, with reasons.
    pub failed: Vec<Failure>,
    /// Passages embedded into the vector store.
    pub embedded: u64,
    /// Seconds spent embedding and writing vectors.
    pub embed_seconds: f64,
    /// The embedding model, when dense retrieval is configured.
    pub embedder: Option<String>,
}

/// A file that failed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Its path.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Lists the files under `paths` (recursively, sorted), separating metadata files.
pub fn collect_files(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, u64)> {
    let mut files = Vec::new();
    let mut skipped = 0;
    for p in paths {
        if !p.exists() {
            return Err(EngineError::Io {
                path: p.display().to_string(),
                reason: "no such file or folder".into(),
            });
        }
        for entry in walkdir::WalkDir::new(p).sort_by_file_name() {
            let entry = entry.map_err(|e| EngineError::Io {
                path: p.display().to_string(),
                reason: e.to_string(),
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            if is_metadata_file(entry.path()) {
                skipped += 1;
            } else {
                files.push(entry.into_path());
            }
        }
    }
    Ok((files, skipped))
}

impl Engine {
    /// Ingests files and folders.
    pub async fn ingest(
        &self,
        paths: &[PathBuf],
        defaults: &IngestDefaults,
        progress: &mut dyn Progress,
    ) -> Result<IngestReport> {
        let job = self.registry.start_job().await?;
        self.ingest_job(job, paths, defaults, progress).await
    }

    /// Runs an ingest job already opened with [`cabildo_store::Registry::start_job`] (the
    /// server hands out the job id before the work starts). A job that fails as a whole is
    /// marked failed in the registry with the reason; what it committed before stays.
    pub async fn ingest_job(
        &self,
        job: i64,
        paths: &[PathBuf],
        defaults: &IngestDefaults,
        progress: &mut dyn Progress,
    ) -> Result<IngestReport> {
        let result = match defaults.clone().checked() {
            Ok(defaults) => {
                let _writing = self.writing.lock().await;
                // A replica writes on top of what the others wrote: a new version of a norm
                // reads the earlier ones back from the index.
                match self.catch_up_locked().await {
                    Ok(_) => self.run_job(job, paths, &defaults, progress).await,
                    Err(e) => Err(e),
                }
            }
            Err(why) => Err(EngineError::Unavailable(why)),
        };
        if let Err(e) = &result {
            if let Err(record) = self.registry.fail_job(job, &e.to_string()).await {
                tracing::error!(job, error = %record, "could not mark the ingest job failed");
            }
        }
        result
    }

    async fn run_job(
        &self,
        job: i64,
        paths: &[PathBuf],
        defaults: &IngestDefaults,
        progress: &mut dyn Progress,
    ) -> Result<IngestReport> {
        let started = Instant::now();
        let (files, skipped) = collect_files(paths)?;
        let sizes: Vec<u64> = files
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .collect();
        progress.start(files.len(), sizes.iter().sum());
        let mut summary = JobSummary {
            files: files.len() as u64,
            ..JobSummary::default()
        };
        let mut failed = Vec::new();
        let mut batch = self.index().batch()?;
        // What the open batch wrote, for the registry once it commits. A norm in it must be
        // committed before another version of it is written, which reads the earlier ones
        // back from the index.
        let mut pending: Vec<Written> = Vec::new();
        let in_batch =
            |pending: &[Written], norm_id: &str| pending.iter().any(|w| w.norm.id == norm_id);
        let mut own = OwnVectors::default();
        let mut norms_written: HashSet<String> = HashSet::new();
        let mut bytes_read = 0;
        let mut embedded = 0;
        let mut embed_seconds = 0.0;
        let embedder = self.dense().map(|d| d.embedder.name().to_string());
        // What the registry records as having made a file's vectors: the model and the
        // recipe, so vectors made before context mixing are remade.
        let vectors_by = embedder.as_deref().map(vector_recipe);

        for (path, size) in files.iter().zip(sizes) {
            let key = std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string();
            let outcome = match std::fs::read(path) {
                Err(e) => FileOutcome::Failed {
                    reason: format!("cannot read: {e}"),
                },
                Ok(bytes) => {
                    bytes_read += bytes.len() as u64;
                    let hash = cabildo_text::content_hash(&bytes);
                    let previous = self.registry.source(&key).await?;
                    let embedded_alike = |e: &Option<String>| match &vectors_by {
                        Some(by) => e.as_deref() == Some(by.as_str()),
                        None => true,
                    };
                    let same = previous
                        .as_ref()
                        .filter(|p| p.content_hash == hash && embedded_alike(&p.embedder));
                    if let Some(same) = same {
                        // Who may read it is not in the file: an access level or tenant
                        // that changed must still take effect.
                        if in_batch(&pending, &same.norm_id) {
                            batch = self
                                .flush(batch, &mut pending, vectors_by.as_deref())
                                .await?;
                        }
                        match self.relabel(&same.norm_id, defaults, &mut batch).await? {
                            Some((norm, n)) => {
                                let id = norm.id.clone();
                                pending.push(Written {
                                    norm,
                                    passages: n,
                                    version: None,
                                });
                                FileOutcome::Relabelled {
                                    norm_id: id,
                                    passages: n,
                                }
                            }
                            None => FileOutcome::Unchanged,
                        }
                    } else {
                        match parse_file(path, &bytes, defaults) {
                            Err(e) => FileOutcome::Failed {
                                reason: e.to_string(),
                            },
                            Ok(mut parsed) => match self.taken(&parsed.norm, &key).await? {
                                Some(reason) => FileOutcome::Failed { reason },
                                None => {
                                    parsed.norm.source_path = key.clone();
                                    if defaults.redact_pii {
                                        for p in &mut parsed.passages {
                                            if let Cow::Owned(t) = redact_pii(&p.text) {
                                                p.text = t;
                                            }
                                        }
                                    }
                                    summary.flagged += flag_instructions(&parsed.passages);
                                    if let Some(old) = &previous {
                                        if old.norm_id != parsed.norm.id {
                                            batch.delete_norm(&old.norm_id);
                                            if let Some(d) = self.dense() {
                                                d.store.delete_norm(&old.norm_id).await?;
                                            }
                                            self.registry.forget_norm(&old.norm_id).await?;
                                        }
                                    }
                                    if in_batch(&pending, &parsed.norm.id) {
                                        batch = self
                                            .flush(batch, &mut pending, vectors_by.as_deref())
                                            .await?;
                                    }
                                    let t = Instant::now();
                                    let (written, n, e) = match parsed.norm.valid_from {
                                        Some(effective) => {
                                            // Same text, vectors made otherwise (another
                                            // model, or none): all of them made again.
                                            let stale = previous
                                                .as_ref()
                                                .is_some_and(|p| !embedded_alike(&p.embedder));
                                            self.write_version(
                                                parsed.norm,
                                                parsed.passages,
                                                effective,
                                                stale,
                                                &mut batch,
                                                &mut own,
                                                progress,
                                            )
                                            .await?
                                        }
                                        None => {
                                            self.write_undated(
                                                parsed.norm,
                                                parsed.passages,
                                                &mut batch,
                                                progress,
                                            )
                                            .await?
                                        }
                                    };
                                    if e > 0 {
                                        embedded += e;
                                        embed_seconds += t.elapsed().as_secs_f64();
                                    }
                                    let id = written.norm.id.clone();
                                    pending.push(written);
                                    FileOutcome::Indexed {
                                        norm_id: id,
                                        passages: n,
                                    }
                                }
                            },
                        }
                    }
                }
            };
            match &outcome {
                FileOutcome::Indexed { norm_id, passages }
                | FileOutcome::Relabelled { norm_id, passages } => {
                    // 58 versions of one constitution are one norm written.
                    norms_written.insert(norm_id.clone());
                    summary.norms = norms_written.len() as u64;
                    summary.passages += *passages as u64;
                }
                FileOutcome::Unchanged => summary.unchanged += 1,
                FileOutcome::Failed { reason } => {
                    summary.failures += 1;
                    tracing::warn!(path = %path.display(), %reason, "file not ingested");
                    self.registry
                        .add_failure(job, &path.display().to_string(), reason)
                        .await?;
                    failed.push(Failure {
                        path: path.display().to_string(),
                        reason: reason.clone(),
                    });
                }
            }
            progress.file_done(path, size, &outcome);
            if pending.iter().map(|w| w.passages).sum::<usize>() >= COMMIT_EVERY_PASSAGES {
                batch = self
                    .flush(batch, &mut pending, vectors_by.as_deref())
                    .await?;
            }
        }
        batch.commit()?;
        let log = self.log_entries(pending.iter().map(|w| w.norm.id.as_str()))?;
        self.registry
            .record(&pending, vectors_by.as_deref(), &log)
            .await?;
        if let Some(d) = self.dense() {
            if embedded > 0 {
                // Builds the HNSW graph over what was added, so queries need not scan.
                let t = Instant::now();
                d.store.optimize().await?;
                embed_seconds += t.elapsed().as_secs_f64();
            }
        }
        summary.seconds = started.elapsed().as_secs_f64();
        self.registry.finish_job(job, &summary, "done").await?;
        Ok(IngestReport {
            job_id: job,
            summary,
            bytes: bytes_read,
            skipped,
            failed,
            embedded,
            embed_seconds,
            embedder,
        })
    }
}

impl Engine {
    /// Commits `batch`, then records what it wrote in the registry; returns a fresh batch.
    async fn flush<'a>(
        &'a self,
        batch: cabildo_index::WriteBatch<'a>,
        pending: &mut Vec<Written>,
        vectors_by: Option<&str>,
    ) -> Result<cabildo_index::WriteBatch<'a>> {
        batch.commit()?;
        let log = self.log_entries(pending.iter().map(|w| w.norm.id.as_str()))?;
        self.registry.record(pending, vectors_by, &log).await?;
        pending.clear();
        Ok(self.index().batch()?)
    }

    /// Writes a norm whose text is undated: it replaces whatever the norm held. Returns
    /// what to record, the passages written and the passages embedded.
    async fn write_undated(
        &self,
        norm: Norm,
        passages: Vec<Passage>,
        batch: &mut cabildo_index::WriteBatch<'_>,
        progress: &mut dyn Progress,
    ) -> Result<(Written, usize, u64)> {
        let mut embedded = 0;
        if let Some(d) = self.dense() {
            embedded = embed_norm(d, &norm.id, &passages, progress).await?;
        }
        batch.delete_norm(&norm.id);
        for p in &passages {
            batch.add(p)?;
        }
        let n = passages.len();
        let written = Written {
            norm,
            passages: n,
            version: None,
        };
        Ok((written, n, embedded))
    }

    /// Merges one dated version of a norm into the versions it already holds (see
    /// [`crate::versions`]): the index gets the norm's records again, the vector store
    /// only what changed (everything when `stale`, or when the store does not hold one
    /// vector per record). A file that now holds a later version (an updated download under
    /// the same name) adds that version; the earlier one stays. Returns what to record,
    /// this version's passages and those embedded.
    #[allow(clippy::too_many_arguments)]
    async fn write_version(
        &self,
        norm: Norm,
        passages: Vec<Passage>,
        effective: NaiveDate,
        stale: bool,
        batch: &mut cabildo_index::WriteBatch<'_>,
        own: &mut OwnVectors,
        progress: &mut dyn Progress,
    ) -> Result<(Written, usize, u64)> {
        let id = norm.id.clone();
        let stored = self.index().passages_of(&id)?;
        let held: Vec<VersionRecord> = self
            .registry
            .versions(&id)
            .await?
            .into_iter()
            .filter(|v| v.effective != effective)
            .collect();
        // A repeal known from its one version: the text stood from its publication.
        let effective = match norm.publication_date {
            Some(p) if held.is_empty() && norm.valid_to == Some(effective) && p < effective => p,
            _ => effective,
        };
        let days: Vec<NaiveDate> = held.iter().map(|v| v.effective).collect();
        let mut contents = versions::contents(&stored, &days);
        let provisions = passages.len();
        contents.insert(effective, passages);
        let latest_is_new = contents.keys().next_back() == Some(&effective);
        // The latest version says whether the norm was repealed, and when.
        let end = if latest_is_new {
            norm.valid_to
        } else {
            held.last().and_then(|v| v.repealed)
        };
        let mut records = versions::records(&contents, end);
        for r in &mut records {
            r.access = norm.access;
            r.tenant = norm.tenant.clone();
        }
        let mut changes = versions::changes(&stored, &records);
        let mut embedded = 0;
        if let Some(d) = self.dense() {
            if stale || d.store.count_of(&id).await? != stored.len() {
                changes.embed = (0..records.len()).collect();
                changes.revalidate.clear();
            }
            let relabel = stored
                .first()
                .is_some_and(|s| s.access != norm.access || s.tenant != norm.tenant);
            if relabel {
                d.store
                    .set_access(&id, norm.access, norm.tenant.as_deref())
                    .await?;
            }
            embedded = embed_records(d, &contents, &records, &changes.embed, own, progress).await?;
            for &i in &changes.revalidate {
                let r = &records[i];
                d.store
                    .set_validity(&r.id, r.valid_from, r.valid_to)
                    .await?;
            }
            d.store.delete_passages(&changes.gone).await?;
        }
        batch.delete_norm(&id);
        for r in &records {
            batch.add(r)?;
        }
        tracing::info!(
            norm = %id,
            version = %effective,
            versions = contents.len(),
            records = records.len(),
            new = changes.embed.len(),
            "version merged"
        );
        let version = VersionRecord {
            effective,
            version_date: norm.version_date,
            repealed: norm.valid_to,
            title: norm.title.clone(),
            official_url: norm.official_url.clone(),
            content_hash: norm.content_hash.clone(),
            source_path: norm.source_path.clone(),
            provisions: provisions as u64,
        };
        // The registry's row describes the latest version, in force since the first.
        let mut current = if latest_is_new {
            norm
        } else {
            match self.registry.norm(&id).await? {
                Some((n, _)) => n,
                None => norm,
            }
        };
        current.valid_from = contents.keys().next().copied();
        current.valid_to = end;
        let written = Written {
            norm: current,
            passages: records.len(),
            version: Some(version),
        };
        Ok((written, provisions, embedded))
    }

    /// Why `norm` (parsed from the file `key`) may not be written: its id came from its
    /// file's place and is already another file's, which still exists (two files sharing
    /// folder and file name under different parents). A file that moved, or a source that
    /// names its own id (a version of the same law), goes on as a version of that norm.
    async fn taken(&self, norm: &Norm, key: &str) -> Result<Option<String>> {
        if !norm.id_from_path {
            return Ok(None);
        }
        let Some((other, _)) = self.registry.norm(&norm.id).await? else {
            return Ok(None);
        };
        let collides = other.source_path != key && Path::new(&other.source_path).exists();
        Ok(collides.then(|| {
            format!(
                "its id {} (from its folder and file name) is already {}'s; nothing was \
                 replaced: rename this file or its folder",
                norm.id, other.source_path
            )
        }))
    }

    /// When `norm_id` is indexed with another access level or tenant than `defaults` give,
    /// relabels it: the vectors' payload at once, then its passages in `batch` (added again
    /// with the new labels, from the index itself). Returns the relabelled norm and its
    /// passage count, for the registry, which is written after the batch commits; `None`
    /// when nothing changed. A crash part-way leaves the registry's old labels, so the next
    /// ingest relabels again.
    async fn relabel(
        &self,
        norm_id: &str,
        defaults: &IngestDefaults,
        batch: &mut cabildo_index::WriteBatch<'_>,
    ) -> Result<Option<(Norm, usize)>> {
        let Some((mut norm, _)) = self.registry.norm(norm_id).await? else {
            return Ok(None);
        };
        if norm.access == defaults.access && norm.tenant == defaults.tenant {
            return Ok(None);
        }
        tracing::info!(
            norm = norm_id,
            from = %norm.access,
            to = %defaults.access,
            "same content, new access level or tenant: relabelling"
        );
        if let Some(d) = self.dense() {
            d.store
                .set_access(norm_id, defaults.access, defaults.tenant.as_deref())
                .await?;
        }
        let mut passages = self.index().passages_of(norm_id)?;
        batch.delete_norm(norm_id);
        for p in &mut passages {
            p.access = defaults.access;
            p.tenant = defaults.tenant.clone();
            batch.add(p)?;
        }
        norm.access = defaults.access;
        norm.tenant = defaults.tenant.clone();
        Ok(Some((norm, passages.len())))
    }

    /// Deletes a norm from the lexical index, the vector store and the registry. Returns
    /// whether the registry knew it. The index commit comes first, so a crash part-way
    /// leaves at worst a registry row whose passages are gone, which the next delete or
    /// re-ingest of its file clears.
    pub async fn delete_norm(&self, norm_id: &str) -> Result<bool> {
        let _writing = self.writing.lock().await;
        let mut batch = self.index().batch()?;
        batch.delete_norm(norm_id);
        batch.commit()?;
        if let Some(d) = self.dense() {
            d.store.delete_norm(norm_id).await?;
        }
        Ok(self.registry.delete_norm(norm_id).await?)
    }
}

/// Counts (and logs) passages that read like instructions to the model. They are indexed
/// like any other text: the prompt fences them as data and access control never reads
/// them; the operator is told so they can look at the document.
fn flag_instructions(passages: &[Passage]) -> u64 {
    let mut flagged = 0;
    for p in passages {
        if let Some(why) = cabildo_text::instruction_like(&p.text) {
            flagged += 1;
            tracing::warn!(passage = %p.id, why, "document text reads like instructions to the model; indexed as data");
        }
    }
    flagged
}

/// Replaces a norm's vectors: embeds its passages in batches, mixes each vector with its
/// context (which needs the whole norm's), then deletes the old vectors and writes the new
/// ones. Returns the number embedded.
async fn embed_norm(
    dense: &Dense,
    norm_id: &str,
    passages: &[Passage],
    progress: &mut dyn Progress,
) -> Result<u64> {
    let refs: Vec<&Passage> = passages.iter().collect();
    let vectors = stored_vectors(&refs, |texts| -> Result<Vec<Vec<f32>>> {
        let mut own = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(EMBED_BATCH) {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            own.extend(dense.embedder.embed_passages(&chunk)?);
            progress.embedded(chunk.len());
        }
        Ok(own)
    })?;
    dense.store.delete_norm(norm_id).await?;
    for (ps, vs) in refs.chunks(EMBED_BATCH).zip(vectors.chunks(EMBED_BATCH)) {
        dense.store.upsert(ps, vs).await?;
    }
    Ok(passages.len() as u64)
}

/// Passages' own embeddings made during one ingest job, by the text embedded: a norm's
/// versions share most of their provisions, and a changed provision's vector is mixed with
/// the mean of its whole version's, so each version needs them all.
#[derive(Default)]
struct OwnVectors {
    by_text: HashMap<String, Vec<f32>>,
}

impl OwnVectors {
    /// The own embeddings of `texts`, embedding only those not seen before.
    fn embed(
        &mut self,
        dense: &Dense,
        texts: &[String],
        progress: &mut dyn Progress,
    ) -> Result<Vec<Vec<f32>>> {
        if self.by_text.len() + texts.len() > OWN_VECTORS_KEPT {
            self.by_text.clear();
        }
        let mut missing: Vec<&str> = texts
            .iter()
            .map(String::as_str)
            .filter(|t| !self.by_text.contains_key(*t))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        for chunk in missing.chunks(EMBED_BATCH) {
            let vectors = dense.embedder.embed_passages(chunk)?;
            progress.embedded(chunk.len());
            for (t, v) in chunk.iter().zip(vectors) {
                self.by_text.insert((*t).to_string(), v);
            }
        }
        texts
            .iter()
            .map(|t| {
                self.by_text.get(t).cloned().ok_or_else(|| {
                    EngineError::Unavailable(
                        "the embedder returned fewer vectors than asked".into(),
                    )
                })
            })
            .collect()
    }
}

/// Makes and writes the vectors of `records[wanted]`: each is mixed with the context of the
/// version that introduced it. Returns the number written.
async fn embed_records(
    dense: &Dense,
    contents: &Contents,
    records: &[Passage],
    wanted: &[usize],
    own: &mut OwnVectors,
    progress: &mut dyn Progress,
) -> Result<u64> {
    let mut by_day: BTreeMap<NaiveDate, Vec<&Passage>> = BTreeMap::new();
    for &i in wanted {
        if let Some(day) = records[i].valid_from {
            by_day.entry(day).or_default().push(&records[i]);
        }
    }
    let mut written = 0;
    for (day, wanted) in by_day {
        let Some(version) = contents.get(&day) else {
            continue;
        };
        let refs: Vec<&Passage> = version.iter().collect();
        let vectors = stored_vectors(&refs, |texts| own.embed(dense, texts, progress))?;
        let place: HashMap<&str, usize> = version
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i))
            .collect();
        let mut ps = Vec::with_capacity(wanted.len());
        let mut vs = Vec::with_capacity(wanted.len());
        for r in wanted {
            if let Some(v) = place.get(provision_id(&r.id)).and_then(|&i| vectors.get(i)) {
                ps.push(r);
                vs.push(v.clone());
            }
        }
        for (p, v) in ps.chunks(EMBED_BATCH).zip(vs.chunks(EMBED_BATCH)) {
            dense.store.upsert(p, v).await?;
        }
        written += ps.len() as u64;
    }
    Ok(written)
}
