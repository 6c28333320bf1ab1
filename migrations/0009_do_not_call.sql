-- Do-not-call suppression: numbers that must not be called, for every skill (skill_id NULL)
-- or for one, until an optional expiry. A callback whose number was listed after it was
-- booked ends as 'suppressed' when it comes due instead of being published.
ALTER TABLE callbacks DROP CONSTRAINT callbacks_state_check;
ALTER TABLE callbacks ADD CONSTRAINT callbacks_state_check
    CHECK (state IN ('pending', 'dispatched', 'accepted', 'completed', 'failed', 'expired',
                     'cancelled', 'suppressed'));

-- Retention purges suppressed callbacks like the other final states.
DROP INDEX callbacks_terminal;
CREATE INDEX callbacks_terminal ON callbacks (updated_at)
    WHERE state IN ('completed', 'failed', 'expired', 'cancelled', 'suppressed');

CREATE TABLE dnc_entries (
    phone_number  text NOT NULL CHECK (phone_number ~ '^\+[1-9][0-9]{1,14}$'),
    -- NULL: every skill.
    skill_id      bigint REFERENCES skills (id) ON DELETE CASCADE,
    reason        text NOT NULL DEFAULT '',
    expires_at    timestamptz,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- One entry per number and scope; the dispatcher's and the create's look-up is a probe of
-- this index by number.
CREATE UNIQUE INDEX dnc_entries_by_phone ON dnc_entries (phone_number, (COALESCE(skill_id, 0)));

-- Who listed or removed which number, and why: kept when the entry goes.
CREATE TABLE dnc_events (
    id            bigserial PRIMARY KEY,
    phone_number  text NOT NULL,
    skill_id      bigint,
    at            timestamptz NOT NULL DEFAULT now(),
    actor         text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('listed', 'updated', 'removed')),
    details       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX dnc_events_by_phone ON dnc_events (phone_number, id);
