-- The console finds a contact's callbacks by phone number (E.164, exact) or by the start of
-- the last name (case-insensitive), without scanning the table.
CREATE INDEX callbacks_by_phone ON callbacks (phone_number, due_at, id);
CREATE INDEX callbacks_by_last_name ON callbacks (lower(last_name) text_pattern_ops);
