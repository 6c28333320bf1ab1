-- Wake dispatchers when a callback becomes due soon, so that one scheduled for "now" goes out
-- within milliseconds instead of a poll interval later.
--
-- Only rows due within 60 seconds notify: a dispatcher never sleeps longer than its poll
-- interval (at most 60 s, checked at start-up) and re-reads the earliest due time on every
-- wake-up, so later rows are found without a notification. This keeps NOTIFY (which
-- serialises committing transactions) off the common path of callbacks booked hours ahead.
-- The payload is empty so that a transaction touching many rows sends one notification.

CREATE FUNCTION callbackd_notify_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callbackd_due', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER callbacks_notify_due
    AFTER INSERT OR UPDATE OF due_at, state ON callbacks
    FOR EACH ROW
    WHEN (NEW.state = 'pending' AND NEW.due_at < now() + interval '60 seconds')
    EXECUTE FUNCTION callbackd_notify_due();
