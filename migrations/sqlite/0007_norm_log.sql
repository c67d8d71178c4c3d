-- The passages of each norm as last written, for API replicas that keep their own lexical
-- index beside a shared registry (PostgreSQL): after every index commit the writer appends
-- each norm it changed with all its passages (JSON; [] when the norm was deleted), and each
-- replica applies what it has not seen yet. Only the newest entry of a norm is kept. The table
-- exists on SQLite too so that both schemas stay the same; one data folder never fills it.
CREATE TABLE norm_log (
    seq      INTEGER PRIMARY KEY,
    norm_id  TEXT NOT NULL,
    passages TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX norm_log_norm ON norm_log (norm_id);
