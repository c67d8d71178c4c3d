-- Ingest jobs queued by API replicas for `cabildo worker` (the cluster profile): the job's
-- ingest defaults (JSON), its uploaded files, and who holds it until when. A worker that
-- dies stops renewing its lease; once the lease has run out another worker takes the job
-- over (ingest skips what was already recorded, so nothing is done twice).
ALTER TABLE ingest_jobs ADD COLUMN defaults TEXT;
ALTER TABLE ingest_jobs ADD COLUMN worker TEXT;
ALTER TABLE ingest_jobs ADD COLUMN lease_until TEXT;
ALTER TABLE ingest_jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
CREATE TABLE job_files (
    job_id  INTEGER NOT NULL REFERENCES ingest_jobs (id),
    name    TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (job_id, name)
);
CREATE INDEX ingest_jobs_queued ON ingest_jobs (status, id);
