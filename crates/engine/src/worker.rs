//! `cabildo worker`: runs the ingest jobs API replicas queued in a shared registry, so that
//! parsing and embedding never slow down answers. Each job is claimed under a lease that the
//! worker renews while it works; a worker that dies (SIGKILL, a lost machine) stops renewing
//! it, and once it runs out another worker claims the job and runs it again. Ingest replaces
//! each norm whole and skips files the registry already recorded, so a job run twice loses
//! nothing and duplicates nothing.

use std::path::PathBuf;
use std::time::Duration;

use cabildo_ingestors::IngestDefaults;
use cabildo_store::MAX_ATTEMPTS;

use crate::ingest::{IngestReport, NoProgress};
use crate::{Engine, EngineError, Result};

/// How a worker holds its jobs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Its name in the registry (host and process id by default).
    pub name: String,
    /// How long a claim lasts without renewal: how soon another worker takes over the
    /// job of one that died.
    pub lease: Duration,
}

/// What one turn of the worker did.
#[derive(Debug)]
pub enum Turn {
    /// No job was waiting.
    Idle,
    /// A job ran (its report, or why it failed).
    Ran(i64, Result<IngestReport>),
    /// A job interrupted too often was failed instead of run again.
    GaveUp(i64),
}

/// The ingest defaults of a queued job, as the replica that queues it writes them.
pub fn encode_defaults(defaults: &IngestDefaults) -> String {
    serde_json::to_string(defaults).unwrap_or_else(|_| "{}".into())
}

fn job_error(job: i64, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Io {
        path: format!("ingest job {job}"),
        reason: reason.to_string(),
    }
}

impl Engine {
    /// Claims the oldest waiting job (or one whose worker died) and runs it.
    pub async fn work_one(&self, options: &WorkerOptions) -> Result<Turn> {
        let registry = self.registry();
        let Some(claim) = registry.claim_job(&options.name, options.lease).await? else {
            return Ok(Turn::Idle);
        };
        let job = claim.id;
        if claim.attempts > MAX_ATTEMPTS {
            let why = format!(
                "interrupted {} times (its worker stopped before finishing)",
                claim.attempts - 1
            );
            registry.fail_job(job, &why).await?;
            return Ok(Turn::GaveUp(job));
        }
        tracing::info!(job, attempt = claim.attempts, worker = %options.name, "claimed ingest job");
        let defaults: IngestDefaults =
            serde_json::from_str(&claim.defaults).map_err(|e| job_error(job, e))?;
        // The same path on every worker, so that a job taken over finds the files the
        // first worker already recorded and skips them; in a folder named `uploads`, so
        // that norm ids made from a file's folder and name are those of an upload ingested
        // by the API process itself (DATA/uploads/NAME).
        let dir = std::env::temp_dir().join(format!("cabildo-job-{job}"));
        let paths = write_files(&dir.join("uploads"), registry.job_files(job).await?)
            .map_err(|e| job_error(job, format!("writing its files to {}: {e}", dir.display())))?;

        let renewing = {
            let registry = registry.clone();
            let (name, lease) = (options.name.clone(), options.lease);
            tokio::spawn(async move {
                let mut every = tokio::time::interval((lease / 3).max(Duration::from_millis(100)));
                every.tick().await;
                loop {
                    every.tick().await;
                    match registry.renew_lease(job, &name, lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(
                                job,
                                "lost the lease on the job: another worker took it over"
                            );
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(job, error = %e, "could not renew the job's lease")
                        }
                    }
                }
            })
        };
        let result = self
            .ingest_job(job, &paths, &defaults, &mut NoProgress)
            .await;
        renewing.abort();
        let _ = std::fs::remove_dir_all(&dir);
        Ok(Turn::Ran(job, result))
    }

    /// Runs queued jobs until `stop` resolves (checked between jobs), polling every `poll`
    /// when none is waiting; with `until_idle`, returns as soon as none is.
    pub async fn work(
        &self,
        options: &WorkerOptions,
        poll: Duration,
        until_idle: bool,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => return Ok(()),
                _ = std::future::ready(()) => {}
            }
            match self.work_one(options).await {
                Ok(Turn::Idle) if until_idle => return Ok(()),
                Ok(Turn::Idle) => {}
                Ok(Turn::Ran(job, Ok(r))) => {
                    tracing::info!(
                        job,
                        norms = r.summary.norms,
                        passages = r.summary.passages,
                        failures = r.summary.failures,
                        "ingest job done"
                    );
                    continue;
                }
                Ok(Turn::Ran(job, Err(e))) => {
                    tracing::error!(job, error = %e, "ingest job failed");
                    continue;
                }
                Ok(Turn::GaveUp(job)) => {
                    tracing::error!(job, "ingest job failed: interrupted too often");
                    continue;
                }
                // The registry is unreachable: wait and try again rather than exit.
                Err(e) => tracing::warn!(error = %e, "could not take a job"),
            }
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}

fn write_files(
    dir: &std::path::Path,
    files: Vec<(String, Vec<u8>)>,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut paths = Vec::with_capacity(files.len());
    for (name, content) in files {
        // Names were cleaned when the upload was received; a separator here is refused.
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(std::io::Error::other(format!("unsafe file name {name:?}")));
        }
        let path = dir.join(&name);
        std::fs::write(&path, content)?;
        paths.push(path);
    }
    Ok(paths)
}
