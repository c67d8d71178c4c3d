//! The embedded backend: Qdrant's engine in-process (`qdrant-edge`), one shard in a folder.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cabildo_core::{AccessLevel, Filters, Passage};
use qdrant_edge::{
    CountRequest, CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeVectorParamsBuilder,
    FieldIndexOperations, Filter, JsonPath, NamedQuery, Payload, PayloadFieldSchema, PayloadOps,
    PayloadSchemaType, PointId, PointInsertOperations, PointOperations, PointStruct, QueryEnum,
    QueryRequest, ScoringQuery, SearchParams, SetPayloadOp, UpdateOperation, VectorStructInternal,
    WithPayloadInterface, WithVector, DEFAULT_VECTOR_NAME,
};

use crate::filter::{conditions, of_norm, to_json, Cond};
use crate::{
    access_payload, check_input, check_query, keys, payload, point_uuid, validity_payload, Result,
    SearchOptions, VectorError, VectorHit, VectorStore,
};

/// The file `qdrant-edge` keeps its configuration in; its presence means a shard exists.
const CONFIG_FILE: &str = "edge_config.json";

/// The embedded Qdrant engine, persisted in a folder.
///
/// Durability: `qdrant-edge` 0.7.2 writes each operation to its WAL but does not replay the
/// WAL when a shard is loaded, so after a `kill -9` only what was flushed to the segments
/// survives. Every write here is therefore flushed (WAL and segments, fsync) before it
/// returns, and writes are serialised: the shard's flush expects no concurrent writer.
pub struct EdgeStore {
    shard: EdgeShard,
    path: PathBuf,
    dimension: usize,
    writes: Mutex<()>,
}

impl EdgeStore {
    /// Opens the store in `path`, creating it for `dimension`-long vectors when absent.
    /// A store made for another dimension (another embedding model) is refused rather
    /// than mixed with new vectors.
    pub fn open(path: &Path, dimension: usize) -> Result<Self> {
        let err = |e: &dyn std::fmt::Display| VectorError::Edge {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let shard = if path.join(CONFIG_FILE).is_file() {
            EdgeShard::load(path, None).map_err(|e| err(&e))?
        } else {
            std::fs::create_dir_all(path).map_err(|e| err(&e))?;
            let config = EdgeConfig::builder()
                .vector(
                    DEFAULT_VECTOR_NAME,
                    EdgeVectorParamsBuilder::new(dimension, Distance::Cosine).build(),
                )
                .build();
            EdgeShard::new(path, config).map_err(|e| err(&e))?
        };
        let stored = shard
            .config()
            .vectors
            .get(DEFAULT_VECTOR_NAME)
            .map(|v| v.size);
        if stored != Some(dimension) {
            return Err(VectorError::Input(format!(
                "the vector store at {} holds {}-dimensional vectors but the embedder makes \
                 {dimension}; delete that folder and re-ingest to switch models",
                path.display(),
                stored.map_or("unknown".to_string(), |d| d.to_string())
            )));
        }
        let store = EdgeStore {
            shard,
            path: path.to_path_buf(),
            dimension,
            writes: Mutex::new(()),
        };
        store.ensure_payload_indexes()?;
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> VectorError {
        VectorError::Edge {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// Applies a write and flushes it to disk before returning.
    fn write(&self, operation: UpdateOperation) -> Result<()> {
        // A poisoned lock only means another write panicked; the shard itself is consistent.
        let _guard = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        self.shard.update(operation).map_err(|e| self.err(e))?;
        self.shard.flush();
        Ok(())
    }

    /// Indexes the payload fields filters use (idempotent: an existing index is kept).
    fn ensure_payload_indexes(&self) -> Result<()> {
        let schema = self.shard.info().payload_schema;
        let wanted = keys::KEYWORDS
            .iter()
            .map(|k| (*k, PayloadSchemaType::Keyword))
            .chain(
                keys::INTEGERS
                    .iter()
                    .map(|k| (*k, PayloadSchemaType::Integer)),
            );
        for (key, kind) in wanted {
            let field =
                JsonPath::try_from(key).map_err(|()| self.err(format!("bad field name {key}")))?;
            if schema.contains_key(&field) {
                continue;
            }
            self.write(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(CreateIndex {
                    field_name: field,
                    field_schema: Some(PayloadFieldSchema::FieldType(kind)),
                }),
            ))?;
        }
        Ok(())
    }

    /// The engine's filter requiring all of `conds`.
    fn filter(&self, conds: &[Cond]) -> Result<Filter> {
        let must: Vec<_> = conds.iter().map(to_json).collect();
        serde_json::from_value(serde_json::json!({ "must": must }))
            .map_err(|e| self.err(format!("filter not understood: {e}")))
    }
}

#[async_trait::async_trait]
impl VectorStore for EdgeStore {
    fn backend(&self) -> &'static str {
        "edge"
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    async fn upsert(&self, passages: &[&Passage], vectors: &[Vec<f32>]) -> Result<()> {
        check_input(self.dimension, passages, vectors)?;
        if passages.is_empty() {
            return Ok(());
        }
        let points = passages
            .iter()
            .zip(vectors)
            .map(|(p, v)| {
                PointStruct::new(
                    PointId::Uuid(point_uuid(&p.id)),
                    v.clone(),
                    serde_json::Value::Object(payload(p)),
                )
                .into()
            })
            .collect();
        self.write(UpdateOperation::PointOperation(
            PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
        ))
    }

    async fn delete_norm(&self, norm_id: &str) -> Result<()> {
        let filter = self.filter(&of_norm(norm_id))?;
        self.write(UpdateOperation::PointOperation(
            PointOperations::DeletePointsByFilter(filter),
        ))
    }

    async fn set_access(
        &self,
        norm_id: &str,
        access: AccessLevel,
        tenant: Option<&str>,
    ) -> Result<()> {
        let filter = self.filter(&of_norm(norm_id))?;
        self.write(UpdateOperation::PayloadOperation(PayloadOps::SetPayload(
            SetPayloadOp {
                payload: Payload(access_payload(access, tenant)),
                points: None,
                filter: Some(filter),
                key: None,
            },
        )))
    }

    async fn set_validity(
        &self,
        passage_id: &str,
        valid_from: Option<chrono::NaiveDate>,
        valid_to: Option<chrono::NaiveDate>,
    ) -> Result<()> {
        self.write(UpdateOperation::PayloadOperation(PayloadOps::SetPayload(
            SetPayloadOp {
                payload: Payload(validity_payload(valid_from, valid_to)),
                points: Some(vec![PointId::Uuid(point_uuid(passage_id))]),
                filter: None,
                key: None,
            },
        )))
    }

    async fn delete_passages(&self, passage_ids: &[String]) -> Result<()> {
        if passage_ids.is_empty() {
            return Ok(());
        }
        let ids = passage_ids
            .iter()
            .map(|id| PointId::Uuid(point_uuid(id)))
            .collect();
        self.write(UpdateOperation::PointOperation(
            PointOperations::DeletePoints { ids },
        ))
    }

    async fn search(
        &self,
        query: &[f32],
        filters: &Filters,
        k: usize,
        options: SearchOptions,
    ) -> Result<Vec<VectorHit>> {
        check_query(self.dimension, query)?;
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(
                NamedQuery::default_dense(query.to_vec()),
            ))),
            filter: Some(self.filter(&conditions(filters))?),
            score_threshold: None,
            limit: k.max(1),
            offset: 0,
            params: Some(SearchParams {
                exact: options.exact,
                hnsw_ef: Some(options.breadth(k)),
                ..SearchParams::default()
            }),
            with_vector: WithVector::Bool(options.with_vectors),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = self.shard.query(request).map_err(|e| self.err(e))?;
        Ok(points
            .into_iter()
            .filter_map(|p| {
                let payload = p.payload?;
                let vector = match p.vector {
                    Some(VectorStructInternal::Single(v)) => Some(v),
                    _ => None,
                };
                VectorHit::from_payload(p.score, vector, |key| {
                    payload.0.get(key)?.as_str().map(str::to_string)
                })
            })
            .collect())
    }

    async fn count(&self) -> Result<usize> {
        self.shard
            .count(CountRequest {
                filter: None,
                exact: true,
            })
            .map_err(|e| self.err(e))
    }

    async fn count_of(&self, norm_id: &str) -> Result<usize> {
        let filter = self.filter(&of_norm(norm_id))?;
        self.shard
            .count(CountRequest {
                filter: Some(filter),
                exact: true,
            })
            .map_err(|e| self.err(e))
    }

    async fn optimize(&self) -> Result<()> {
        let _guard = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        self.shard.optimize().map_err(|e| self.err(e))?;
        self.shard.flush();
        Ok(())
    }
}
