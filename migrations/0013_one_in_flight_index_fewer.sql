-- A dispatch moves its callback into `dispatched`, and every index whose predicate the new
-- row version matches takes an entry. `callbacks_awaiting_outcome (state)` held the same rows
-- as `callbacks_outcome_due` and `callbacks_in_flight_by_skill` (state dispatched or
-- accepted); the backlog report's count of callbacks awaiting an outcome reads one of those.
-- One index fewer to write per dispatch and per outcome.
DROP INDEX IF EXISTS callbacks_awaiting_outcome;
