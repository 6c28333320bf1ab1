-- Pausing a skill's dispatch: the pause itself lives in skills.routing ('paused': at, by,
-- reason), read with the skill by every daemon; this is its audit.
CREATE TABLE skill_events (
    id bigserial PRIMARY KEY,
    skill_id bigint NOT NULL REFERENCES skills (id) ON DELETE CASCADE,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    kind text NOT NULL CONSTRAINT skill_events_kind CHECK (kind IN ('paused', 'resumed')),
    reason text NOT NULL DEFAULT ''
);
CREATE INDEX skill_events_of ON skill_events (skill_id, id);
