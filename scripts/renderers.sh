#!/usr/bin/env bash
# The renderers the diagram tests check generated graphs with: Graphviz `dot` (apt) and
# Mermaid's own parser under node (npm, into .renderers/ in the checkout; no browser).
#
#   scripts/renderers.sh          # install what is missing; quick and silent when all is there
#   scripts/renderers.sh check    # exit 1 naming what is missing, installing nothing
#
# The node packages are pinned by scripts/renderers/package-lock.json and reinstalled only
# when it changes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SOURCE=$ROOT/scripts/renderers
TARGET=$ROOT/.renderers

mermaid_current() {
    [ -f "$TARGET/parse.mjs" ] && [ -f "$TARGET/node_modules/mermaid/package.json" ] &&
        [ -f "$TARGET/node_modules/jsdom/package.json" ] &&
        cmp -s "$SOURCE/package-lock.json" "$TARGET/package-lock.json"
}

check() {
    local missing=()
    command -v dot >/dev/null 2>&1 || missing+=("Graphviz dot")
    command -v node >/dev/null 2>&1 || missing+=("node")
    mermaid_current || missing+=("mermaid in .renderers/")
    if [ ${#missing[@]} -gt 0 ]; then
        echo "missing renderers: ${missing[*]}; run scripts/renderers.sh" >&2
        exit 1
    fi
}

install_dot() {
    command -v dot >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "Graphviz is not installed and this is not root: run 'sudo apt-get install graphviz'" >&2
        exit 1
    fi
    echo "installing Graphviz with apt ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends graphviz >/dev/null
    command -v dot >/dev/null 2>&1 || { echo "Graphviz installed, but no dot was found" >&2; exit 1; }
}

install_mermaid() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "node and npm are needed for the Mermaid parser: install Node.js 20 or newer" >&2
        exit 1
    fi
    mkdir -p "$TARGET"
    cp "$SOURCE/parse.mjs" "$TARGET/parse.mjs"
    mermaid_current && return 0
    echo "installing the Mermaid parser into .renderers/ ..." >&2
    cp "$SOURCE/package.json" "$SOURCE/package-lock.json" "$TARGET/"
    (cd "$TARGET" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

case "${1:-install}" in
    install) install_dot; install_mermaid ;;
    check) check ;;
    *) echo "usage: $0 [install|check]" >&2; exit 2 ;;
esac
