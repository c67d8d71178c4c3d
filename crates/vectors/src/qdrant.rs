//! The server backend: a Qdrant server or cluster over gRPC (`qdrant-client`).
//!
//! The collection is created on first use with a cosine dense vector and keyword/integer
//! payload indexes for every filtered field; upserts go in batches, each retried with
//! exponential backoff on transient failures, and wait for the server to apply them.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use cabildo_core::{AccessLevel, Filters, Passage};
use qdrant_client::qdrant::{
    vector_output, vectors_config, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter, PointId,
    PointStruct, PointsIdsList, Query, QueryPointsBuilder, Range, SearchParamsBuilder,
    SetPayloadPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant};

use crate::filter::{conditions, of_norm, Cond};
use crate::{
    access_payload, check_input, check_query, keys, payload, point_uuid, validity_payload, Result,
    SearchOptions, VectorError, VectorHit, VectorStore,
};

/// The points of these passages, as a selector.
fn point_ids(passage_ids: &[String]) -> PointsIdsList {
    PointsIdsList {
        ids: passage_ids
            .iter()
            .map(|id| PointId::from(point_uuid(id).to_string()))
            .collect(),
    }
}

/// Points per upsert request: large enough to amortise round trips, small enough to stay
/// far below gRPC's message size limit with 1,024-d vectors.
const UPSERT_BATCH: usize = 256;

/// A collection on a Qdrant server.
pub struct QdrantStore {
    client: Qdrant,
    url: String,
    collection: String,
    dimension: usize,
}

fn retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(5)
}

impl QdrantStore {
    /// Connects to `url` (gRPC, e.g. `http://localhost:6334`) and opens `collection`,
    /// creating it with its payload indexes when absent. An existing collection made for
    /// another dimension is refused.
    pub async fn connect(
        url: &str,
        api_key: Option<String>,
        collection: &str,
        dimension: usize,
    ) -> Result<Self> {
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| VectorError::Server {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let store = QdrantStore {
            client,
            url: url.to_string(),
            collection: collection.to_string(),
            dimension,
        };
        store.ensure_collection().await?;
        Ok(store)
    }

    /// Deletes the whole collection (a scratch collection an evaluation or a benchmark made).
    pub async fn drop_collection(&self) -> Result<()> {
        self.client
            .delete_collection(&self.collection)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn err(&self, e: impl std::fmt::Display) -> VectorError {
        VectorError::Server {
            url: self.url.clone(),
            reason: format!("collection {}: {e}", self.collection),
        }
    }

    async fn ensure_collection(&self) -> Result<()> {
        let exists = (|| self.client.collection_exists(&self.collection))
            .retry(retry_policy())
            .await
            .map_err(|e| self.err(e))?;
        if !exists {
            self.client
                .create_collection(
                    CreateCollectionBuilder::new(&self.collection).vectors_config(
                        VectorParamsBuilder::new(self.dimension as u64, Distance::Cosine),
                    ),
                )
                .await
                .map_err(|e| self.err(e))?;
            let fields = keys::KEYWORDS
                .iter()
                .map(|k| (*k, FieldType::Keyword))
                .chain(keys::INTEGERS.iter().map(|k| (*k, FieldType::Integer)));
            for (key, kind) in fields {
                self.client
                    .create_field_index(
                        CreateFieldIndexCollectionBuilder::new(&self.collection, key, kind)
                            .wait(true),
                    )
                    .await
                    .map_err(|e| self.err(e))?;
            }
            return Ok(());
        }
        let info = self
            .client
            .collection_info(&self.collection)
            .await
            .map_err(|e| self.err(e))?;
        let size = info
            .result
            .and_then(|r| r.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config)
            .and_then(|c| match c {
                vectors_config::Config::Params(p) => Some(p.size as usize),
                vectors_config::Config::ParamsMap(_) => None,
            });
        if size != Some(self.dimension) {
            return Err(VectorError::Input(format!(
                "Qdrant collection {} holds {} vectors but the embedder makes {}-dimensional ones",
                self.collection,
                size.map_or("named".to_string(), |s| format!("{s}-dimensional")),
                self.dimension
            )));
        }
        Ok(())
    }
}

/// The gRPC filter requiring all of `conds`.
fn must(conds: &[Cond]) -> Filter {
    Filter::must(conds.iter().map(condition))
}

/// A neutral condition as a gRPC condition.
fn condition(cond: &Cond) -> Condition {
    match cond {
        Cond::AnyOf(key, values) => Condition::matches(*key, values.clone()),
        Cond::Range { key, gt, lte } => Condition::range(
            *key,
            Range {
                gt: gt.map(|v| v as f64),
                lte: lte.map(|v| v as f64),
                ..Range::default()
            },
        ),
        Cond::Either(any) => Filter::should(any.iter().map(condition)).into(),
        Cond::NoneOf(key, values) => {
            Filter::must_not([Condition::matches(*key, values.clone())]).into()
        }
    }
}

#[async_trait::async_trait]
impl VectorStore for QdrantStore {
    fn backend(&self) -> &'static str {
        "qdrant"
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    async fn upsert(&self, passages: &[&Passage], vectors: &[Vec<f32>]) -> Result<()> {
        check_input(self.dimension, passages, vectors)?;
        let mut points = Vec::with_capacity(passages.len());
        for (p, v) in passages.iter().zip(vectors) {
            let payload = Payload::try_from(serde_json::Value::Object(payload(p)))
                .map_err(|e| self.err(e))?;
            // Qdrant takes UUID point ids in their canonical text form.
            let id = point_uuid(&p.id).to_string();
            points.push(PointStruct::new(id, v.clone(), payload));
        }
        for chunk in points.chunks(UPSERT_BATCH) {
            (|| {
                self.client.upsert_points(
                    UpsertPointsBuilder::new(&self.collection, chunk.to_vec()).wait(true),
                )
            })
            .retry(retry_policy())
            .await
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    async fn delete_norm(&self, norm_id: &str) -> Result<()> {
        let filter = must(&of_norm(norm_id));
        (|| {
            self.client.delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(filter.clone())
                    .wait(true),
            )
        })
        .retry(retry_policy())
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn set_access(
        &self,
        norm_id: &str,
        access: AccessLevel,
        tenant: Option<&str>,
    ) -> Result<()> {
        let filter = must(&of_norm(norm_id));
        let fields = Payload::from(access_payload(access, tenant));
        (|| {
            self.client.set_payload(
                SetPayloadPointsBuilder::new(&self.collection, fields.clone())
                    .points_selector(filter.clone())
                    .wait(true),
            )
        })
        .retry(retry_policy())
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn set_validity(
        &self,
        passage_id: &str,
        valid_from: Option<chrono::NaiveDate>,
        valid_to: Option<chrono::NaiveDate>,
    ) -> Result<()> {
        let fields = Payload::from(validity_payload(valid_from, valid_to));
        let points = point_ids(std::slice::from_ref(&passage_id.to_string()));
        (|| {
            self.client.set_payload(
                SetPayloadPointsBuilder::new(&self.collection, fields.clone())
                    .points_selector(points.clone())
                    .wait(true),
            )
        })
        .retry(retry_policy())
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn delete_passages(&self, passage_ids: &[String]) -> Result<()> {
        for chunk in passage_ids.chunks(UPSERT_BATCH) {
            let points = point_ids(chunk);
            (|| {
                self.client.delete_points(
                    DeletePointsBuilder::new(&self.collection)
                        .points(points.clone())
                        .wait(true),
                )
            })
            .retry(retry_policy())
            .await
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    async fn search(
        &self,
        query: &[f32],
        filters: &Filters,
        k: usize,
        options: SearchOptions,
    ) -> Result<Vec<VectorHit>> {
        check_query(self.dimension, query)?;
        let filter = must(&conditions(filters));
        let response = self
            .client
            .query(
                QueryPointsBuilder::new(&self.collection)
                    .query(Query::new_nearest(query.to_vec()))
                    .filter(filter)
                    .limit(k.max(1) as u64)
                    .with_payload(true)
                    .with_vectors(options.with_vectors)
                    .params(
                        SearchParamsBuilder::default()
                            .exact(options.exact)
                            .hnsw_ef(options.breadth(k) as u64),
                    ),
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(response
            .result
            .into_iter()
            .filter_map(|p| {
                let vector = match p.vectors.as_ref().and_then(|v| v.get_vector()) {
                    Some(vector_output::Vector::Dense(v)) => Some(v.data),
                    _ => None,
                };
                VectorHit::from_payload(p.score, vector, |key| {
                    p.payload.get(key)?.as_str().map(|s| s.to_string())
                })
            })
            .collect())
    }

    async fn count(&self) -> Result<usize> {
        let response = self
            .client
            .count(CountPointsBuilder::new(&self.collection).exact(true))
            .await
            .map_err(|e| self.err(e))?;
        Ok(response.result.map_or(0, |r| r.count as usize))
    }

    async fn count_of(&self, norm_id: &str) -> Result<usize> {
        let response = self
            .client
            .count(
                CountPointsBuilder::new(&self.collection)
                    .filter(must(&of_norm(norm_id)))
                    .exact(true),
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(response.result.map_or(0, |r| r.count as usize))
    }

    async fn optimize(&self) -> Result<()> {
        // The server indexes in the background on its own schedule.
        Ok(())
    }
}
