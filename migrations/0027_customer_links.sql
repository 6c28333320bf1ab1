-- A customer's own link to their callback: an unguessable token, kept only as its SHA-256.
-- It works while the callback is pending and until expires_at; it goes with the callback.
CREATE TABLE customer_links (
    token_sha256 bytea PRIMARY KEY,
    callback_id uuid NOT NULL REFERENCES callbacks (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_links_callback ON customer_links (callback_id);
