-- The registry: which norms are indexed, from which files, and what each ingest run did.

CREATE TABLE norms (
    id               TEXT PRIMARY KEY,
    jurisdiction     TEXT NOT NULL,
    subdivision      TEXT,
    kind             TEXT NOT NULL,
    number           TEXT,
    title            TEXT NOT NULL,
    issuing_body     TEXT,
    language         TEXT NOT NULL,
    official_url     TEXT,
    publication_date TEXT,
    version_date     TEXT,
    valid_from       TEXT,
    valid_to         TEXT,
    access           TEXT NOT NULL DEFAULT 'public',
    tenant           TEXT,
    content_hash     TEXT NOT NULL,
    format           TEXT NOT NULL,
    source_path      TEXT NOT NULL,
    passages         INTEGER NOT NULL,
    ingested_at      TEXT NOT NULL
);
CREATE INDEX norms_jurisdiction_kind ON norms (jurisdiction, kind);

-- One row per source file: lets a re-ingest skip unchanged files by content hash.
CREATE TABLE sources (
    path         TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    norm_id      TEXT NOT NULL,
    ingested_at  TEXT NOT NULL
);

CREATE TABLE ingest_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,          -- running | done | failed
    files       INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    norms       INTEGER NOT NULL DEFAULT 0,
    passages    INTEGER NOT NULL DEFAULT 0,
    failures    INTEGER NOT NULL DEFAULT 0,
    seconds     REAL
);

CREATE TABLE ingest_failures (
    job_id INTEGER NOT NULL REFERENCES ingest_jobs (id),
    path   TEXT NOT NULL,
    reason TEXT NOT NULL
);
