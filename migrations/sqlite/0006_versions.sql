-- Every version of a norm, by the date it took effect: a new version closes the one before
-- instead of replacing it. The passages of all versions live in the index, each with its
-- validity range; a provision unchanged across versions is one passage.
CREATE TABLE norm_versions (
    norm_id      TEXT NOT NULL,
    effective    TEXT NOT NULL,   -- YYYY-MM-DD: the day this version took effect
    version_date TEXT,            -- the source's own version date
    repealed     TEXT,            -- the day the norm was repealed, when this version says so
    title        TEXT NOT NULL,
    official_url TEXT,
    content_hash TEXT NOT NULL,
    source_path  TEXT NOT NULL,
    provisions   INTEGER NOT NULL, -- passages in this version
    ingested_at  TEXT NOT NULL,
    PRIMARY KEY (norm_id, effective)
);

-- Which version a source file yielded, so that a changed file replaces that version.
ALTER TABLE sources ADD COLUMN version TEXT;

-- Norms ingested before: their one version.
INSERT INTO norm_versions (norm_id, effective, version_date, repealed, title, official_url,
                           content_hash, source_path, provisions, ingested_at)
SELECT id, valid_from, version_date, valid_to, title, official_url, content_hash, source_path,
       passages, ingested_at
FROM norms WHERE valid_from IS NOT NULL;
UPDATE sources SET version = (SELECT valid_from FROM norms WHERE norms.id = sources.norm_id);
