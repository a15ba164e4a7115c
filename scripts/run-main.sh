#!/bin/sh
# `make run`: the main job — `nbhub serve` on the embedded default: SQLite in
# .nbhub/, the example flows (examples/flows/*.yaml, with the notebooks they
# use copied next to them), one warm python3 kernel, http://127.0.0.1:8765.
# The admin password is printed on the first start; Ctrl-C stops it cleanly.
set -eu
cd "$(dirname "$0")/.."
NBHUB=${1:-build/nbhub}
export VIRTUAL_ENV="$PWD/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
home="$PWD/.nbhub"
mkdir -p "$home/flows"
# Flows refer to their notebooks as ../NAME.ipynb: keep the same layout.
cp examples/*.ipynb "$home/"
for f in examples/flows/*.yaml; do
    [ -e "$home/flows/$(basename "$f")" ] || cp "$f" "$home/flows/"
done
echo "nbhub: home $home, flows in $home/flows, API on http://127.0.0.1:${NBHUB_PORT:-8765}"
echo "nbhub: try: NBHUB_TOKEN=\$($NBHUB user token admin --home $home) $NBHUB flow list"
# The demo is one person's laptop: isolation shared, also when run as root.
exec "$NBHUB" serve --isolation shared --home "$home" --listen "127.0.0.1:${NBHUB_PORT:-8765}" --pool python3=1
