-- A second, numeric id on every callback, for clients that only know integer callback ids
-- (the CXone-compatible surface, docs/cxone.md). The UUID stays the key everywhere else;
-- this is a stable alias, assigned once at insert and never reused.
--
-- Adding an identity column rewrites the table once (existing callbacks get their numbers
-- here, under an exclusive lock: plan the upgrade for a quiet hour on a large table). From
-- then on every insert draws from the sequence (cached per session, no extra round trip);
-- being generated always, a number can never name two callbacks.
--
-- Its index skips the callbacks in flight, like the search indexes: a dispatch rewrites its
-- row, and a full index would take an entry for every dispatch and every outcome. A lookup
-- reads the few in flight through callbacks_in_flight_by_skill.
ALTER TABLE callbacks ADD COLUMN number bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX callbacks_number ON callbacks (number)
    WHERE state NOT IN ('dispatched', 'accepted');
