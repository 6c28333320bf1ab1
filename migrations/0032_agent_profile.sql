-- Agents as people see them: a display name beside the username, and the skills they take
-- (the console lists a callback's skill's agents first when reassigning). Both optional:
-- an agent written by an earlier version has none.
ALTER TABLE agents
    ADD COLUMN name text NOT NULL DEFAULT '',
    ADD COLUMN skill_ids bigint[] NOT NULL DEFAULT '{}';
