-- Console sign-in through an OpenID Connect provider.
--
-- A security user may be linked to a person at the provider (issuer and subject); such a
-- user, created at their first sign-in, has no API token. Disabling one ends their console
-- sessions as for any other user (the session look-up joins on disabled_at).
ALTER TABLE security_users
    ALTER COLUMN token_sha256 DROP NOT NULL,
    ADD COLUMN oidc_issuer text,
    ADD COLUMN oidc_subject text,
    ADD CONSTRAINT security_users_oidc_subject UNIQUE (oidc_issuer, oidc_subject),
    ADD CONSTRAINT security_users_oidc_whole CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL)),
    ADD CONSTRAINT security_users_credential CHECK (token_sha256 IS NOT NULL OR oidc_subject IS NOT NULL);

-- A sign-in in progress, from the redirect to the provider until the browser comes back:
-- keyed by the hash of a random value in a short-lived cookie of that browser, so the
-- state, nonce and PKCE verifier never leave the server and each is used once.
CREATE TABLE console_sign_ins (
    browser_sha256  bytea PRIMARY KEY CHECK (length(browser_sha256) = 32),
    state           text NOT NULL,
    nonce           text NOT NULL,
    pkce_verifier   text NOT NULL,
    expires_at      timestamptz NOT NULL
);

CREATE INDEX console_sign_ins_expiry ON console_sign_ins (expires_at);
