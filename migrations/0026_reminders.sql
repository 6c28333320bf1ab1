-- Reminders: how many of its skill's reminders (earliest first) a pending callback has had
-- sent or skipped. A person moving the due time starts them again.
ALTER TABLE callbacks ADD COLUMN reminders_done smallint NOT NULL DEFAULT 0;
