-- The search indexes hold pending callbacks only. A dispatch rewrites its row (its state
-- changes), and every full index on the table takes a new entry for it: the two search
-- indexes cost about an eighth of the burst dispatch rate. Pending-only, a dispatch leaves
-- them alone; a search among other states reads the table instead.
DROP INDEX callbacks_by_phone;
DROP INDEX callbacks_by_last_name;
CREATE INDEX callbacks_by_phone ON callbacks (phone_number, due_at, id) WHERE state = 'pending';
CREATE INDEX callbacks_by_last_name ON callbacks (lower(last_name) text_pattern_ops)
    WHERE state = 'pending';
