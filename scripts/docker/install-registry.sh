#!/usr/bin/env bash
# Make sure Debian's container registry (docker-registry, distribution 2.8) is installed: the
# Swarm tests start their own registries from it on free 127.0.0.1 ports (never the packaged
# service on :5000, which this script keeps from starting).
# Idempotent; needs root (or sudo) only when the binary is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
REGISTRY=/usr/bin/docker-registry

if [ -x "$REGISTRY" ]; then
    echo "[registry] $("$REGISTRY" --version 2>/dev/null || echo "$REGISTRY") already installed"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "[registry] need root to install docker-registry" >&2; exit 1; }
    SUDO=sudo
fi
# No service may start from the package (a registry on 0.0.0.0:5000 nobody asked for): a
# policy-rc.d that refuses, only for this install when the machine has none of its own.
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    OWN_POLICY=1
fi
cleanup() { if [ "$OWN_POLICY" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT
echo "[registry] installing Debian's docker-registry"
if ! $SUDO apt-get install -y -qq --no-install-recommends docker-registry >/dev/null 2>&1; then
    # The package lists of a fresh machine may be missing or stale: update once, retry once.
    $SUDO apt-get update -qq || { sleep 5; $SUDO apt-get update -qq; }
    $SUDO apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
fi
"$REGISTRY" --version
