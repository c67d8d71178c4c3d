//! The server backend: a Qdrant server or cluster over gRPC (`qdrant-client`).
//!
//! The collection is created on first use with a cosine dense vector and keyword/integer
//! payload indexes for every filtered field; upserts go in batches, each retried with
//! exponential backoff on transient failures, and wait for the server to apply them.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use cabildo_core::{AccessLevel, Filters, Passage};
use qdrant_client::qdrant::{
    vector_output, vectors_config, CollectionStatus, Condition, CountPointsBuilder,
    CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance,
    FieldType, Filter, PointId, PointStruct, PointsIdsList, Query, QueryPointsBuilder, Range,
    SearchParamsBuilder, SetPayloadPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
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

/// The oldest Qdrant server version supported (major, minor): the one CI tests against.
/// The newest is the client's own, 1.20.
pub const OLDEST_SERVER: (u64, u64) = (1, 12);

/// Points per upsert request: large enough to amortise round trips, small enough to stay
/// far below gRPC's message size limit with 1,024-d vectors.
const UPSERT_BATCH: usize = 256;

/// How a collection Cabildo creates is spread over a cluster's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Shards (`shard_number`).
    pub shards: u32,
    /// Copies of each shard on different nodes (`replication_factor`).
    pub replicas: u32,
}

impl Default for Layout {
    /// One shard, one copy: a single server.
    fn default() -> Self {
        Layout {
            shards: 1,
            replicas: 1,
        }
    }
}

/// A collection on a Qdrant server.
pub struct QdrantStore {
    client: Qdrant,
    url: String,
    collection: String,
    dimension: usize,
    layout: Layout,
}

fn retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(5)
}

/// Searches are retried sooner and fewer times than writes: a citizen is waiting. A retry
/// reaches the cluster after a node loss has been noticed, and another copy answers.
fn search_retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(500))
        .with_max_times(3)
}

impl QdrantStore {
    /// Connects to `url` (gRPC, e.g. `http://localhost:6334`) and opens `collection`,
    /// creating it with its payload indexes, spread as `layout` says, when absent. An
    /// existing collection made for another dimension is refused.
    pub async fn connect(
        url: &str,
        api_key: Option<String>,
        collection: &str,
        dimension: usize,
        layout: Layout,
    ) -> Result<Self> {
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .timeout(Duration::from_secs(30))
            // The client would warn about any server more than one minor version apart;
            // the range Cabildo supports is checked below instead.
            .skip_compatibility_check()
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
            layout,
        };
        store.check_version().await?;
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

    /// Waits until the server has built the collection's vector index for what was written
    /// (status green on three polls a second apart: its optimiser runs in the background and
    /// may only start after a write); returns how long that took, or an error after `limit`.
    /// For benchmarks that must measure searches on a finished index.
    pub async fn wait_until_indexed(&self, limit: Duration) -> Result<Duration> {
        let started = std::time::Instant::now();
        let mut green = 0;
        while green < 3 {
            if started.elapsed() > limit {
                return Err(self.err(format!("not indexed within {} s", limit.as_secs())));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let info = self
                .client
                .collection_info(&self.collection)
                .await
                .map_err(|e| self.err(e))?;
            let status = info.result.map(|i| i.status).unwrap_or_default();
            if status == CollectionStatus::Green as i32 {
                green += 1;
            } else {
                green = 0;
            }
        }
        Ok(started.elapsed())
    }

    fn err(&self, e: impl std::fmt::Display) -> VectorError {
        VectorError::Server {
            url: self.url.clone(),
            reason: format!("collection {}: {e}", self.collection),
        }
    }

    /// Refuses a server older than [`OLDEST_SERVER`]: older ones read dense vectors only in a
    /// message form this client no longer sends, and refuse every upsert with a puzzling
    /// "expected dim: N, got 0".
    async fn check_version(&self) -> Result<()> {
        let health = (|| self.client.health_check())
            .retry(retry_policy())
            .await
            .map_err(|e| self.err(e))?;
        let version: Vec<u64> = health
            .version
            .split(['.', '-'])
            .take(2)
            .map_while(|p| p.parse().ok())
            .collect();
        if version.len() == 2 && (version[0], version[1]) < OLDEST_SERVER {
            return Err(VectorError::Server {
                url: self.url.clone(),
                reason: format!(
                    "Qdrant {} is older than {}.{}, the oldest server Cabildo supports",
                    health.version, OLDEST_SERVER.0, OLDEST_SERVER.1
                ),
            });
        }
        Ok(())
    }

    async fn ensure_collection(&self) -> Result<()> {
        let exists = (|| self.client.collection_exists(&self.collection))
            .retry(retry_policy())
            .await
            .map_err(|e| self.err(e))?;
        if !exists {
            self.client
                .create_collection(
                    CreateCollectionBuilder::new(&self.collection)
                        .vectors_config(VectorParamsBuilder::new(
                            self.dimension as u64,
                            Distance::Cosine,
                        ))
                        .shard_number(self.layout.shards)
                        .replication_factor(self.layout.replicas),
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
        let request = QueryPointsBuilder::new(&self.collection)
            .query(Query::new_nearest(query.to_vec()))
            .filter(filter)
            .limit(k.max(1) as u64)
            .with_payload(true)
            .with_vectors(options.with_vectors)
            .params(
                SearchParamsBuilder::default()
                    .exact(options.exact)
                    .hnsw_ef(options.breadth(k) as u64),
            );
        let response = (|| self.client.query(request.clone()))
            .retry(search_retry_policy())
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
