#!/usr/bin/env bash
# Install jupyter-envs with JupyterLab into .venv and open the quickstart notebook.
# Extra arguments go to `jupyter lab` (e.g. --port 9999 --no-browser).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" lab
cd "$ROOT"
# Containers and CI-like machines run as root; Jupyter refuses that unless told.
if [ "$(id -u)" = 0 ]; then set -- --allow-root "$@"; fi
exec jupyter lab examples/quickstart.ipynb "$@"
