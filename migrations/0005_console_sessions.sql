-- Signed-in supervisors of the web console. The cookie holds a random session token; only
-- its SHA-256 is stored. A session ends at expires_at, at sign-out, or when its security
-- user is disabled (every lookup joins an enabled user).
CREATE TABLE console_sessions (
    token_sha256      bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    security_user_id  bigint NOT NULL REFERENCES security_users (id) ON DELETE CASCADE,
    -- Sent back with every form that changes something (CSRF).
    csrf              text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
