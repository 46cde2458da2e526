#!/usr/bin/env bash
# Install the test dependencies into .venv and run the whole suite: ruff, mypy (strict), pytest.
# Extra arguments go to pytest (e.g. -k registry -x).
# JUPYTER_ENVS_REQUIRE_ALL=1 turns "component missing" skips (Docker, Chromium) into failures.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" test
cd "$ROOT"
echo "==> ruff"
ruff check .
ruff format --check .
echo "==> mypy (strict)"
mypy
echo "==> pytest"
exec python -m pytest "$@"
