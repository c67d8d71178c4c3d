-- Which embedding model a source's passages were embedded with (NULL: not embedded), so a
-- re-ingest re-embeds a file whose text is unchanged when the model changed or dense
-- retrieval was switched on after a lexical-only ingest.
ALTER TABLE sources ADD COLUMN embedder TEXT;
