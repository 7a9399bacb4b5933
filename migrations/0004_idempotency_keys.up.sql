-- Idempotency-Key records: one row per key, written in the same transaction as the write it
-- records, so a row exists exactly when its write does. `status`, `body` and `location` are the
-- first response, replayed to every repeat; `fingerprint` is the SHA-256 of the method, path and
-- body, so a repeat with the same key and a different request is told apart. Rows older than 24
-- hours are expired: the service deletes them, and takes an expired key over as a new one.
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint BYTEA NOT NULL,
    status SMALLINT,
    body BYTEA,
    location TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The sweep of expired keys walks this index instead of the whole table.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
