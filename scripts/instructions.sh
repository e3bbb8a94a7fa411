#!/bin/bash
# Instructions per durable workflow (SQLite NORMAL, the bundled order) of a checkout, by
# valgrind's callgrind: N and 2N workflows, the difference divided by N. Load does not
# change it, so two checkouts compare on a busy machine too.
#
#   scripts/instructions.sh [CHECKOUT]      (default: this one)
#   git worktree add /tmp/before ec6e4cf && scripts/instructions.sh /tmp/before
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$(cd "${1:-$HERE}" && pwd)
N=${N:-300}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
SCRIPT='
import sys, tempfile
from pathlib import Path
from bench.durable import Files, time_sqlite
with tempfile.TemporaryDirectory() as d:
    time_sqlite(Files(Path(d)), "NORMAL", int(sys.argv[1]), 1)
'
count() {
    (cd "$ROOT" && PYTHONPATH="$ROOT/src:$ROOT" valgrind --tool=callgrind \
        --callgrind-out-file=/dev/null "$HERE/.venv/bin/python" -c "$SCRIPT" "$1" 2>&1 |
        awk '/Collected/ {gsub(",", "", $4); print $4}')
}
one=$(count "$N")
two=$(count $((2 * N)))
echo "$ROOT: $(( (two - one) / N )) instructions per durable workflow"
