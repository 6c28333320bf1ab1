-- A second, numeric id on every callback, for clients that only know integer callback ids
-- (the CXone-compatible surface, docs/cxone.md). The UUID stays the key everywhere else;
-- this is a stable alias, assigned once at insert and never reused.
--
-- Adding an identity column rewrites the table once (existing callbacks get their numbers
-- here, under an exclusive lock: plan the upgrade for a quiet hour on a large table). From
-- then on every insert draws from the sequence (cached per session, no extra round trip)
-- and maintains one more unique B-tree: a small cost on the hottest table, accepted so that
-- a number is looked up with one index probe and can never name two callbacks.
ALTER TABLE callbacks ADD COLUMN number bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX callbacks_number ON callbacks (number);
