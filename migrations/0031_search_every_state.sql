-- Console search by phone number and by last name finds callbacks in every state: the search
-- indexes now hold every callback but those in flight (a dispatch still leaves them alone;
-- the few in flight are read through `callbacks_in_flight_by_skill`).
DROP INDEX callbacks_by_phone;
DROP INDEX callbacks_by_last_name;
CREATE INDEX callbacks_by_phone ON callbacks (phone_number, due_at, id)
    WHERE state NOT IN ('dispatched', 'accepted');
CREATE INDEX callbacks_by_last_name ON callbacks (lower(last_name) text_pattern_ops)
    WHERE state NOT IN ('dispatched', 'accepted');
-- The planner's view of names: without it a prefix such as 'hop' is guessed to match one
-- callback in two hundred, and walking the due order looks cheaper than the name index.
CREATE STATISTICS callbacks_last_name ON (lower(last_name)) FROM callbacks;
