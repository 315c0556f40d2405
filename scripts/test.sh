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
if [ $# -gt 0 ]; then echo "== pytest $*"; exec pytest "$@"; fi

# The whole suite: two pytest processes side by side. The integration tests mostly wait (on
# servers starting, workers polling, jobs in other processes) and share PostgreSQL, Redis and
# SeaweedFS; the unit, science and browser tests mostly compute and use none of those (each
# process makes its own databases, ports and folders). The computing one keeps torch and BLAS to
# one thread each, so that the two do not oversubscribe two cores. The integration run's report
# is printed after the other's; each prints its own slowest tests.
report=$(mktemp -t lifrnn-integration-XXXXXX.log)
echo "== pytest tests/integration (in the background; its report follows the other one's: $report)"
pytest tests/integration >"$report" 2>&1 &
integration=$!
trap 'kill "$integration" 2>/dev/null || true' INT TERM  # an interrupted run stops both
echo "== pytest tests/unit tests/science tests/e2e"
status=0
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  pytest tests/unit tests/science tests/e2e || status=$?
integration_status=0
wait "$integration" || integration_status=$?
echo "== pytest tests/integration (exit $integration_status)"
cat "$report"
if [ "$status" -ne 0 ] || [ "$integration_status" -ne 0 ]; then
  echo "pytest failed: unit/science/e2e exit $status, integration exit $integration_status" >&2
  exit 1
fi
