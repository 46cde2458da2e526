#!/usr/bin/env bash
# Install jupyter-envs with JupyterLab into .venv and open the quickstart notebook.
# Extra arguments go to `jupyter lab` (e.g. --port 9999 --no-browser).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" lab
cd "$ROOT"
exec jupyter lab examples/quickstart.ipynb "$@"
