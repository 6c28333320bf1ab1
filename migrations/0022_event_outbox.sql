-- The event stream's transactional outbox. Every event row a change writes enters the
-- outbox in the same statement (a statement-level trigger, so every writer of
-- callback_events is covered, a previous version's too), hence in the same transaction as
-- the change: it commits with it or not at all. The relay publishes outbox entries in id
-- order to the events exchange, with confirms, and deletes what the broker took. One
-- callback's events are written by transactions that hold its row lock in turn, so their
-- ids — and the relay's order — are the order they happened in.
CREATE TABLE event_outbox (
    id bigserial PRIMARY KEY,
    -- The event's key in callback_events.
    callback_id uuid NOT NULL,
    event_id bigint NOT NULL
);

CREATE FUNCTION callbackd_event_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_outbox (callback_id, event_id)
        SELECT callback_id, id FROM new_events ORDER BY id;
    RETURN NULL;
END
$$;

CREATE TRIGGER callback_events_outbox AFTER INSERT ON callback_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION callbackd_event_outbox();
