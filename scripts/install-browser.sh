#!/usr/bin/env bash
# Make sure the browser the end-to-end tests drive is installed: Debian's Chromium.
# (Playwright cannot download its own browsers here; the tests launch /usr/bin/chromium.)
# Idempotent; needs root (or sudo) only when Chromium is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
CHROMIUM=${JUPYTER_ENVS_CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
    echo "[browser] $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM") already installed"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "[browser] need root to install chromium" >&2; exit 1; }
    SUDO=sudo
fi
echo "[browser] installing Debian's chromium"
# The package lists of a fresh machine may be missing or stale: update once, retry once.
$SUDO apt-get update -qq || { sleep 5; $SUDO apt-get update -qq; }
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
"$CHROMIUM" --version
