"""Real renderers for generated diagrams: Graphviz `dot` and Mermaid's own parser.

`make test` installs both first (scripts/renderers.sh). A test that needs one fails, never
skips, when it is missing: a diagram nobody renders is a diagram nobody checked.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARSER = ROOT / ".renderers" / "parse.mjs"
INSTALL = "run scripts/renderers.sh (make test does)"


def _node() -> str:
    node = shutil.which("node")
    if node is None or not PARSER.exists():
        pytest.fail(f"the Mermaid parser is not installed: {INSTALL}", pytrace=False)
    return node


def _dot() -> str:
    dot = shutil.which("dot")
    if dot is None:
        pytest.fail(f"Graphviz dot is not installed: {INSTALL}", pytrace=False)
    return dot


def mermaid_errors(diagrams: Mapping[str, str]) -> dict[str, str]:
    """Each diagram Mermaid's parser refuses, with its message (one node process for all)."""
    node = _node()
    with tempfile.TemporaryDirectory() as directory:
        files = {}
        for position, (name, text) in enumerate(diagrams.items()):
            path = Path(directory) / f"{position}.mmd"
            path.write_text(text, encoding="utf-8")
            files[str(path)] = name
        done = subprocess.run(
            [node, str(PARSER), *files], capture_output=True, text=True, timeout=120, check=False
        )
    errors: dict[str, str] = {}
    answered: set[str] = set()
    for line in done.stdout.splitlines():
        verdict, _, rest = line.partition(" ")
        file, _, message = rest.partition(":" if verdict == "error" else " ")
        if file in files:
            answered.add(file)
            if verdict == "error":
                errors[files[file]] = message.strip()
    if answered != set(files):
        pytest.fail(f"the Mermaid parser did not answer: {done.stderr.strip()}", pytrace=False)
    return errors


def dot_errors(diagrams: Mapping[str, str]) -> dict[str, str]:
    """Each DOT graph Graphviz refuses, with its message."""
    dot = _dot()
    errors: dict[str, str] = {}
    for name, text in diagrams.items():
        done = subprocess.run(
            [dot, "-Tsvg", "-o", "/dev/null"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0 or done.stderr.strip():
            errors[name] = done.stderr.strip() or f"exit {done.returncode}"
    return errors
