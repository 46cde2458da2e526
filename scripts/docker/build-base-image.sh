#!/usr/bin/env bash
# Build the local Python base image used by jupyter-envs tests and CI.
#
#   scripts/docker/build-base-image.sh [TAG]     (default TAG: jupyter-envs-test/python:bookworm)
#
# Docker Hub is unreachable on the test machines, so the image is made from
# scratch: debootstrap a minimal Debian (python3, venv, pip, ca-certificates)
# from the Debian mirror apt already uses, add the host CA bundle (containers
# reach PyPI only through a TLS-intercepting proxy), `docker import` it and
# smoke-test it. If TAG already exists the script exits at once (cache);
# remove the image (`docker image rm TAG`) to force a rebuild.
#
# Environment (all optional):
#   JUPYTER_ENVS_DEBIAN_SUITE    Debian suite to bootstrap           (bookworm)
#   JUPYTER_ENVS_DEBIAN_MIRROR   mirror URL (default: the one apt uses on this machine)
#   JUPYTER_ENVS_PYPI_CHECK_URL  URL fetched over TLS in the check   (https://pypi.org/simple/six/)
#   JUPYTER_ENVS_PYPI_CHECK=strict  make a failed PyPI/TLS check fatal (default: warning)
set -euo pipefail

TAG=${1:-jupyter-envs-test/python:bookworm}
SUITE=${JUPYTER_ENVS_DEBIAN_SUITE:-bookworm}
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
PYPI_CHECK_URL=${JUPYTER_ENVS_PYPI_CHECK_URL:-https://pypi.org/simple/six/}
CA_LABEL=org.jupyter-envs.ca-bundle-sha256
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DEBIAN_FRONTEND=noninteractive

log() { printf '[docker-setup] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

STEP_START=0
step_begin() { STEP_START=$(now); log "$*"; }
step_end() { log "$1 took $(since "$STEP_START") s"; }

host_ca_sha() { sha256sum "$HOST_CA_BUNDLE" 2>/dev/null | cut -d' ' -f1 || true; }

# Cached image: say so, warn when the host CA bundle changed since it was built.
cached() {
    local built
    built=$(docker image inspect --format "{{ index .Config.Labels \"$CA_LABEL\" }}" "$TAG" 2>/dev/null || true)
    if [ -n "$built" ] && [ "$built" != "$(host_ca_sha)" ]; then
        log "WARNING: $HOST_CA_BUNDLE changed since $TAG was built; 'docker image rm $TAG' and re-run to refresh it"
    fi
    log "image $TAG already exists ($(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')); nothing to do"
}

# ---- engine -----------------------------------------------------------------
if ! timeout 20 docker info >/dev/null 2>&1; then
    log "Docker engine not answering; running $SCRIPT_DIR/install-engine.sh"
    bash "$SCRIPT_DIR/install-engine.sh"
fi

# ---- cache ------------------------------------------------------------------
if docker image inspect "$TAG" >/dev/null 2>&1; then
    cached
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "building $TAG needs root (debootstrap)"

LOCKDIR=/run/lock
[ -d "$LOCKDIR" ] || LOCKDIR=/tmp
exec 9>"$LOCKDIR/jupyter-envs-base-image.lock"
if ! flock -w 1200 9; then
    die "could not take $LOCKDIR/jupyter-envs-base-image.lock within 1200 s"
fi
if docker image inspect "$TAG" >/dev/null 2>&1; then
    cached
    exit 0
fi

TOTAL_START=$(now)
log "building $TAG (Debian $SUITE + $PACKAGES)"

# ---- debootstrap ------------------------------------------------------------
if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
    step_begin "installing debootstrap"
    if ! apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    fi
    step_end "debootstrap install"
fi
DEBOOTSTRAP=$(command -v debootstrap || echo /usr/sbin/debootstrap)

# ---- mirror: the one apt uses here (only that one is reachable) ------------
# Prints the first http(s) URI apt uses for "$SUITE" (type deb), in apt's file order.
detect_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        # one-line format: deb [ options ] URI SUITE COMPONENTS...
        awk -v suite="$SUITE" '
            $1 == "deb" {
                i = 2
                if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite && $i ~ /^https?:\/\//) { print $i; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        # deb822 format: paragraphs of "Field: value" lines
        awk -v suite="$SUITE" '
            function flush() {
                if (!done && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && tolower(enabled) != "no")
                    for (k = 1; k <= nu; k++) if (u[k] ~ /^https?:\/\//) { print u[k]; done = 1; exit }
                types = suites = enabled = ""; nu = 0
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            {
                key = tolower($1); sub(/:$/, "", key)
                val = $0; sub(/^[^:]*:[ \t]*/, "", val)
                if (key == "types") types = val
                else if (key == "suites") suites = val
                else if (key == "enabled") enabled = val
                else if (key == "uris") nu = split(val, u, /[ \t]+/)
            }
            END { flush() }' "$f"
    done
}

if [ -n "${JUPYTER_ENVS_DEBIAN_MIRROR:-}" ]; then
    MIRROR=$JUPYTER_ENVS_DEBIAN_MIRROR
    log "Debian mirror (from JUPYTER_ENVS_DEBIAN_MIRROR): $MIRROR"
else
    MIRROR=$(detect_mirror | head -n1 || true)
    if [ -n "$MIRROR" ]; then
        log "Debian mirror (as used by apt on this machine): $MIRROR"
    else
        MIRROR=http://deb.debian.org/debian
        log "WARNING: no '$SUITE' http(s) source found in apt's sources; trying $MIRROR"
    fi
fi

# debootstrap fetches with wget: pass on a proxy configured only for apt.
if [ -z "${http_proxy:-}" ]; then
    apt_proxy=$(apt-config dump 2>/dev/null | sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p' | head -n1 || true)
    if [ -n "$apt_proxy" ] && [ "$apt_proxy" != DIRECT ]; then
        export http_proxy=$apt_proxy
        log "using apt's HTTP proxy for debootstrap: $apt_proxy"
    fi
fi

WORK=$(mktemp -d /var/tmp/jupyter-envs-base-image.XXXXXX)
ROOT=$WORK/rootfs
BOOTSTRAP_LOG=$WORK/debootstrap.log

cleanup() {
    local m
    # debootstrap mounts proc/sys inside ROOT; never rm -rf through a live mount.
    if [ -d "$ROOT" ]; then
        awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null || true; done
    fi
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

step_begin "debootstrap --variant=minbase $SUITE (log: $BOOTSTRAP_LOG)"
if ! "$DEBOOTSTRAP" --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$BOOTSTRAP_LOG" 2>&1 9>&-; then
    tail -n 30 "$BOOTSTRAP_LOG" | sed 's/^/[docker-setup]   debootstrap: /' >&2
    [ -f "$ROOT/debootstrap/debootstrap.log" ] &&
        tail -n 20 "$ROOT/debootstrap/debootstrap.log" | sed 's/^/[docker-setup]   debootstrap.log: /' >&2
    die "debootstrap failed (mirror $MIRROR)"
fi
step_end "debootstrap"

step_begin "trimming rootfs and adding the host CA bundle"
rm -rf "${ROOT:?}"/var/cache/apt/archives/*.deb "${ROOT:?}"/var/lib/apt/lists/* "${ROOT:?}"/var/cache/debconf/*-old
: >"$ROOT/etc/resolv.conf" # docker provides its own at run time
if [ -f "$HOST_CA_BUNDLE" ]; then
    install -D -m 0644 "$HOST_CA_BUNDLE" "$ROOT$HOST_CA_BUNDLE"
else
    log "WARNING: $HOST_CA_BUNDLE not found on the host; the image keeps Debian's CA bundle"
fi
step_end "trim + CA bundle"

# Import under a temporary tag; TAG appears only once the smoke test passed, so an
# interrupted or broken build is never taken for a cached image.
TMP_TAG=jupyter-envs-build/base-image:tmp-$$
step_begin "docker import -> $TMP_TAG"
tar --numeric-owner -C "$ROOT" -c . |
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "ENV SSL_CERT_FILE=$HOST_CA_BUNDLE" \
        --change "ENV PIP_CERT=$HOST_CA_BUNDLE" \
        --change "LABEL $CA_LABEL=$(host_ca_sha)" \
        --change "LABEL org.jupyter-envs.debian-suite=$SUITE" \
        --change 'CMD ["/usr/bin/python3"]' \
        --message "jupyter-envs base image: debootstrap $SUITE minbase + $PACKAGES" \
        - "$TMP_TAG" >/dev/null
step_end "import"

cleanup
trap 'docker image rm "$TMP_TAG" >/dev/null 2>&1 || true' EXIT

# ---- smoke tests ------------------------------------------------------------
step_begin "smoke test: python3 + venv (with pip) in $TMP_TAG"
if ! out=$(docker run --rm "$TMP_TAG" sh -ec '
        python3 -c "import venv, sys; print(sys.version.split()[0])"
        python3 -m venv /tmp/venv
        /tmp/venv/bin/python -m pip --version' 2>&1); then
    printf '%s\n' "$out" | sed 's/^/[docker-setup]   /' >&2
    die "smoke test failed; image not tagged $TAG"
fi
printf '%s\n' "$out" | sed 's/^/[docker-setup]   /' >&2
step_end "smoke test"
docker tag "$TMP_TAG" "$TAG"
docker image rm "$TMP_TAG" >/dev/null # removes the temporary name only
trap - EXIT

step_begin "TLS check: fetching $PYPI_CHECK_URL from a container"
if out=$(docker run --rm "$TAG" timeout 60 python3 -c \
    "import sys, urllib.request; print(len(urllib.request.urlopen(sys.argv[1], timeout=30).read(100)), 'bytes read')" \
    "$PYPI_CHECK_URL" 2>&1); then
    log "  $out"
    step_end "TLS check"
else
    printf '%s\n' "$out" | tail -n 5 | sed 's/^/[docker-setup]   /' >&2
    if [ "${JUPYTER_ENVS_PYPI_CHECK:-}" = strict ]; then
        die "containers cannot fetch $PYPI_CHECK_URL"
    fi
    log "WARNING: containers cannot fetch $PYPI_CHECK_URL (image kept; set JUPYTER_ENVS_PYPI_CHECK=strict to fail here)"
fi

size=$(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')
log "built $TAG ($size) in $(since "$TOTAL_START") s"
