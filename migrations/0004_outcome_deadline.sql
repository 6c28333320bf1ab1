-- Nothing waits for an outcome forever, and retention takes only what has ended.

-- Retention deletes terminal callbacks only: a dispatched or accepted one still waits for
-- its outcome, however old.
DROP INDEX callbacks_terminal;
CREATE INDEX callbacks_terminal ON callbacks (updated_at)
    WHERE state IN ('completed', 'failed', 'expired', 'cancelled');

-- When a dispatched or accepted callback stops waiting for its dialer's outcome and fails.
-- Set at each publication from the skill's outcomeDeadlineSeconds (else the configured
-- default); callbacks published before this column existed get 24 hours from publication.
ALTER TABLE callbacks ADD COLUMN outcome_due_at timestamptz;
UPDATE callbacks SET outcome_due_at = COALESCE(dispatched_at, updated_at) + interval '24 hours'
    WHERE state IN ('dispatched', 'accepted');
CREATE INDEX callbacks_outcome_due ON callbacks (outcome_due_at)
    WHERE state IN ('dispatched', 'accepted');

ALTER TABLE skills
    ADD COLUMN outcome_deadline_seconds integer CHECK (outcome_deadline_seconds > 0);
