"""The house rules a newcomer relies on, checked: no function in app/ or ingest/ over 60 lines
and no module over 400, unless the code says why in a `# long: <reason>` comment (on the line of
the `def` or the line above it; for a module, in its first 5 lines). And app/ reaches the index
only through ingest's reader seam: no sqlite3, no file layout of the index."""
from __future__ import annotations

import ast
import re

from tests.helpers import ROOT

MAX_FUNCTION, MAX_MODULE = 60, 400
REASON = re.compile(r"#\s*long:\s*\S")
SOURCES = sorted([*ROOT.glob("app/**/*.py"), *ROOT.glob("ingest/**/*.py")])


def _excused(lines: list[str], *line_numbers: int) -> bool:
    return any(0 < n <= len(lines) and REASON.search(lines[n - 1]) for n in line_numbers)


def test_functions_and_modules_stay_small_or_say_why():
    too_long = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        rel = path.relative_to(ROOT)
        if len(lines) > MAX_MODULE and not _excused(lines, *range(1, 6)):
            too_long.append(f"{rel}: {len(lines)} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if length > MAX_FUNCTION and not _excused(lines, first, first - 1):
                    too_long.append(f"{rel}:{node.lineno} {node.name}(): {length} lines")
    assert SOURCES and not too_long, "split them, or say why in a `# long:` comment: " + \
        "; ".join(too_long)


def test_app_reads_the_index_only_through_the_reader_seam():
    offenders = []
    for path in ROOT.glob("app/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name == "sqlite3" or name.startswith(("ingest.store.sqlite", "faiss")):
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, offenders
