-- Named calendars of closed dates and dates with special hours, in their own time zone,
-- assigned to skills by name (skills.routing->>'calendar'). Daemons read a skill's calendar
-- with the skill and hold it as they hold the skill: a change to a calendar notifies
-- `callbackd_directory` (an unknown table's name drops everything a daemon holds).
CREATE TABLE calendars (
    name        text PRIMARY KEY,
    time_zone   text NOT NULL,
    -- [{"date": "2026-12-25", "hours": ["09:00-13:00"]?, "label": "…"?}]; no hours: closed.
    days        jsonb NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER calendars_notify_directory
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON calendars
    FOR EACH STATEMENT EXECUTE FUNCTION callbackd_notify_directory();
