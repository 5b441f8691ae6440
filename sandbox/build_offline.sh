#!/usr/bin/env bash
# Build the sandbox image on a machine that reaches no container registry (CI, air-gapped hosts).
# The base is made from the host's own apt sources: mmdebstrap (Debian python3 + numpy + scipy)
# -> `docker import`, then the normal Dockerfile is built on it with BASE_IMAGE. Idempotent: the
# image tag is a hash of runner/*.py + Dockerfile + the base image's name, and an existing image with that tag is kept.
# Usage: bash sandbox/build_offline.sh [--force]      (--force: rebuild the image, keep the base)
# Online, rps_evals.execution.image.ensure_image() (the CLI's `sandbox build`) builds on the official image.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite="${RPS_SANDBOX_SUITE:-bookworm}"
base="rps-evals-sandbox-base:$suite"
# The tag covers the base too (another Python or numpy is another image): rps_evals.execution.image.
hash=$({ cat $(LC_ALL=C ls "$here"/runner/*.py) "$here/Dockerfile"; printf 'BASE_IMAGE=%s' "$base"; } | sha256sum | cut -c1-12)
image="rps-evals-sandbox:$hash"
force="${1:-}"

if [ "$force" != "--force" ] && docker image inspect "$image" >/dev/null 2>&1; then
  docker tag "$image" rps-evals-sandbox:latest
  echo "$image is up to date"
  exit 0
fi

if ! docker image inspect "$base" >/dev/null 2>&1; then  # to remake the base: docker rmi "$base"
  if ! command -v mmdebstrap >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
    else
      echo "mmdebstrap is missing: apt-get install mmdebstrap (as root), then run this again" >&2
      exit 1
    fi
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # Compilers come in through python3-scipy -> python3-pythran; programs need none of them, so they
  # are deleted with docs and apt's caches (the image never runs apt).
  mmdebstrap --quiet --variant=apt \
    --include=python3-minimal,python3-numpy,python3-scipy \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/usr/include "$1"/usr/lib/gcc "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    --customize-hook='rm -f "$1"/usr/bin/*g++* "$1"/usr/bin/*gcc* "$1"/usr/bin/*cpp* "$1"/usr/bin/x86_64-linux-gnu-* "$1"/usr/lib/x86_64-linux-gnu/lib*san.so*' \
    "$suite" "$work/rootfs.tar"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    "$work/rootfs.tar" "$base" >/dev/null
  rm -rf "$work"
  echo "base image $base imported"
fi

docker build --quiet --build-arg BASE_IMAGE="$base" --build-arg SANDBOX_HASH="$hash" \
  -t "$image" -t rps-evals-sandbox:latest "$here" >/dev/null
echo "$image built on $base"
