-- A bulk change's progress, written as it goes. A client whose request ended before the
-- answer (a 408, a lost connection) reads it by id or by repeating the request with its
-- Idempotency-Key, and learns what changed; the change itself goes on to the end. Each
-- callback still changes in its own transaction with its own event. Dry runs are not kept.
CREATE TABLE bulk_changes (
    id                uuid PRIMARY KEY,
    security_user_id  bigint NOT NULL REFERENCES security_users (id),
    idempotency_key   text,
    request_sha256    bytea,
    action            text NOT NULL,
    reason            text NOT NULL,
    matched           integer NOT NULL,
    changed           integer NOT NULL DEFAULT 0,
    skipped           integer NOT NULL DEFAULT 0,
    refused_count     integer NOT NULL DEFAULT 0,
    -- The first refusals: [{"callbackId", "result", "message"}].
    refused           jsonb NOT NULL DEFAULT '[]',
    started_at        timestamptz NOT NULL DEFAULT now(),
    -- Written with each report of progress: a change whose daemon stopped is seen stale.
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    CONSTRAINT bulk_changes_key UNIQUE (security_user_id, idempotency_key),
    CONSTRAINT bulk_changes_counts CHECK (changed >= 0 AND skipped >= 0 AND changed + skipped <= matched)
);
CREATE INDEX bulk_changes_by_user ON bulk_changes (security_user_id, started_at DESC);
CREATE INDEX bulk_changes_started ON bulk_changes (started_at);
