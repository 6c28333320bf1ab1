-- An API token may expire: past token_expires_at it no longer authenticates (NULL: it does
-- not expire). Additive: a daemon of the previous version ignores the column and keeps
-- honouring such tokens until it is upgraded too.
ALTER TABLE security_users ADD COLUMN token_expires_at timestamptz;
