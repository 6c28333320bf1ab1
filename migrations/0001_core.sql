-- callbackd core schema: the directory mirrored from the platform, security users, and the
-- callbacks table with its due index. Times are timestamptz and taken from now() where the
-- database decides ("is it due?", "when did this happen?").

CREATE TABLE skills (
    id          bigint PRIMARY KEY CHECK (id > 0),
    name        text NOT NULL,
    media_type  text NOT NULL CHECK (media_type IN ('phone', 'chat', 'email', 'sms', 'voicemail', 'work_item', 'digital')),
    direction   text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    active      boolean NOT NULL,
    time_zone   text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    id          bigint PRIMARY KEY CHECK (id > 0),
    username    text NOT NULL,
    active      boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE security_users (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    permissions  text[] NOT NULL,
    -- NULL: every skill; otherwise only these.
    skill_ids    bigint[],
    created_at   timestamptz NOT NULL DEFAULT now(),
    disabled_at  timestamptz
);

CREATE TABLE callbacks (
    id               uuid PRIMARY KEY,
    -- No 'dispatching' state is stored: a dispatcher's claim is the row lock its transaction
    -- holds while it publishes (see ARCHITECTURE.md), so a claim cannot outlive its holder.
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'dispatched', 'completed', 'failed', 'expired', 'cancelled')),
    first_name       text NOT NULL,
    last_name        text NOT NULL,
    phone_number     text NOT NULL,
    skill_id         bigint NOT NULL REFERENCES skills (id),
    target_agent_id  bigint REFERENCES agents (id),
    notes            text NOT NULL,
    time_zone        text,
    -- The instant the requester asked for, and when the callback becomes due (later moved by
    -- retries and calling windows; never earlier than creation).
    scheduled_for    timestamptz NOT NULL,
    due_at           timestamptz NOT NULL,
    -- Publications confirmed by the broker so far; the next message carries attempt + 1.
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    -- Consecutive publications the broker returned (unroutable) or refused; drives backoff.
    dispatch_failures integer NOT NULL DEFAULT 0 CHECK (dispatch_failures >= 0),
    dispatched_at    timestamptz,
    last_error       text,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The due index: the dispatcher polls it in due order. Partial, so it holds only what can
-- still be claimed and stays small however many terminal rows the table keeps.
CREATE INDEX callbacks_due ON callbacks (due_at) WHERE state = 'pending';
-- Listing by due time with keyset pagination, overall, per skill and per agent.
CREATE INDEX callbacks_by_due ON callbacks (due_at, id);
CREATE INDEX callbacks_by_skill ON callbacks (skill_id, due_at, id);
CREATE INDEX callbacks_by_agent ON callbacks (target_agent_id, due_at, id) WHERE target_agent_id IS NOT NULL;
-- The retention purge finds old terminal rows without scanning pending ones.
CREATE INDEX callbacks_terminal ON callbacks (updated_at) WHERE state <> 'pending';

-- Rows churn through the due index quickly; vacuum early so dead entries do not pile up
-- after a burst.
ALTER TABLE callbacks SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02
);

-- Every change to a callback: who, when, what.
CREATE TABLE callback_events (
    id           bigserial PRIMARY KEY,
    callback_id  uuid NOT NULL REFERENCES callbacks (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    kind         text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX callback_events_by_callback ON callback_events (callback_id, id);

-- Idempotency-Key: the first answer to a (caller, key) pair, replayed to repeats.
CREATE TABLE idempotency_keys (
    security_user_id  bigint NOT NULL REFERENCES security_users (id),
    key               text NOT NULL,
    request_sha256    bytea NOT NULL,
    callback_id       uuid NOT NULL REFERENCES callbacks (id) ON DELETE CASCADE,
    response          jsonb NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (security_user_id, key)
);
