"""docs/threat-model.md names the test behind each guarantee: every one it names must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITED = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?")


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_every_cited_test_exists() -> None:
    text = (ROOT / "docs" / "threat-model.md").read_text(encoding="utf-8")
    text = re.sub(r"`\s*\n\s*", "`", text)  # a citation may wrap after its backtick
    cited = CITED.findall(text.replace("::\n", "::"))
    assert len(cited) >= 20
    for file, name in cited:
        path = ROOT / file
        assert path.is_file(), file
        if name:
            assert name in _functions(path), f"{file}::{name}"
