#!/usr/bin/env bash
# Build the sandbox image on a machine that reaches no container registry (CI, air-gapped hosts).
# The base is made from the host's own apt sources: mmdebstrap (Debian's python3 and pip) ->
# `docker import`; numpy and scipy are the pins of requirements.txt, as wheels the host's pip
# downloads into the build context (a package index is reachable where a registry is not); then
# the normal Dockerfile is built on that base with BASE_IMAGE. Idempotent: the image tag is a hash
# of runner/*.py + Dockerfile + requirements.txt + the base image's name, and an existing image
# with that tag is kept.
# Usage: bash sandbox/build_offline.sh [--force]      (--force: rebuild the image, keep the base)
# Online, rps_evals.execution.image.ensure_image() (the CLI's `sandbox build`) builds on the official image.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite="${RPS_SANDBOX_SUITE:-bookworm}"
base="rps-evals-sandbox-base:$suite-pip"
# The tag covers the base too (another Python is another image): rps_evals.execution.image.
hash=$({ cat $(LC_ALL=C ls "$here"/runner/*.py) "$here/Dockerfile" "$here/requirements.txt"; printf 'BASE_IMAGE=%s' "$base"; } | sha256sum | cut -c1-12)
image="rps-evals-sandbox:$hash"
force="${1:-}"

if [ "$force" != "--force" ] && docker image inspect "$image" >/dev/null 2>&1; then
  docker tag "$image" rps-evals-sandbox:latest
  echo "$image is up to date"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! docker image inspect "$base" >/dev/null 2>&1; then  # to remake the base: docker rmi "$base"
  if ! command -v mmdebstrap >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
    else
      echo "mmdebstrap is missing: apt-get install mmdebstrap (as root), then run this again" >&2
      exit 1
    fi
  fi
  mmdebstrap --quiet --variant=apt \
    --include=python3-minimal,python3-pip \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$suite" "$work/rootfs.tar"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    "$work/rootfs.tar" "$base" >/dev/null
  rm -f "$work/rootfs.tar"
  echo "base image $base imported"
fi

# The build context: the sandbox's files and the pinned wheels for the base's Python and machine.
mkdir "$work/context"
cp -r "$here/Dockerfile" "$here/requirements.txt" "$here/runner" "$work/context/"
rm -rf "$work/context/runner/__pycache__"
py=$(docker run --rm --network none "$base" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
machine=$(uname -m)
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --implementation cp --python-version "$py" --abi "cp${py/./}" \
  --platform "manylinux_2_28_$machine" --platform "manylinux_2_17_$machine" --platform "manylinux2014_$machine" \
  -r "$here/requirements.txt" -d "$work/context" >&2

docker build --quiet --build-arg BASE_IMAGE="$base" --build-arg SANDBOX_HASH="$hash" \
  -t "$image" -t rps-evals-sandbox:latest "$work/context" >/dev/null
echo "$image built on $base"
