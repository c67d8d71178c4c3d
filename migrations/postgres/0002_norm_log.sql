-- The passages of each norm as last written, for API replicas that keep their own lexical
-- index (see migrations/sqlite/0007). Sequence numbers are assigned by the appender under an
-- advisory lock, so they grow in commit order and a replica reading "after N" misses nothing.
CREATE TABLE norm_log (
    seq      BIGINT PRIMARY KEY,
    norm_id  TEXT NOT NULL,
    passages TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX norm_log_norm ON norm_log (norm_id);
