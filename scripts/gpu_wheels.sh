#!/bin/sh
# Download the wheels of constraints-gpu.txt (Python 3.12, manylinux x86_64, no dependencies) into DIR (default
# .whl/, git-ignored): what a GPU machine without network needs on top of its own packages (docs/gpu.md).
#   sh scripts/gpu_wheels.sh [DIR]
set -eu
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
PYTHON=${PYTHON:-python3}
mkdir -p "$DEST"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$DEST" -r constraints-gpu.txt
# two versions of one package stop the whole install there: refuse them here
dups=$(ls "$DEST" | grep '\.whl$' | sed 's/-[0-9].*//' | tr 'A-Z-' 'a-z_' | sort | uniq -d)
if [ -n "$dups" ]; then
    echo "$DEST holds more than one version of: $dups (remove the old wheels)" >&2
    exit 1
fi
echo "$(ls "$DEST" | grep -c '\.whl$') wheels in $DEST ($(du -sh "$DEST" | cut -f1))"
