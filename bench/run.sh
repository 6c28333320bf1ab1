#!/usr/bin/env bash
# callbackd's benchmark suite (issue 4), one command:
#
#   bash bench/run.sh            # defaults, under 10 minutes on a 2-core machine
#   bash bench/run.sh --big      # 1M burst, 10k/1M/5M pending + 5M dispatched (~25 minutes)
#   bash bench/run.sh --smoke    # tiny sizes: checks that every section works
#   bash bench/run.sh --help     # every option
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and RabbitMQ on 127.0.0.1:5672
# (guest/guest), like the tests, and Node.js with npm for the peer (graphile-worker), which is
# installed here into bench/peer/node_modules from bench/peer/package.json.
# Prints one table and writes bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."

peer=yes
for arg in "$@"; do
  case "$arg" in --no-peer) peer=no ;; --help|-h) peer=no ;; esac
done
if [ "$peer" = yes ]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "bench/run.sh: Node.js and npm are needed for the peer (or pass --no-peer)" >&2
    exit 1
  fi
  (cd bench/peer && npm install --no-audit --no-fund --loglevel=error)
fi
exec cargo bench --bench suite -- "$@"
