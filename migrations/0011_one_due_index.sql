-- One index of due callbacks. `callbacks_ready` (0010) holds the pending callbacks not held
-- by pacing; with `callbacks_due` (every pending callback) beside it, the planner scored the
-- two alike and sometimes walked `callbacks_due` for the claim, reading every held callback
-- again (2,084 buffers instead of 65 with 2,000 held), and every create wrote both. Counts of
-- all pending callbacks now add `callbacks_ready` and `callbacks_paced`.
DROP INDEX callbacks_due;
