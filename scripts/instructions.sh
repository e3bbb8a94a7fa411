#!/bin/bash
# Instructions per workflow of the bundled order (untimed payments) in a checkout, by
# valgrind's callgrind: N and 2N workflows, the difference divided by N. Load does not
# change it, so two checkouts compare on a busy machine too.
#
#   scripts/instructions.sh [CHECKOUT] [WHAT]     (default: this one, durable)
#   WHAT: durable        Orchestrator.run() on SQLiteStore (NORMAL)
#         orchestration  Orchestrator.run() in memory (bench/choreography.py's side)
#         choreography   Choreography.publish() in memory, the same participants
#         hand           the same participant calls written by hand
#   git worktree add /tmp/before ec6e4cf && scripts/instructions.sh /tmp/before
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$(cd "${1:-$HERE}" && pwd)
WHAT=${2:-durable}
N=${N:-300}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
case "$WHAT" in
durable) SCRIPT='
import sys, tempfile
from pathlib import Path
from bench.durable import Files, time_sqlite
with tempfile.TemporaryDirectory() as d:
    time_sqlite(Files(Path(d)), "NORMAL", int(sys.argv[1]), 1)
' ;;
orchestration | choreography | hand) SCRIPT='
import sys
from bench.choreography import time_choreography, time_hand, time_orchestrated
side = {"orchestration": time_orchestrated, "choreography": time_choreography,
        "hand": time_hand}[sys.argv[2]]
side(int(sys.argv[1]))
' ;;
*) echo "WHAT is durable, orchestration, choreography or hand, not $WHAT" >&2; exit 2 ;;
esac
count() {
    (cd "$ROOT" && PYTHONPATH="$ROOT/src:$ROOT" valgrind --tool=callgrind \
        --callgrind-out-file=/dev/null "$HERE/.venv/bin/python" -c "$SCRIPT" "$1" "$WHAT" 2>&1 |
        awk '/Collected/ {gsub(",", "", $4); print $4}')
}
one=$(count "$N")
two=$(count $((2 * N)))
echo "$ROOT: $(( (two - one) / N )) instructions per $WHAT workflow"
