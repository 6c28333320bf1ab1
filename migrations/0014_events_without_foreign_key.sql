-- A dispatch writes a `dispatched` event per callback in the statement that records it. The
-- foreign key made each event row probe `callbacks` again (a `FOR KEY SHARE` look-up per row,
-- ~6 µs of a ~70 µs dispatch in PostgreSQL), and two indexes took an entry per event. Events
-- are only ever written beside the change they describe, by the statement that changes the
-- callback, and read by callback; the retention purge deletes a callback's events with it.
-- One index, (callback_id, id), is the key and serves the reads.
ALTER TABLE callback_events DROP CONSTRAINT callback_events_callback_id_fkey;
ALTER TABLE callback_events DROP CONSTRAINT callback_events_pkey;
DROP INDEX callback_events_by_callback;
ALTER TABLE callback_events ADD PRIMARY KEY (callback_id, id);
