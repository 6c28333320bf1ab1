-- Privacy: a callback whose contact's data was erased on request keeps its times and
-- states (for the promise figures) but not who it was for; each erasure is audited by a
-- one-way digest of the number, never the number itself.
ALTER TABLE callbacks ADD COLUMN erased_at timestamptz;

CREATE TABLE privacy_erasures (
    id bigserial PRIMARY KEY,
    -- SHA-256 of the number in E.164.
    number_sha256 bytea NOT NULL,
    requested_by text NOT NULL,
    reason text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    callbacks integer NOT NULL,
    cancelled integer NOT NULL,
    dnc_entries_removed integer NOT NULL
);
CREATE INDEX privacy_erasures_by_number ON privacy_erasures (number_sha256);
