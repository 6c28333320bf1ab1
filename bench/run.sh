#!/usr/bin/env bash
# callbackd's benchmark suite, one command:
#
#   bash bench/run.sh            # defaults, about 10 minutes on a 2-core machine
#   bash bench/run.sh --big      # 1M burst, 10k/1M/5M pending + 5M dispatched (~30 minutes)
#   bash bench/run.sh --smoke    # tiny sizes: checks that every section works
#   bash bench/run.sh --help     # every option
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and RabbitMQ on 127.0.0.1:5672
# (guest/guest), like the tests, and Node.js 20+ with npm for the two peer schedulers
# (graphile-worker and pg-boss), which are installed here into bench/peer/node_modules from
# bench/peer/package.json, whose versions are pinned (pass --no-peer to leave them out).
# Prints its tables and writes bench/results.json (or --json FILE).
set -euo pipefail
cd "$(dirname "$0")/.."

peer=yes
for arg in "$@"; do
  case "$arg" in --no-peer) peer=no ;; --help|-h) peer=no ;; esac
done
if [ "$peer" = yes ]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "bench/run.sh: Node.js and npm are needed for the peers (or pass --no-peer)" >&2
    exit 1
  fi
  (cd bench/peer && npm install --no-audit --no-fund --loglevel=error)
  for package in graphile-worker pg-boss amqplib; do
    if [ ! -d "bench/peer/node_modules/$package" ]; then
      echo "bench/run.sh: npm did not install $package into bench/peer/node_modules" >&2
      exit 1
    fi
  done
fi
exec cargo bench --bench suite -- "$@"
