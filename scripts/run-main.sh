#!/bin/sh
# `make run`: the main job.  Until `nbhub serve` exists, that is executing the
# example notebooks with `nbhub run` into .nbhub/runs/, the way a scheduler
# would, and printing where the output notebooks are.
set -eu
cd "$(dirname "$0")/.."
NBHUB=${1:-build/nbhub}
export VIRTUAL_ENV="$PWD/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
out=".nbhub/runs/examples/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
"$NBHUB" kernel list
status=0
for nb in examples/*.ipynb; do
    name=$(basename "$nb" .ipynb)
    printf '%s: ' "$name"
    # hello.ipynb declares parameters (see `nbhub run examples/hello.ipynb --inspect`)
    set --
    [ "$name" = hello ] && set -- -p name "make run" -p count 3
    if "$NBHUB" run "$nb" "$out/$name.ipynb" --no-progress-bar "$@"; then
        echo "ok -> $out/$name.ipynb"
    else
        rc=$?
        echo "exit $rc -> $out/$name.ipynb"
        status=1
    fi
done
exit $status
