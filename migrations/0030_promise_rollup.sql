-- The promise-kept report at scale: finished quarter hours are rolled up once, so a month's
-- report reads a few tens of thousands of rows instead of every callback promised in it.
-- Quarter hours because every time zone's offset is a whole number of them: a report's days
-- and hours start on one, wherever it is read.
--
-- A quarter (of the promised time) is rolled up once every callback promised in it has
-- ended and no new one can be booked into it (past the create's grace); `watermark` is the
-- end of the rolled-up, contiguous past. What comes after it is read from `callbacks` itself.
-- Ended callbacks change again only when a person retries one, which moves the watermark
-- back to its quarter (and the rows from there are rolled up again). The retention purge
-- leaves the roll-up alone: the report keeps its history after the callbacks are gone.
CREATE TABLE promise_rollup (
    quarter timestamptz NOT NULL,
    skill_id bigint NOT NULL,
    booked bigint NOT NULL,
    dispatched bigint NOT NULL,
    completed bigint NOT NULL,
    failed bigint NOT NULL,
    expired bigint NOT NULL,
    suppressed bigint NOT NULL,
    cancelled bigint NOT NULL,
    -- First publications' lateness as a histogram (promise_histogram): a key and a count
    -- per bucket, ascending.
    lateness bytea NOT NULL,
    PRIMARY KEY (quarter, skill_id)
);

-- One row: how far the roll-up has come (NULL: not started).
CREATE TABLE promise_rollup_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    watermark timestamptz
);
INSERT INTO promise_rollup_state DEFAULT VALUES;

-- Reads what comes after the watermark (and the partial quarters at a report's edges). Not the
-- callbacks in flight: a dispatch would give every row an entry (a dispatch rewrites its row);
-- those few are read through `callbacks_in_flight_by_skill`.
CREATE INDEX callbacks_promised ON callbacks (scheduled_for)
    WHERE state NOT IN ('dispatched', 'accepted');

-- How late a callback's first publication was (milliseconds, never negative), or NULL when
-- it has not been published: the recorded figure, or for callbacks dispatched before it was
-- recorded, the first attempt's publication time.
CREATE FUNCTION promise_lateness(first_lateness_ms double precision, attempt integer,
                                 dispatched_at timestamptz, due_at timestamptz)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT COALESCE(first_lateness_ms,
                    CASE WHEN attempt = 1 THEN
                        GREATEST(EXTRACT(EPOCH FROM (dispatched_at - due_at)) * 1000, 0)
                    END)::double precision
$$;

-- A lateness's histogram bucket: rounded up to the millisecond below a second, to three
-- significant digits above. A bucket's key is its upper bound, so "at most N seconds late"
-- is exact for any N below 1,000 (and for any N of three significant digits), and
-- percentiles are read to three significant digits.
CREATE FUNCTION promise_lateness_key(lateness_ms double precision)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN lateness_ms IS NULL THEN NULL
        WHEN lateness_ms <= 0 THEN 0
        WHEN lateness_ms <= 1000 THEN ceil(lateness_ms)::bigint
        ELSE (ceil(ceil(lateness_ms) / 10 ^ (floor(log(ceil(lateness_ms))) - 2))
              * 10 ^ (floor(log(ceil(lateness_ms))) - 2))::bigint
    END
$$;

-- A histogram's bucket as stored and read: its key (promise_lateness_key, at most 2^31 - 1
-- ms: 24 days) and its count, each a big-endian int4. A histogram is these 8 bytes per
-- bucket, in ascending key order (string_agg ... ORDER BY key): a third of what two bigint
-- arrays take on the wire, which a month's report reads a million buckets of.
CREATE FUNCTION promise_histogram_bucket(k bigint, n bigint)
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT int4send(LEAST(k, 2147483647)::int) || int4send(LEAST(n, 2147483647)::int)
$$;
