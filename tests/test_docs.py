"""The docs cannot drift from the code: the lifecycle diagram is generated, the examples run.

A python block in the docs preceded by the line `<!-- runnable -->` is executed. The runnable
blocks of one page build on each other, like a tutorial pasted into one script: they run in
order, in one `__main__` namespace, in a fresh interpreter with warnings as errors.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from coordination.orchestration import lifecycle_mermaid

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES_WITH_EXAMPLES = [
    "index.md",
    "orchestration.md",
    "choreography.md",
    "durability.md",
    "flow-shapes.md",
    "observability.md",
]
MARKER = "<!-- runnable -->"

FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)

# Runs each block in `__main__`, named after its page and line so a traceback points at it.
DRIVER = """\
import json, sys
for _line, _code in json.load(sys.stdin):
    exec(compile(_code, f"{sys.argv[1]}:{_line}", "exec"), globals())
"""


def fenced_blocks(text: str) -> list[tuple[int, str, str, bool]]:
    """(line of the fence, language, body, marked runnable) for every fenced block."""
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        found.append((line, match["lang"], match["body"], before.strip() == MARKER))
    return found


def test_lifecycle_diagram_is_generated_from_the_code() -> None:
    text = (DOCS / "orchestration.md").read_text(encoding="utf-8")
    diagrams = [body for _, lang, body, _ in fenced_blocks(text) if lang == "mermaid"]
    assert diagrams == [lifecycle_mermaid() + "\n"], (
        "docs/orchestration.md's mermaid block must be exactly lifecycle_mermaid()'s output:\n"
        + lifecycle_mermaid()
    )


def test_the_marker_marks_only_python_blocks() -> None:
    for page in PAGES_WITH_EXAMPLES:
        text = (DOCS / page).read_text(encoding="utf-8")
        marked = [(line, lang) for line, lang, _, runnable in fenced_blocks(text) if runnable]
        assert all(lang == "python" for _, lang in marked), f"{page}: {marked}"
        assert text.count(MARKER) == len(marked), f"{page}: a marker not right above a fence"


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES)
def test_runnable_examples_run(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    runnable = [(line, body) for line, lang, body, marked in fenced_blocks(text) if marked]
    if page == "orchestration.md":
        assert len(runnable) >= 8, "the orchestration guide lost its runnable examples"
    if page == "choreography.md":
        assert len(runnable) >= 12, "the choreography guide lost its runnable examples"
    if page == "durability.md":
        assert len(runnable) >= 2, "the durability guide lost its runnable examples"
    if page == "flow-shapes.md":
        assert len(runnable) >= 9, "the flow shapes guide lost its runnable examples"
    if page == "observability.md":
        assert len(runnable) >= 5, "the observability guide lost its runnable examples"
    if not runnable:
        return
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", DRIVER, f"docs/{page}"],
        input=json.dumps(runnable),
        cwd=DOCS.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


PYTEST_MARKER = re.compile(r"^<!-- pytest: (?P<file>[\w.]+) -->$")


def test_the_testing_page_test_passes_with_the_plugin(pytester: pytest.Pytester) -> None:
    """docs/testing.md's files, written out as a user's project, pass under pytest."""
    text = (DOCS / "testing.md").read_text(encoding="utf-8")
    files: dict[str, str] = {}
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        named = PYTEST_MARKER.match(before)
        if named is not None:
            files[named["file"]] = match["body"]
    assert set(files) == {"trips.py", "test_trips.py"}
    test_lines = [line for line in files["test_trips.py"].splitlines() if line.strip()]
    assert len(test_lines) <= 15, "the page promises a property test in at most 15 lines"
    for name, body in files.items():
        (pytester.path / name).write_text(body, encoding="utf-8")
    # The page's test runs as written; only its example count is lowered here.
    (pytester.path / "conftest.py").write_text(
        "from hypothesis import settings\n"
        "settings.register_profile('docs', max_examples=8, deadline=None)\n"
        "settings.load_profile('docs')\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=1)


def test_every_public_name_of_the_testing_kit_is_documented() -> None:
    import coordination.testing

    text = (DOCS / "testing.md").read_text(encoding="utf-8")
    missing = [name for name in coordination.testing.__all__ if f"`{name}" not in text]
    assert missing == [], f"docs/testing.md does not mention {missing}"


def test_the_flow_graph_in_the_observability_guide_is_generated_from_the_code() -> None:
    from coordination.observe import graph
    from examples.ecommerce import PlaceOrder

    text = (DOCS / "observability.md").read_text(encoding="utf-8")
    diagrams = [body for _, lang, body, _ in fenced_blocks(text) if lang == "mermaid"]
    assert diagrams == [graph(PlaceOrder).mermaid()], (
        "docs/observability.md's mermaid block must be exactly graph(PlaceOrder).mermaid()"
    )


def test_every_public_name_of_observe_is_documented() -> None:
    import coordination.observe
    import coordination.observe.otel

    text = (DOCS / "observability.md").read_text(encoding="utf-8")
    names = [*coordination.observe.__all__, *coordination.observe.otel.__all__]
    missing = [name for name in names if f"`{name}" not in text]
    assert missing == [], f"docs/observability.md does not mention {missing}"
