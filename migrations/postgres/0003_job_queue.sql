-- Ingest jobs queued by API replicas for `cabildo worker` (see migrations/sqlite/0008).
ALTER TABLE ingest_jobs ADD COLUMN defaults TEXT;
ALTER TABLE ingest_jobs ADD COLUMN worker TEXT;
ALTER TABLE ingest_jobs ADD COLUMN lease_until TEXT;
ALTER TABLE ingest_jobs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
CREATE TABLE job_files (
    job_id  BIGINT NOT NULL REFERENCES ingest_jobs (id),
    name    TEXT NOT NULL,
    content BYTEA NOT NULL,
    PRIMARY KEY (job_id, name)
);
CREATE INDEX ingest_jobs_queued ON ingest_jobs (status, id);
