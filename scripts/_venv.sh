# Shared by start-lab.sh and test.sh: make (once) the project's virtual environment in .venv and
# install the package into it in editable mode with the extras given as "$1".
# PYTHON picks the interpreter (default: python3); JUPYTER_ENVS_VENV moves the venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${JUPYTER_ENVS_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if ! command -v "$PY" >/dev/null 2>&1; then
    echo "error: $PY not found; install Python 3.10 or newer, or set PYTHON=/path/to/python" >&2
    exit 2
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "error: $PY is $("$PY" -V 2>&1); jupyter-envs needs Python 3.10 or newer" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV with $("$PY" -V 2>&1)"
    "$PY" -m venv "$VENV"
fi
# A stamp of pyproject.toml's hash: reinstall only when the dependencies changed (fast reruns).
STAMP="$VENV/.jupyter-envs-$1-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -e "$STAMP" ]; then
    echo "==> installing jupyter-envs[$1] into $VENV"
    "$VENV/bin/python" -m pip install -qq --upgrade pip
    "$VENV/bin/python" -m pip install -qq -e "$ROOT[$1]"
    touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
