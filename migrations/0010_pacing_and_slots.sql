-- Pacing by capacity and bookable slots.

-- A skill's own limits: callbacks published and not yet finished at once, and
-- publications per minute (spread evenly). NULL: the configured default.
ALTER TABLE skills
    ADD COLUMN max_in_flight integer CHECK (max_in_flight > 0),
    ADD COLUMN max_per_minute integer CHECK (max_per_minute > 0),
    -- Bookable slots: their length, and how many callbacks each takes (optionally by
    -- hour of the week, in the skill's time zone).
    ADD COLUMN slot_minutes integer CHECK (slot_minutes > 0 AND slot_minutes <= 1440),
    ADD COLUMN slot_capacity integer CHECK (slot_capacity >= 0),
    ADD COLUMN slot_capacity_by_hour jsonb;

-- When the skill's next rate-paced publication may go. Written under the skill's pacing
-- lock (an advisory lock held by the claim), so daemons sharing the database share it.
CREATE TABLE skill_pace (
    skill_id  bigint PRIMARY KEY REFERENCES skills (id) ON DELETE CASCADE,
    next_at   timestamptz NOT NULL
);

-- A due callback held back by pacing stays pending, with the gate that holds it: the skill
-- id (> 0) or minus the agent id (< 0). It leaves the dispatcher's walk of due callbacks
-- (callbacks_ready) for the per-gate index (callbacks_paced), so a thousand held callbacks
-- cost the claim nothing; it goes out from there, oldest first, as its gate has room.
ALTER TABLE callbacks
    ADD COLUMN paced_at timestamptz,
    ADD COLUMN paced_gate bigint,
    -- The slot it holds, when its skill has slots.
    ADD COLUMN slot_start timestamptz;

CREATE INDEX callbacks_ready ON callbacks (due_at) INCLUDE (skill_id)
    WHERE state = 'pending' AND paced_at IS NULL;
CREATE INDEX callbacks_paced ON callbacks (paced_gate, due_at)
    WHERE state = 'pending' AND paced_at IS NOT NULL;
-- In flight (published, no final outcome yet), counted per skill and per agent under the
-- gate's lock: each count reads at most the gate's limit of entries.
CREATE INDEX callbacks_in_flight_by_skill ON callbacks (skill_id)
    WHERE state IN ('dispatched', 'accepted');
CREATE INDEX callbacks_in_flight_by_agent ON callbacks (target_agent_id)
    WHERE state IN ('dispatched', 'accepted') AND fell_back_at IS NULL
      AND target_agent_id IS NOT NULL;

-- A finished callback frees room at its gates: wake the dispatchers when something waits
-- there (one probe of callbacks_paced per finished callback).
CREATE FUNCTION callbackd_notify_freed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM callbacks
               WHERE state = 'pending' AND paced_at IS NOT NULL
                 AND paced_gate IN (NEW.skill_id, -NEW.target_agent_id)) THEN
        PERFORM pg_notify('callbackd_due', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER callbacks_notify_freed
    AFTER UPDATE OF state ON callbacks
    FOR EACH ROW
    WHEN (OLD.state IN ('dispatched', 'accepted')
          AND NEW.state NOT IN ('dispatched', 'accepted'))
    EXECUTE FUNCTION callbackd_notify_freed();

-- Slots: callbacks booked per skill and slot. A booking increments its row only while it
-- is below the slot's capacity, so concurrent creates cannot overbook.
CREATE TABLE slot_bookings (
    skill_id    bigint NOT NULL REFERENCES skills (id) ON DELETE CASCADE,
    slot_start  timestamptz NOT NULL,
    booked      integer NOT NULL CHECK (booked >= 0),
    PRIMARY KEY (skill_id, slot_start)
);
