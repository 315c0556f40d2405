#!/usr/bin/env bash
# The test command (`make test` runs it after installing): lint, format, types, then pytest.
# Starts PostgreSQL and Redis when they are not running (the tests start SeaweedFS, the S3
# server, themselves); with CI=true a service that cannot be started fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
export MPLBACKEND=Agg

strict=false
[ "${CI:-}" = "true" ] && strict=true
[ "${LIFRNN_REQUIRE_SERVICES:-}" = "1" ] && strict=true

started_or() {  # a service that did not start: a warning, or with CI=true the end of the run
  if $strict; then echo "CI=true: $1" >&2; exit 1; fi
  echo "warning: $1 (its tests will be skipped)" >&2
}

ensure_services() {
  if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start \
      || started_or "PostgreSQL could not be started"
  fi
  if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      || started_or "Redis could not be started"
  fi
}
ensure_services

echo "== ruff check"; ruff check .
echo "== ruff format --check"; ruff format --check .
echo "== mypy"; mypy
echo "== browser"; bash scripts/install-browser.sh
echo "== pytest"; pytest "$@"
