-- Answers as delivered, so that feedback on one can be reviewed beside it: the question with
-- personal data redacted (as in the audit log), the answer text and its citations. Keyed by
-- the id every answer carries (`ans_…` from /v1/ask, `chatcmpl-…` from chat completions).
CREATE TABLE answers (
    id         TEXT PRIMARY KEY,
    at         TEXT NOT NULL,
    principal  TEXT NOT NULL,
    route      TEXT NOT NULL,
    question   TEXT NOT NULL,
    answer     TEXT NOT NULL,
    citations  TEXT NOT NULL,
    abstained  INTEGER NOT NULL,
    model      TEXT NOT NULL
);
CREATE INDEX answers_at ON answers (at);

-- Ratings of answers by whoever received them; a second rating of the same answer replaces
-- the first (each is in the audit log). The comment is redacted before it is stored.
CREATE TABLE feedback (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id  TEXT NOT NULL UNIQUE REFERENCES answers (id),
    at         TEXT NOT NULL,
    rating     TEXT NOT NULL CHECK (rating IN ('useful', 'not_useful')),
    comment    TEXT
);
CREATE INDEX feedback_at ON feedback (at);

-- The audit log names the answer a record delivered or rated, and the feedback it stored.
ALTER TABLE audit_log ADD COLUMN answer_id TEXT;
ALTER TABLE audit_log ADD COLUMN feedback_id INTEGER;
