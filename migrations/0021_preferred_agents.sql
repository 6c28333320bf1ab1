-- Preferred agents and ownership. `target_agent_ids` holds a callback's ordered list of
-- preferred agents when it names more than one (NULL: the list is `target_agent_id` alone,
-- as a previous version wrote it); `target_agent_id` stays the agent it is routed to — the
-- first listed, or the one it was last published to. `ownership_seconds`: how long past its
-- due time the callback waits for its agents before it goes to its skill (NULL: for ever,
-- the previous behaviour). Additive: a daemon of the previous version keeps routing by
-- `target_agent_id` while a rolling upgrade runs.
ALTER TABLE callbacks ADD COLUMN target_agent_ids bigint[],
    ADD COLUMN ownership_seconds integer
        CONSTRAINT callbacks_ownership_range CHECK (ownership_seconds BETWEEN 1 AND 604800);
-- The ownership timer's walk: pending callbacks still owned by their agents.
CREATE INDEX callbacks_owned ON callbacks (due_at)
    WHERE state = 'pending' AND ownership_seconds IS NOT NULL AND fell_back_at IS NULL;
