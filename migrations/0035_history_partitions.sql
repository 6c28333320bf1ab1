-- History partitioned by the day a callback ended. `callbacks` and `callback_events` become
-- partitioned tables keyed by `ended_on`: 'infinity' while a callback can still change
-- course (pending, dispatched, accepted: the `_live` partitions, the tables as they were),
-- the UTC day it ended otherwise (a partition per few days, made ahead by the daemon; few
-- partitions keep planning cheap for every statement that reads across them). Ending a
-- callback moves its row, and a trigger moves its events, into that day's partitions; the
-- retention purge then drops whole days (no per-row delete, no WAL, no vacuum) instead of
-- deleting their rows. The live partitions keep every index the daemon's work walks; a day's
-- partition only those that reads of history use.
--
-- The existing tables are attached as the live partitions (no copy): callbacks that ended
-- before this migration stay there and the purge deletes them by row, as before.

-- Rows that reference a callback can no longer point at it by key (a partitioned table's
-- keys include its partition key); the purge removes them with their callback.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_callback_id_fkey;
ALTER TABLE callback_outcomes DROP CONSTRAINT callback_outcomes_callback_id_fkey;
ALTER TABLE customer_links DROP CONSTRAINT customer_links_callback_id_fkey;
CREATE INDEX idempotency_keys_callback ON idempotency_keys (callback_id);

-- callbacks --------------------------------------------------------------------------------

ALTER TABLE callbacks RENAME TO callbacks_live;
ALTER TABLE callbacks_live ADD COLUMN ended_on date NOT NULL DEFAULT 'infinity';
ALTER TABLE callbacks_live DROP CONSTRAINT callbacks_pkey;
ALTER TABLE callbacks_live ADD CONSTRAINT callbacks_live_pkey PRIMARY KEY (id, ended_on);
ALTER TABLE callbacks_live DROP CONSTRAINT callbacks_skill_id_fkey;
ALTER TABLE callbacks_live DROP CONSTRAINT callbacks_target_agent_id_fkey;
-- An identity column belongs to one table: the number comes from a plain sequence that the
-- partitioned table's default draws from.
ALTER TABLE callbacks_live ALTER COLUMN number DROP IDENTITY;
CREATE SEQUENCE callbacks_number_seq;
SELECT setval('callbacks_number_seq', COALESCE((SELECT max(number) FROM callbacks_live), 0) + 1, false);
DROP INDEX callbacks_number;
ALTER INDEX callbacks_by_due RENAME TO callbacks_live_by_due;
ALTER INDEX callbacks_by_skill RENAME TO callbacks_live_by_skill;
ALTER INDEX callbacks_by_agent RENAME TO callbacks_live_by_agent;
ALTER INDEX callbacks_by_phone RENAME TO callbacks_live_by_phone;
ALTER INDEX callbacks_by_last_name RENAME TO callbacks_live_by_last_name;
ALTER INDEX callbacks_promised RENAME TO callbacks_live_promised;
ALTER INDEX callbacks_terminal RENAME TO callbacks_live_terminal;

CREATE TABLE callbacks (LIKE callbacks_live INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (ended_on);
ALTER TABLE callbacks ALTER COLUMN number SET DEFAULT nextval('callbacks_number_seq');
ALTER SEQUENCE callbacks_number_seq OWNED BY callbacks.number;
ALTER TABLE callbacks ATTACH PARTITION callbacks_live FOR VALUES FROM ('infinity') TO (MAXVALUE);
ALTER TABLE callbacks ADD PRIMARY KEY (id, ended_on);
ALTER TABLE callbacks ADD FOREIGN KEY (skill_id) REFERENCES skills (id);
ALTER TABLE callbacks ADD FOREIGN KEY (target_agent_id) REFERENCES agents (id);

-- Every partition: what reads of any state use (these attach the live partition's own).
CREATE INDEX callbacks_by_due ON callbacks (due_at, id);
CREATE INDEX callbacks_by_skill ON callbacks (skill_id, due_at, id);
CREATE INDEX callbacks_by_agent ON callbacks (target_agent_id, due_at, id)
    WHERE target_agent_id IS NOT NULL;
CREATE INDEX callbacks_promised ON callbacks (scheduled_for)
    WHERE state NOT IN ('dispatched', 'accepted');
CREATE INDEX callbacks_number ON callbacks (number)
    WHERE state NOT IN ('dispatched', 'accepted');
CREATE INDEX callbacks_terminal ON callbacks (updated_at)
    WHERE state IN ('completed', 'failed', 'expired', 'cancelled', 'suppressed');

-- Callbacks that ended in the live partition (before this migration, or set so by hand): a
-- list of ended ones reads them here instead of walking every live callback's due order.
CREATE INDEX callbacks_live_ended_by_due ON callbacks_live (due_at, id)
    WHERE state IN ('completed', 'failed', 'expired', 'cancelled', 'suppressed');

-- Ended rows with no day partition of their own (the daemon makes them a few days ahead;
-- this catches the rest). Its check, like every day partition's, lets the planner leave it
-- out of any query about pending, dispatched or accepted callbacks.
CREATE TABLE callbacks_ended_default PARTITION OF callbacks (
    CONSTRAINT callbacks_ended CHECK (state IN ('completed', 'failed', 'expired', 'cancelled', 'suppressed'))
) DEFAULT;
-- Searches by number and name: the live partition's indexes leave out callbacks in flight
-- (a dispatch would write them); an ended partition has none, and a search, which also
-- asks for those in flight, can use an index without that condition only.
CREATE INDEX ON callbacks_ended_default (phone_number, due_at, id);
CREATE INDEX ON callbacks_ended_default (lower(last_name) text_pattern_ops);

-- A dispatched or accepted callback that ends leaves the live partition by a delete: tell
-- the dispatcher, as an update out of those states does.
CREATE OR REPLACE FUNCTION callbackd_notify_freed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    skill bigint;
    agent bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        skill := OLD.skill_id;
        agent := OLD.target_agent_id;
    ELSE
        skill := NEW.skill_id;
        agent := NEW.target_agent_id;
    END IF;
    IF EXISTS (SELECT 1 FROM callbacks
               WHERE ended_on = 'infinity' AND state = 'pending' AND paced_at IS NOT NULL
                 AND paced_gate IN (skill, -agent)) THEN
        PERFORM pg_notify('callbackd_due', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER callbacks_notify_freed_ended
    AFTER DELETE ON callbacks_live
    FOR EACH ROW
    WHEN (OLD.state IN ('dispatched', 'accepted'))
    EXECUTE FUNCTION callbackd_notify_freed();

-- callback_events ----------------------------------------------------------------------------

ALTER TABLE callback_events RENAME TO callback_events_live;
ALTER TABLE callback_events_live ADD COLUMN ended_on date NOT NULL DEFAULT 'infinity';
ALTER TABLE callback_events_live DROP CONSTRAINT callback_events_pkey;
ALTER TABLE callback_events_live ADD CONSTRAINT callback_events_live_pkey
    PRIMARY KEY (callback_id, id, ended_on);
DROP TRIGGER callback_events_outbox ON callback_events_live;

CREATE TABLE callback_events (LIKE callback_events_live INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (ended_on);
ALTER SEQUENCE callback_events_id_seq OWNED BY callback_events.id;
ALTER TABLE callback_events ATTACH PARTITION callback_events_live
    FOR VALUES FROM ('infinity') TO (MAXVALUE);
ALTER TABLE callback_events ADD PRIMARY KEY (callback_id, id, ended_on);
CREATE TABLE callback_events_ended_default PARTITION OF callback_events DEFAULT;

-- The outbox carries each event's content, so that the relay reads the outbox alone (an
-- event may have moved to its callback's day by the time the relay takes it).
ALTER TABLE event_outbox
    ADD COLUMN at timestamptz,
    ADD COLUMN actor text,
    ADD COLUMN kind text,
    ADD COLUMN details jsonb;
UPDATE event_outbox o SET at = e.at, actor = e.actor, kind = e.kind, details = e.details
FROM callback_events e WHERE e.callback_id = o.callback_id AND e.id = o.event_id;
DELETE FROM event_outbox WHERE kind IS NULL;
ALTER TABLE event_outbox
    ALTER COLUMN at SET NOT NULL,
    ALTER COLUMN actor SET NOT NULL,
    ALTER COLUMN kind SET NOT NULL,
    ALTER COLUMN details SET NOT NULL;

CREATE OR REPLACE FUNCTION callbackd_event_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_outbox (callback_id, event_id, at, actor, kind, details)
        SELECT callback_id, id, at, actor, kind, details FROM new_events ORDER BY id;
    RETURN NULL;
END
$$;

CREATE TRIGGER callback_events_outbox AFTER INSERT ON callback_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION callbackd_event_outbox();

-- A callback's events follow it: into its day when it ends (the events written by the
-- statement that ended it included), back to the live partition when a retry revives it.
CREATE FUNCTION callbackd_events_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE callback_events SET ended_on = NEW.ended_on
        WHERE callback_id = NEW.id AND ended_on = 'infinity';
    ELSE
        UPDATE callback_events e SET ended_on = c.ended_on
        FROM callbacks c
        WHERE c.id = OLD.id AND c.ended_on <> OLD.ended_on
          AND e.callback_id = OLD.id AND e.ended_on = OLD.ended_on;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER callbacks_events_follow_ended
    AFTER INSERT ON callbacks
    FOR EACH ROW
    WHEN (NEW.ended_on <> 'infinity')
    EXECUTE FUNCTION callbackd_events_follow();

CREATE TRIGGER callbacks_events_follow_revived
    AFTER DELETE ON callbacks
    FOR EACH ROW
    WHEN (OLD.ended_on <> 'infinity')
    EXECUTE FUNCTION callbackd_events_follow();

-- The day a callback in `state` ends on, were it to enter that state now ('infinity' while it
-- can still change course). Every statement that sets a state sets ended_on with it.
CREATE FUNCTION callbackd_ended_on(state text) RETURNS date LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN state IN ('pending', 'dispatched', 'accepted') THEN 'infinity'::date
                ELSE (now() AT TIME ZONE 'UTC')::date END
$$;

-- The ranges of days the ended partitions of `callbacks` cover (live and default aside).
CREATE FUNCTION callbackd_history_ranges() RETURNS TABLE (name name, first date, stop date)
LANGUAGE sql STABLE AS $$
    SELECT c.relname,
           substring(b FROM 'FROM \(''([0-9-]+)''\)')::date,
           substring(b FROM 'TO \(''([0-9-]+)''\)')::date
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL pg_get_expr(c.relpartbound, c.oid) AS b
    WHERE i.inhparent = 'callbacks'::regclass AND b LIKE 'FOR VALUES FROM (''2%'
$$;

-- Makes partitions (both tables) for the days of `first` to `last` that no partition covers
-- yet, `width` days each (aligned on a fixed Monday, so that every daemon cuts the same
-- ranges; shortened where they would meet a range made before, with another width). A day
-- whose rows already sit in the default partition is left there. Returns how many ranges
-- it made. Serialised, so that daemons starting together do not race.
CREATE FUNCTION callbackd_make_history_days(first date, last date, width integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day date;
    lo date;
    hi date;
    suffix text;
    made integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('callbackd/history-days', 0));
    FOR day IN SELECT d::date FROM generate_series(first, last, interval '1 day') AS d LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM callbackd_history_ranges() r
                              WHERE r.first <= day AND day < r.stop);
        lo := day - ((day - date '2000-01-03') % GREATEST(width, 1));
        hi := lo + GREATEST(width, 1);
        lo := GREATEST(lo, (SELECT max(r.stop) FROM callbackd_history_ranges() r WHERE r.stop <= day));
        hi := LEAST(hi, (SELECT min(r.first) FROM callbackd_history_ranges() r WHERE r.first > day));
        suffix := to_char(lo, 'YYYYMMDD');
        BEGIN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF callbacks (CONSTRAINT callbacks_ended CHECK
                     (state IN (''completed'', ''failed'', ''expired'', ''cancelled'', ''suppressed'')))
                 FOR VALUES FROM (%L) TO (%L)',
                'callbacks_ended_' || suffix, lo, hi);
        EXCEPTION WHEN check_violation THEN
            RAISE NOTICE 'history: % to % stays in the default partition, which holds rows of it', lo, hi;
            CONTINUE;
        END;
        EXECUTE format('CREATE INDEX ON %I (phone_number, due_at, id)', 'callbacks_ended_' || suffix);
        EXECUTE format('CREATE INDEX ON %I (lower(last_name) text_pattern_ops)',
            'callbacks_ended_' || suffix);
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF callback_events FOR VALUES FROM (%L) TO (%L)',
            'callback_events_ended_' || suffix, lo, hi);
        made := made + 1;
    END LOOP;
    RETURN made;
END
$$;
