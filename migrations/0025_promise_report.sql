-- The promise-kept report: how late each callback's first publication was against its due
-- time then (milliseconds; negative never, held and deferred time included). Written once,
-- by the first confirmed publication. NULL for callbacks dispatched before this version
-- (the report falls back to the latest publication of a first attempt).
ALTER TABLE callbacks ADD COLUMN first_lateness_ms double precision;
