"""The README's promises hold: its example runs as written, and the quick start is two commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def section(heading: str) -> str:
    """The text under `## heading`, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(?P<body>.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {heading}' section"
    return match["body"]


def blocks(text: str, lang: str) -> list[str]:
    return [match["body"] for match in FENCE.finditer(text) if match["lang"] == lang]


def test_quick_start_is_exactly_make_demo_and_make_test() -> None:
    quick_start = section("Quick start")
    fenced = list(FENCE.finditer(quick_start))
    assert len(fenced) == 1, "the quick start has one block of commands"
    commands = [line.strip() for line in fenced[0]["body"].splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    assert "Python >= 3.11" in quick_start
    assert "make" in quick_start


def run_script(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "readme_example.py"
    script.write_text(code, encoding="utf-8")
    # A real script: its classes live in `__main__`, as a reader's would.
    return subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_first_flow_example_runs_as_written(tmp_path: Path) -> None:
    first_flow = section("A first flow")
    [code] = blocks(first_flow, "python")
    [expected] = blocks(first_flow, "text")
    result = run_script(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == expected
    assert result.stdout.startswith("COMPLETED ")


def test_choreography_example_runs_after_the_first_flow(tmp_path: Path) -> None:
    [first_flow] = blocks(section("A first flow"), "python")
    [first_output] = blocks(section("A first flow"), "text")
    choreography = section("The same participants as a choreography")
    [code] = blocks(choreography, "python")
    [expected] = blocks(choreography, "text")
    result = run_script(first_flow + "\n" + code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == first_output + expected
    assert expected.startswith("COMPLETED ")


def test_documentation_links_point_to_files() -> None:
    for target in re.findall(r"\]\(((?:docs|examples)/[^)#]*)\)", README):
        assert (ROOT / target).exists(), f"README links to missing {target}"
