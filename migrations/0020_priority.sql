-- Priority: a callback's own (or its skill's initial priority when it was created), 0 to
-- 1000. Where callbacks compete for a gate's room, the highest effective priority goes
-- first (the base plus the skill's acceleration per minute past due, up to its maximum),
-- then the earliest due. The index serves the held callbacks' highest base priorities; the
-- oldest come from callbacks_paced. Additive: a daemon of the previous version writes 0 and
-- takes held callbacks oldest first while a rolling upgrade runs.
ALTER TABLE callbacks ADD COLUMN priority integer NOT NULL DEFAULT 0
    CONSTRAINT callbacks_priority_range CHECK (priority BETWEEN 0 AND 1000);
CREATE INDEX callbacks_paced_priority ON callbacks (paced_gate, priority DESC, due_at)
    WHERE state = 'pending' AND paced_at IS NOT NULL;
