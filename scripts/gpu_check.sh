#!/bin/sh
# benchmarks/gpu_check.py on a GPU machine with its own Python: the wheels in .whl/ (scripts/gpu_wheels.sh) are
# installed into a fresh --target folder, which goes first on PYTHONPATH (kept, not replaced: the check's CLI row
# runs a subprocess that needs them too) and is removed at the end (GIFKIT_SITE: a folder to install into and keep).
# Arguments go to gpu_check.py (docs/gpu.md):
#   sh scripts/gpu_check.sh --out DIR --budget-s 420
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${GIFKIT_WHEELS:-.whl}
made=""
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    if [ -n "${GIFKIT_SITE:-}" ]; then
        SITE=$GIFKIT_SITE
    else
        SITE=$(mktemp -d)
        made=$SITE
    fi
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "$WHEELS"/*.whl
    PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    export PYTHONPATH
fi
status=0
HF_HUB_OFFLINE=1 "$PYTHON" benchmarks/gpu_check.py "$@" || status=$?
if [ -n "$made" ]; then
    rm -rf "$made"
fi
exit $status
