#!/usr/bin/env bash
# Installs what the dashboard's browser tests (tests/e2e, marker e2e) need: Debian's Chromium and
# Playwright's Python package. Idempotent: does nothing when /usr/bin/chromium exists and
# playwright imports. Never runs `playwright install` (it downloads browsers; the tests drive
# the system Chromium through executable_path instead).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

if [ -x /usr/bin/chromium ] && "$PY" -c "import playwright.sync_api" 2>/dev/null; then
  echo "browser: chromium and playwright already installed"
  exit 0
fi

if [ ! -x /usr/bin/chromium ]; then
  echo "browser: installing Debian's chromium"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi

if ! "$PY" -c "import playwright.sync_api" 2>/dev/null; then
  echo "browser: installing playwright (Python package only)"
  "$PY" -m pip install --quiet "playwright>=1.45"
fi
echo "browser: ready ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
