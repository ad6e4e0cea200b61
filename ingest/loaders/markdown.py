"""Markdown: the source text as is, cut into sections at ATX and setext headings."""
from __future__ import annotations

import re

from ingest.loaders.base import LoadedDocument
from ingest.loaders.common import HeadingStack, build_sections
from ingest.loaders.decode import decode_text

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_ATX_CLOSING = re.compile(r"(?:^|[ \t]+)#+$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")
_THEMATIC_BREAK = re.compile(r"^ {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_FRONT_MATTER_OPEN = re.compile(r"^---[ \t]*$")
_FRONT_MATTER_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$")

_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`+)(?=\S)(.+?)(?<=\S)\1")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def clean_title(raw: str) -> str:
    """A heading's title without the inline markup readers do not see (links, emphasis, code)."""
    title = _IMAGE_OR_LINK.sub(r"\1", raw)
    title = _EMPHASIS.sub(r"\2", title)
    title = _ESCAPE.sub(r"\1", title)
    return " ".join(title.split())


def _atx_title(content: str | None) -> str:
    content = (content or "").strip()
    content = _ATX_CLOSING.sub("", content)  # "# Title ##" -> "Title"; "# C#" stays "C#"
    return clean_title(content)


def _front_matter_end(lines: list[str]) -> int:
    """How many leading lines are YAML front matter (0 if there is none)."""
    if not lines or not _FRONT_MATTER_OPEN.match(lines[0]):
        return 0
    for i in range(1, len(lines)):
        if _FRONT_MATTER_CLOSE.match(lines[i]):
            return i + 1
    return 0


def _can_be_setext_title(line: str) -> bool:
    if not line.strip() or line.startswith(("    ", "\t")):
        return False
    stripped = line.lstrip(" ")
    return not (
        _LIST_ITEM.match(line)
        or stripped.startswith(">")
        or _THEMATIC_BREAK.match(line)
        or _ATX.match(line)
        or _FENCE.match(line)
    )


def find_headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """The headings as (index of their first line, level, title), in document order."""
    headings: list[tuple[int, int, str]] = []
    fence: str | None = None  # the opening fence while inside a fenced code block
    plain_prev = False  # the previous line may be a setext heading's title
    in_container = False  # inside a list item's or block quote's paragraph (no setext there)
    for i in range(_front_matter_end(lines), len(lines)):
        line = lines[i]
        if fence is not None:
            match = _FENCE.match(line)
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                    and not match.group(2).strip():
                fence = None
            plain_prev = False
            continue
        match = _FENCE.match(line)
        if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
            fence = match.group(1)
            plain_prev = in_container = False
            continue
        setext = _SETEXT.match(line)
        if setext and plain_prev:
            title = clean_title(lines[i - 1])
            if title:
                headings.append((i - 1, 1 if setext.group(1)[0] == "=" else 2, title))
                plain_prev = False
                continue
        atx = _ATX.match(line)
        if atx:
            title = _atx_title(atx.group(2))
            if title:
                headings.append((i, len(atx.group(1)), title))
            plain_prev = in_container = False
            continue
        if not line.strip():
            in_container = False
        elif _LIST_ITEM.match(line) or line.lstrip(" ").startswith(">"):
            in_container = True
        plain_prev = not in_container and _can_be_setext_title(line)
    return headings


def load_markdown(data: bytes) -> LoadedDocument:
    """Load a Markdown file: the source is the text; each heading opens a section."""
    text = decode_text(data)
    lines = text.split("\n")
    offsets = [0]
    for line in lines[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    stack = HeadingStack()
    marks: list[tuple[int, tuple[str, ...], int | None]] = [(0, (), None)]
    for index, level, title in find_headings(lines):
        marks.append((offsets[index], stack.push(level, title), None))
    return LoadedDocument(text=text, sections=build_sections(text, marks), kind="markdown")
