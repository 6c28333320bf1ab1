-- Caller ID, the number a request came from, a skill's routing rules, and per-number
-- admission. Additive: a daemon of the previous version ignores the new columns (it writes
-- callbacks without a caller ID and does not apply a skill's admission rules) while a
-- rolling upgrade runs.

-- The number the customer sees (E.164), and the number the request came from.
ALTER TABLE callbacks ADD COLUMN caller_id text, ADD COLUMN orig_number text;

-- A skill's routing rules (JSON, camelCase): defaultRegion, callerId, duplicatePolicy,
-- maxPendingPerNumber, maxCreatesPerNumberPerDay. NULL or absent: the configured defaults.
ALTER TABLE skills ADD COLUMN routing jsonb;

-- Creates admitted per number, skill and day (the skill's calendar day). The row is also
-- what serialises concurrent creates for one number in one skill: each takes its lock.
CREATE TABLE number_admissions (
    skill_id      bigint NOT NULL,
    phone_number  text NOT NULL,
    day           date NOT NULL,
    creates       integer NOT NULL CHECK (creates >= 0),
    PRIMARY KEY (skill_id, phone_number, day)
);
CREATE INDEX number_admissions_by_day ON number_admissions (day);
