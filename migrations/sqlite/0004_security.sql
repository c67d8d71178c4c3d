-- The audit log: one row per API request that reads documents or changes them, hash-chained
-- (each row's hash covers its fields and the previous row's hash), so an edited or deleted
-- row breaks the chain that `cabildo audit verify` walks. AUTOINCREMENT keeps the highest
-- sequence ever issued in sqlite_sequence, so removing the newest rows shows too.
CREATE TABLE audit_log (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    at             TEXT NOT NULL,
    principal      TEXT NOT NULL,
    role           TEXT NOT NULL,
    route          TEXT NOT NULL,
    status         INTEGER NOT NULL,
    question       TEXT,
    filters        TEXT,
    passages       TEXT NOT NULL,
    answer_hash    TEXT,
    model          TEXT,
    prompt_version TEXT,
    latency_ms     REAL NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only for everyone who goes through SQL; someone who edits the file directly is
-- caught by the chain instead.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Partner systems' API keys: only the SHA-256 of each key is kept.
CREATE TABLE api_clients (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    key_hash    TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    tenant      TEXT,
    clearance   TEXT NOT NULL DEFAULT 'public',
    daily_quota INTEGER,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- Requests per principal (pseudonym) per UTC day, for daily quotas.
CREATE TABLE api_usage (
    principal TEXT NOT NULL,
    day       TEXT NOT NULL,
    requests  INTEGER NOT NULL,
    PRIMARY KEY (principal, day)
);

-- Passages an ingest job found reading like instructions to the model (flagged, not refused:
-- they are data to the answer writer and have no say in access control).
ALTER TABLE ingest_jobs ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0;
