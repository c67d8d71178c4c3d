-- Why an ingest job failed as a whole (a disk error, the vector store gone), so a client
-- polling GET /v1/jobs/{id} learns it instead of seeing "running" forever.
ALTER TABLE ingest_jobs ADD COLUMN error TEXT;
