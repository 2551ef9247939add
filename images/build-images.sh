#!/usr/bin/env bash
# Build the runner and executor images offline. Steps: a wheelhouse in the build context (pip download; skip
# when present), the base image (BASE_IMAGE, or the registry-free Debian one from build-base-image.sh), then
# both images. Usage: images/build-images.sh [--bigcodebench]    env: BASE_IMAGE, RUNNER_IMAGE, EXECUTOR_IMAGE, PYTHON,
# BIGCODEBENCH_IMAGE. --bigcodebench also builds the optional runner image with BigCodeBench's libraries
# (images/Dockerfile.runner-bigcodebench; about 680 MB of wheels, 3.5 GB of image; CI does not build it).
set -euo pipefail

bigcodebench=
for arg in "$@"; do
    case $arg in
        --bigcodebench) bigcodebench=1 ;;
        *) echo "usage: images/build-images.sh [--bigcodebench]" >&2; exit 2 ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
runner_image=${RUNNER_IMAGE:-iterpref/sandbox-runner:latest}
executor_image=${EXECUTOR_IMAGE:-iterpref/sandbox-executor:latest}
bigcodebench_image=${BIGCODEBENCH_IMAGE:-iterpref/sandbox-runner-bigcodebench:latest}
python=${PYTHON:-python3}

# Whether DIR holds a wheel for every PACKAGE (names only; a version specifier is ignored).
has_wheels() {  # has_wheels DIR PACKAGE...
    local dir=$1 name; shift
    for spec in "$@"; do
        name=$(printf '%s' "${spec%%[<>=!~ ]*}" | tr 'A-Z-' 'a-z_')
        ls "$dir" 2>/dev/null | tr 'A-Z-' 'a-z_' | grep -q "^${name}_[0-9]" || return 1
    done
}
# Wheels for the image's Python (3.11 on Debian bookworm and python:3.11-slim), not the host's. A finished
# wheelhouse (.complete) is reused when it holds a wheel for every package asked for: one brought to an
# air-gapped host is kept, and one from before a dependency was added is fetched again instead of failing the
# offline build.
fetch() {  # fetch DIR PACKAGE...
    local dir=$1; shift
    if [ -f "$dir/.complete" ] && has_wheels "$dir" "$@"; then return; fi
    rm -rf "$dir"; mkdir -p "$dir"
    "$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$dir" pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    touch "$dir/.complete"
}
echo "build-images: wheelhouses in images/wheels"
fetch "$here/wheels/runner" "pytest>=8"
fetch "$here/wheels/executor" "pydantic>=2.5" "fastapi>=0.110" "uvicorn>=0.27" "httpx>=0.26" "docker>=7.0" \
    "prometheus_client>=0.17" uvloop httptools  # uvicorn uses them when present: a faster event loop and HTTP parser

if [ -z "${BASE_IMAGE:-}" ]; then
    BASE_IMAGE=iterpref/debian-python:bookworm
    "$here/build-base-image.sh" "$BASE_IMAGE"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
[ -f "$root/sandbox/runner.py" ] || { echo "build-images: sandbox/runner.py is missing" >&2; exit 1; }
for spec in "runner:$runner_image" "executor:$executor_image"; do
    kind=${spec%%:*}; tag=${spec#*:}
    echo "build-images: $tag (FROM $BASE_IMAGE)"
    # Quiet unless it fails (the legacy builder's deprecation notice is noise here).
    if ! docker build --quiet --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$here/Dockerfile.$kind" -t "$tag" "$root" \
            >/dev/null 2>"$log"; then
        cat "$log" >&2
        exit 1
    fi
done

# BigCodeBench's wheelhouse: pinned requirements and constraints, kept while those files are unchanged (their hash
# is in .complete). Three packages are published only as source; they are pure Python, so the host builds their
# wheels once and the download resolves them from there.
fetch_bigcodebench() {  # fetch_bigcodebench DIR
    local dir=$1 stamp
    stamp=$(cat "$here/bigcodebench-requirements.txt" "$here/bigcodebench-constraints.txt" | sha256sum | cut -c1-16)
    if [ "$(cat "$dir/.complete" 2>/dev/null)" = "$stamp" ]; then return; fi
    rm -rf "$dir"; mkdir -p "$dir"
    "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$dir" \
        -c "$here/bigcodebench-requirements.txt" Flask-Mail wikipedia wordninja \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    # manylinux2010 too: pycryptodome 3.14 has no newer tag.
    "$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 \
        --find-links "$dir" -d "$dir" pip -r "$here/bigcodebench-requirements.txt" \
        -c "$here/bigcodebench-constraints.txt" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    echo "$stamp" >"$dir/.complete"
}
if [ -n "$bigcodebench" ]; then
    fetch_bigcodebench "$here/wheels/bigcodebench"
    echo "build-images: $bigcodebench_image (FROM $runner_image)"
    # The images folder is the context: the root one's .dockerignore leaves this wheelhouse out of the other builds.
    if ! docker build --quiet --build-arg "RUNNER_IMAGE=$runner_image" -f "$here/Dockerfile.runner-bigcodebench" \
            -t "$bigcodebench_image" "$here" >/dev/null 2>"$log"; then
        cat "$log" >&2
        exit 1
    fi
fi
echo "build-images: done"
