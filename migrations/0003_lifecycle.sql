-- The life after dispatch: dialer outcomes, retries, agent fallback, calling windows, expiry.

ALTER TABLE callbacks DROP CONSTRAINT callbacks_state_check;
ALTER TABLE callbacks ADD CONSTRAINT callbacks_state_check
    CHECK (state IN ('pending', 'dispatched', 'accepted', 'completed', 'failed', 'expired', 'cancelled'));

ALTER TABLE callbacks
    -- Never published after this instant; expired if not completed by then.
    ADD COLUMN expires_at timestamptz,
    -- Unanswered attempts (no_answer, busy) so far; the skill's max_attempts bounds it.
    ADD COLUMN dial_failures integer NOT NULL DEFAULT 0 CHECK (dial_failures >= 0),
    ADD COLUMN last_outcome text,
    -- While an agent-routed callback waits to be accepted: when it falls back to the skill.
    ADD COLUMN fallback_due_at timestamptz,
    -- Set once it fell back: from then on it is routed to the skill.
    ADD COLUMN fell_back_at timestamptz;

CREATE INDEX callbacks_fallback_due ON callbacks (fallback_due_at)
    WHERE state = 'dispatched' AND fallback_due_at IS NOT NULL;
-- Callbacks waiting for a dialer's outcome, counted by the backlog report.
CREATE INDEX callbacks_awaiting_outcome ON callbacks (state)
    WHERE state IN ('dispatched', 'accepted');
CREATE INDEX callbacks_expiry ON callbacks (expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('pending', 'dispatched', 'accepted');

-- Per-skill rules; NULL takes the configured default.
ALTER TABLE skills
    ADD COLUMN calling_hours jsonb,
    ADD COLUMN retry_backoff_seconds integer[],
    ADD COLUMN max_attempts integer CHECK (max_attempts > 0),
    ADD COLUMN agent_fallback_seconds integer CHECK (agent_fallback_seconds >= 0),
    ADD COLUMN default_ttl_seconds integer CHECK (default_ttl_seconds > 0);

-- Each reported outcome once: (callback, attempt, outcome) is the idempotency key.
CREATE TABLE callback_outcomes (
    callback_id  uuid NOT NULL REFERENCES callbacks (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    outcome      text NOT NULL,
    source       text NOT NULL,
    applied      boolean NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (callback_id, attempt, outcome)
);
