#!/usr/bin/env bash
# Console page timings with many pending callbacks (default 1,000,000 over the next 7 days,
# across 10 skills) and as many terminal ones over the last 30 days (what the promise-kept
# report reads), against the release build. Prints one line per page: median and slowest
# of 7 loads (the first load of each page included).
#
#   bash bench/console.sh [pending] [terminal]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
terminal=${2:-$n}
cargo build --release --quiet

db="cbbench_console_$$"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CALLBACKD_DATABASE__URL="postgres://postgres@127.0.0.1:5432/$db"
export CALLBACKD_API__LISTEN="127.0.0.1:$port"
export CALLBACKD_DISPATCH__ENABLED=false
export CALLBACKD_DATABASE__CREATE_IF_MISSING=true
export CALLBACKD_LOG__FORMAT=json
export CALLBACKD_LOG__FILTER=warn
bin=target/release/callbackd
daemon=""
jar=$(mktemp)
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  rm -f "$jar"
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT

$bin migrate >/dev/null
admin=$($bin user add admin --permission all 2>/dev/null)
skills=$(mktemp --suffix=.csv)
{ echo "id,name,mediaType,direction,active,timeZone"
  for s in $(seq 101 110); do echo "$s,Skill $s,phone,outbound,true,Europe/London"; done; } > "$skills"
$bin import skills "$skills" >/dev/null
rm -f "$skills"
started=$(date +%s)
psql -q -h 127.0.0.1 -U postgres -d "$db" <<SQL
INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id, notes, scheduled_for, due_at, created_by)
SELECT gen_random_uuid(), 'First ' || i, 'Last' || (i % 5000), '+4420794' || lpad((i % 100000)::text, 5, '0'),
       101 + (i % 10), '', d, d, 'bench'
FROM (SELECT i, date_trunc('hour', now()) + interval '1 hour'
             + (random() * interval '7 days') AS d FROM generate_series(1, $n) AS i) AS t;
INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id, notes, scheduled_for, due_at, created_by)
VALUES (gen_random_uuid(), 'Grace', 'Hopper', '+14155552671', 101, '', now() + interval '1 day', now() + interval '1 day', 'bench');
-- Ended over the last 30 days, first published up to two minutes late.
INSERT INTO callbacks (id, first_name, last_name, phone_number, skill_id, notes, scheduled_for,
                       due_at, created_by, state, attempt, dispatched_at, first_lateness_ms, updated_at)
SELECT gen_random_uuid(), 'Done ' || i, 'Past' || (i % 5000), '+4420794' || lpad((i % 100000)::text, 5, '0'),
       101 + (i % 10), '', d, d, 'bench',
       (ARRAY['completed','completed','completed','failed','expired','cancelled'])[1 + i % 6], 1,
       d + interval '2 seconds', (i % 120000)::float8, d
FROM (SELECT i, now() - (random() * interval '30 days') AS d
      FROM generate_series(1, $terminal) AS i) AS t;
VACUUM ANALYZE callbacks;
SQL
echo "console bench: $n pending and $terminal terminal callbacks loaded in $(( $(date +%s) - started )) s"

$bin > /dev/null 2>&1 &
daemon=$!
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
curl -sf -c "$jar" -o /dev/null --data-urlencode "token=$admin" "http://127.0.0.1:$port/console/login"
one=$(psql -Atq -h 127.0.0.1 -U postgres -d "$db" -c "SELECT id FROM callbacks WHERE last_name = 'Hopper'")
# The daemon rolls up the report's finished hours in the background; wait until it has
# caught up with the 30 days loaded at once (a running deployment rolls up as it goes).
started=$(date +%s)
for _ in $(seq 600); do
  caught_up=$(psql -Atq -h 127.0.0.1 -U postgres -d "$db" -c \
    "SELECT watermark > now() - interval '2 hours' FROM promise_rollup_state")
  [ "$caught_up" = t ] && break
  sleep 1
done
echo "console bench: the report's roll-up caught up with 30 days in $(( $(date +%s) - started )) s"

for page in "/console/" "/console/figures" "/console/load" "/console/load?skillId=101" \
            "/console/callbacks" "/console/callbacks?state=pending&skillId=105" \
            "/console/callbacks?q=%2B14155552671" "/console/callbacks?q=hop" \
            "/console/callbacks/$one" "/console/directory" "/console/failed" \
            "/console/failed?state=expired&skillId=103" "/console/throughput" \
            "/console/promises?from=$(date -u -d '30 days ago' +%F)" \
            "/console/promises?from=$(date -u -d '30 days ago' +%F)&timeZone=Asia%2FKolkata"; do
  times=()
  for _ in $(seq 7); do
    times+=("$(curl -s -b "$jar" -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port$page")")
  done
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  median=$(echo "$sorted" | sed -n 4p)
  worst=$(echo "$sorted" | tail -1)
  printf 'console bench: %-45s median %4.0f ms  slowest %4.0f ms\n' "$page" \
    "$(echo "$median * 1000" | bc)" "$(echo "$worst * 1000" | bc)"
done
