#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine (Debian 12, run as root).
#
# - If `docker info` already answers, exit 0 at once.
# - Otherwise install Debian's `docker.io` when /usr/sbin/dockerd is missing,
#   start /usr/sbin/dockerd in the background (own session, log in a file) and
#   wait until `docker info` answers.
#
# Idempotent: safe to call any number of times, also from concurrent sessions.
#
# Environment (all optional):
#   JUPYTER_ENVS_DOCKERD_LOG             dockerd log file   (/var/log/dockerd-jupyter-envs.log)
#   JUPYTER_ENVS_DOCKERD_WAIT            seconds to wait for the daemon (60)
#   JUPYTER_ENVS_DOCKER_STORAGE_DRIVER   force a storage driver (default: overlay2, vfs fallback)
set -euo pipefail

DOCKERD=/usr/sbin/dockerd
DOCKERD_LOG=${JUPYTER_ENVS_DOCKERD_LOG:-/var/log/dockerd-jupyter-envs.log}
WAIT_SECONDS=${JUPYTER_ENVS_DOCKERD_WAIT:-60}
FORCED_DRIVER=${JUPYTER_ENVS_DOCKER_STORAGE_DRIVER:-}
DOCKER_ROOT=/var/lib/docker
PIDFILE=/var/run/docker.pid
export DEBIAN_FRONTEND=noninteractive

log() { printf '[docker-setup] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

STEP_START=0
step_begin() { STEP_START=$(date +%s.%N); log "$*"; }
step_end() { log "$1 took $(awk -v a="$STEP_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"; }

# True when a docker client is on PATH and the daemon answers.
docker_ok() {
    command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1
}

report() {
    local server driver cgroup
    server=$(timeout 20 docker version --format '{{.Server.Version}}' 2>/dev/null || true)
    [ -n "$server" ] || die "'docker version' shows no Server section: the client $(command -v docker) cannot talk to the daemon"
    driver=$(timeout 20 docker info --format '{{.Driver}}' 2>/dev/null || true)
    cgroup=$(timeout 20 docker info --format '{{.CgroupVersion}}' 2>/dev/null || true)
    log "engine ready: server $server, storage driver ${driver:-?}, cgroup v${cgroup:-?}, client $(command -v docker) $(docker version --format '{{.Client.Version}}' 2>/dev/null || echo '?')"
}

# ---- fast path --------------------------------------------------------------
if docker_ok; then
    report
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "the Docker engine is not answering and installing/starting it needs root"

# Serialise concurrent callers; re-check once we hold the lock.
LOCKDIR=/run/lock
[ -d "$LOCKDIR" ] || LOCKDIR=/tmp
exec 9>"$LOCKDIR/jupyter-envs-docker-engine.lock"
if ! flock -w 600 9; then
    die "could not take $LOCKDIR/jupyter-envs-docker-engine.lock within 600 s"
fi
if docker_ok; then
    report
    exit 0
fi

TOTAL_START=$(date +%s.%N)

# ---- install ----------------------------------------------------------------
if [ ! -x "$DOCKERD" ] || ! command -v docker >/dev/null 2>&1; then
    step_begin "installing Debian docker.io (apt-get update + install)"
    # 9>&- (here and below): without a policy-rc.d, docker.io's postinst starts the daemon,
    # which must not inherit the lock's descriptor.
    apt-get update -qq 9>&-
    pkgs=(docker.io)
    # Without apparmor_parser, dockerd cannot start containers on an AppArmor kernel.
    if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || true)" = "Y" ]; then
        pkgs+=(apparmor)
    fi
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null 9>&-
    [ -x "$DOCKERD" ] || die "docker.io installed but $DOCKERD is missing"
    step_end "install"
    # On a machine without policy-rc.d the package's init script may have started it.
    if docker_ok; then
        report
        exit 0
    fi
fi

# ---- wait for an already-running daemon ------------------------------------
# True when PID is a live process (a zombie is dead: kill -0 still succeeds on it,
# and an init that reaps slowly can leave one around for a while).
is_alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ]
}

wait_for_daemon() { # wait_for_daemon PID -> 0 answers, 1 timeout, 2 process died
    local pid=$1 i
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        if docker_ok; then return 0; fi
        if [ -n "$pid" ] && ! is_alive "$pid"; then return 2; fi
        sleep 1
    done
    docker_ok && return 0
    return 1
}

# pid of a running dockerd, without procps (pgrep may be missing on a bare machine)
find_dockerd_pid() {
    local d
    for d in /proc/[0-9]*; do
        if [ "$(cat "$d/comm" 2>/dev/null || true)" = dockerd ] && is_alive "${d#/proc/}"; then
            echo "${d#/proc/}"
            return 0
        fi
    done
    return 0
}

running_pid=$(find_dockerd_pid)
if [ -n "$running_pid" ]; then
    log "dockerd already running (pid $running_pid, $(readlink "/proc/$running_pid/exe" 2>/dev/null || echo '?')); waiting up to ${WAIT_SECONDS}s for it to answer"
    rc=0
    wait_for_daemon "$running_pid" || rc=$?
    if [ "$rc" -eq 0 ]; then
        report
        exit 0
    elif [ "$rc" -eq 1 ]; then
        tail -n 20 "$DOCKERD_LOG" 2>/dev/null | cut -c1-300 | sed 's/^/[docker-setup]   dockerd: /' >&2 || true
        die "a dockerd process (pid $running_pid) is running but 'docker info' does not answer after ${WAIT_SECONDS}s; stop it (kill $running_pid) and re-run"
    fi
    log "that dockerd (pid $running_pid) exited; starting a new one"
fi

# Pid files left by a dead daemon: dockerd refuses to start over its own, and it waits
# (15 s, then gives up) for a containerd whose pid file names a dead or zombie process.
clean_stale_pidfiles() {
    local f old
    for f in "$PIDFILE" /var/run/docker/containerd/containerd.pid; do
        [ -f "$f" ] || continue
        old=$(cat "$f" 2>/dev/null || true)
        if [ -z "$old" ] || ! is_alive "$old"; then
            log "removing stale $f (pid '${old}')"
            rm -f "$f"
        fi
    done
}

# ---- start ------------------------------------------------------------------
# Storage driver: forced one, else the one this data root already uses, else overlay2.
driver_flag_allowed=1
if [ -f /etc/docker/daemon.json ] && grep -q '"storage-driver"' /etc/docker/daemon.json; then
    driver_flag_allowed=0 # a flag + config-file duplicate makes dockerd refuse to start
fi
if [ -n "$FORCED_DRIVER" ]; then
    driver=$FORCED_DRIVER
elif [ -d "$DOCKER_ROOT/image/vfs" ] && [ ! -d "$DOCKER_ROOT/image/overlay2" ]; then
    driver=vfs
else
    driver=overlay2
fi

start_dockerd() { # start_dockerd DRIVER -> sets DOCKERD_PID and LOG_OFFSET
    local args=()
    if [ "$driver_flag_allowed" -eq 1 ]; then args+=("--storage-driver=$1"); fi
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    printf '\n===== %s: [docker-setup] starting %s %s =====\n' "$(date -Is)" "$DOCKERD" "${args[*]}" >>"$DOCKERD_LOG"
    LOG_OFFSET=$(stat -c %s "$DOCKERD_LOG")
    # setsid: own session, so the daemon outlives this script and its caller's process group.
    # Not a process-group leader here (no job control), so setsid execs in place and $! is dockerd.
    # 9>&-: the daemon must not inherit the lock's descriptor, or it would hold the lock forever.
    setsid nohup "$DOCKERD" "${args[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
    DOCKERD_PID=$!
}

show_log_tail() { # the latest attempt's lines only
    log "last lines of $DOCKERD_LOG:"
    tail -c +"$((LOG_OFFSET + 1))" "$DOCKERD_LOG" | tail -n 25 | cut -c1-300 | sed 's/^/[docker-setup]   dockerd: /' >&2 || true
}

# True when the latest attempt's log says the storage (graph) driver could not start.
storage_driver_failed() {
    # (process substitution, not a pipe: with pipefail, grep -q closing early could fail the test)
    grep -qiE 'error initializing graphdriver|driver not supported|(level=(error|fatal)|failed to start daemon).*(overlay|graphdriver|storage)' \
        < <(tail -c +"$((LOG_OFFSET + 1))" "$DOCKERD_LOG")
}

step_begin "starting $DOCKERD (storage driver $driver, log $DOCKERD_LOG)"
attempt=1
while :; do
    clean_stale_pidfiles
    start_dockerd "$driver"
    rc=0
    wait_for_daemon "$DOCKERD_PID" || rc=$?
    [ "$rc" -eq 2 ] || break # answered (0) or timed out (1)
    show_log_tail
    if [ "$driver" = overlay2 ] && [ -z "$FORCED_DRIVER" ] && [ "$driver_flag_allowed" -eq 1 ] && storage_driver_failed; then
        log "dockerd could not use storage driver overlay2; falling back to vfs (slower, uses more disk)"
        driver=vfs
    elif [ "$attempt" -ge 2 ]; then
        break
    else
        log "dockerd exited before answering; retrying once"
        sleep 2
    fi
    attempt=$((attempt + 1))
done
if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 2 ] || show_log_tail
    if [ "$rc" -eq 2 ]; then
        die "dockerd (storage driver $driver) exited before answering; see $DOCKERD_LOG"
    fi
    die "dockerd (pid $DOCKERD_PID) did not answer 'docker info' within ${WAIT_SECONDS}s; see $DOCKERD_LOG"
fi
step_end "daemon start"

exe=$(readlink "/proc/$DOCKERD_PID/exe" 2>/dev/null || true)
[ "$exe" = "$DOCKERD" ] || log "WARNING: daemon pid $DOCKERD_PID runs '${exe:-?}', expected $DOCKERD"
report
log "dockerd pid $DOCKERD_PID; total $(awk -v a="$TOTAL_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
