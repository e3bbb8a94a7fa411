"""`coordination.observe` sits above the runners and needs no extra to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import coordination.observe

PACKAGE = Path(coordination.observe.__file__).parent
#: Layers above observe (DESIGN.md "Package layout"): observe never imports them.
ABOVE = ("coordination.testing", "coordination.cli")


def test_observe_imports_nothing_from_the_layers_beside_or_above_it() -> None:
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(ABOVE), f"{path.name}: {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(ABOVE), f"{path.name}: {alias.name}"


def test_importing_observe_loads_no_extra() -> None:
    script = (
        "import sys, coordination.observe, coordination.observe.otel\n"
        "print(sorted(m for m in ('opentelemetry', 'rich', 'typer') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"
