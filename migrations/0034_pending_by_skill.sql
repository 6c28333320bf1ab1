-- A skill's pending callbacks in due order (the console's most used list): the full
-- callbacks_by_skill index starts each skill with its ended callbacks, all due in the past,
-- and a list of one skill's pending read through them first (0.2 s at 100,000 ended ones
-- a skill). Pending only: a create enters it, a dispatch leaves it alone.
CREATE INDEX callbacks_pending_by_skill ON callbacks (skill_id, due_at, id)
    WHERE state = 'pending';
