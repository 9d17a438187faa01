#!/usr/bin/env bash
# Create (or refresh) bench/.venv: pyresque from this checkout (editable) plus the peers in
# bench/requirements.txt. Idempotent: a second run with unchanged inputs does nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi

# Reinstall only when the inputs changed (requirements, pyresque's metadata, the Python).
stamp="$venv/.bench-installed"
want="$(cat "$here/requirements.txt" "$root/setup.cfg" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1) $("$venv/bin/python" -V 2>&1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/pyresque-worker" ]; then
    exit 0
fi

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[http,async]" -r "$here/requirements.txt"
echo "$want" > "$stamp"
echo "bench venv ready: $venv"
