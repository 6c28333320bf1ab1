-- Throughput over time for the console's chart: how many callbacks were dispatched,
-- completed, failed and expired per five minutes. Counted by the event relay as it takes
-- events out of the outbox (one writer at a time, a few upserts per batch), so a day of a
-- million callbacks is under three hundred rows per kind; purged with the retention.
CREATE TABLE event_throughput (
    bucket timestamptz NOT NULL,
    kind text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (bucket, kind)
);
