-- Webhooks: subscriptions to callback events, delivered as signed HTTP POSTs. The event
-- relay fans each event out to the matching active subscriptions in the transaction that
-- takes it off the outbox; deliverers POST due deliveries (a lease on next_at, so a crash
-- only delays one) and record every attempt.
CREATE TABLE webhooks (
    name text PRIMARY KEY,
    url text NOT NULL,
    -- Event kinds and skill ids it receives; empty: all.
    kinds text[] NOT NULL DEFAULT '{}',
    skill_ids bigint[] NOT NULL DEFAULT '{}',
    secret text NOT NULL,
    active boolean NOT NULL DEFAULT true,
    -- Paused after failing for too long; set active again to resume.
    paused_at timestamptz,
    paused_reason text,
    failing_since timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id bigserial PRIMARY KEY,
    webhook text NOT NULL REFERENCES webhooks (name) ON DELETE CASCADE,
    event_id bigint NOT NULL,
    callback_id uuid NOT NULL,
    kind text NOT NULL,
    payload jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CONSTRAINT webhook_deliveries_state CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_at timestamptz NOT NULL DEFAULT now(),
    last_status integer,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_callback ON webhook_deliveries (callback_id);

CREATE TABLE webhook_attempts (
    id bigserial PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    webhook text NOT NULL,
    event_id bigint NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    -- The HTTP status, when an answer came; else the error.
    status integer,
    error text,
    duration_ms integer NOT NULL
);
CREATE INDEX webhook_attempts_of ON webhook_attempts (webhook, id DESC);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id);
