#!/usr/bin/env bash
# Regenerate the tested-version locks: constraints.txt (every extra) and constraints-floor.txt (the
# declared transformers floor, 4.55.4, with what resolved around it on the same day).
#
#   scripts/lock.sh [CUTOFF]      CUTOFF: an RFC 3339 time; only releases uploaded before it (default: now)
#
# Why pip constraints files and not uv.lock: the install uses pip, because pip takes this machine's
# torch 2.13.0 CPU wheel from disk (uv would download a CUDA build). uv only resolves here, for
# Python 3.11 on x86-64 Linux; `--exclude-newer` makes a regeneration reproducible. Run the test
# suite against the new lock before committing it (.ci/run does: README's install uses the lock).
set -euo pipefail
cd "$(dirname "$0")/.."
cutoff="${1:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}"
uv="$(command -v uv || true)"
if [ -z "$uv" ]; then
  tmp="$(mktemp -d)"; python3 -m venv "$tmp/uv" && "$tmp/uv/bin/pip" install -q uv && uv="$tmp/uv/bin/uv"
fi
pins="$(mktemp)"
compile() {  # OUT, then extra pins
  local out="$1"; shift
  printf '%s\n' "torch==2.13.0" "$@" > "$pins"
  "$uv" pip compile pyproject.toml --all-extras -c "$pins" --python-version 3.11 \
    --python-platform x86_64-manylinux_2_28 --exclude-newer "$cutoff" --no-header --quiet -o "$out.body"
  {
    echo "# Tested versions for CPython 3.11 on x86-64 Linux: pip install -c $out ..."
    echo "# Made by scripts/lock.sh $cutoff (releases uploaded before then); pyproject.toml keeps the"
    echo "# ranges library users get. torch 2.13.0's CUDA packages are listed for GPU installs of the same torch."
    cat "$out.body"
  } > "$out"
  rm "$out.body"
}
compile constraints.txt
compile constraints-floor.txt "transformers==4.55.4"
echo "wrote constraints.txt and constraints-floor.txt (releases before $cutoff)"
