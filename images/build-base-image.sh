#!/usr/bin/env bash
# Build a minimal Debian + python3 base image without any container registry: debootstrap from the Debian
# mirror this host's apt already uses, then `docker import`. The result stands in for python:3.11-slim on
# air-gapped hosts and in CI. Usage: images/build-base-image.sh [IMAGE_NAME]   (default iterpref/debian-python:bookworm)
set -euo pipefail

image=${1:-iterpref/debian-python:bookworm}
suite=${DEBIAN_SUITE:-bookworm}

if docker image inspect "$image" >/dev/null 2>&1 && [ -z "${REBUILD:-}" ]; then
    echo "build-base-image: $image already exists (set REBUILD=1 to rebuild)"
    exit 0
fi

# The first http(s) mirror named in apt's sources (deb822 or one-line format).
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$( (grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security;
               grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}' | grep -i debian | grep -v security) \
             | head -n 1) || true
fi
mirror=${mirror:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || { echo "build-base-image: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "build-base-image: debootstrap $suite from $mirror"
debootstrap --variant=minbase --include=python3,ca-certificates "$suite" "$root" "$mirror" >/dev/null
# Shrink: the runner needs neither apt caches, docs nor locales.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
       "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin' \
    --change 'CMD ["python3"]' \
    - "$image" >/dev/null
echo "build-base-image: built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
