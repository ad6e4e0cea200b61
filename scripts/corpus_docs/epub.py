"""The starter-corpus EPUB: corpus/kestrelbook/field-guide-for-admins.epub.

Four XHTML chapters, written by hand with zipfile (no EPUB library): the mimetype entry first
and stored uncompressed, as the EPUB container spec requires; every entry dated 2026-01-01 and
written in a fixed order, so the bytes are identical on every run.

Usage: .venv/bin/python scripts/corpus_docs/epub.py [target]
"""
from __future__ import annotations

import html
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TARGET = ROOT / "corpus" / "kestrelbook" / "field-guide-for-admins.epub"
STAMP = (2026, 1, 1, 0, 0, 0)
TITLE = "Kestrelbook Field Guide for Workspace Administrators"

# (file, title, [(heading level or 0 for a paragraph, text)])
CHAPTERS: list[tuple[str, str, list[tuple[int, str]]]] = [
    ("first-week.xhtml", "Your First Week as an Administrator", [
        (0, "This field guide is for the people who run a Kestrelbook workspace day to day. "
            "It was written by Tamsin Okafor of the Orrery Lane customer success team."),
        (2, "The admin console"),
        (0, "The admin console is called the Perch. Open it from the falcon icon in the "
            "sidebar; only Owners and Administrators see the icon."),
        (2, "Guests"),
        (0, "A new workspace can invite at most 35 guests. Owners can raise the guest cap "
            "from the Perch once the workspace has been active for 60 days."),
    ]),
    ("spaces.xhtml", "Spaces and Permission Presets", [
        (0, "Every page lives in a space, and every space has a permission preset."),
        (2, "The three presets"),
        (0, "Kestrelbook ships three presets: Reader (can view and comment), Scribe (can "
            "edit pages) and Curator (can edit pages, move them and manage the space)."),
        (3, "Large spaces"),
        (0, "When a space grows past 2,400 pages, the Perch suggests splitting it; search "
            "inside very large spaces gets noticeably slower."),
    ]),
    ("backups.xhtml", "Backups and Exports", [
        (0, "Kestrelbook takes a nightly snapshot of every workspace at 03:40 UTC and keeps "
            "each snapshot for 19 days."),
        (2, "Exporting a workspace"),
        (0, "A full export is a single .kbarchive file. Exports of workspaces larger than "
            "8 GB are split into parts and emailed to the Owner as a list of links."),
    ]),
    ("sign-in.xhtml", "Sign-In and Provisioning", [
        (0, "Workspaces on the Business plan can require single sign-on."),
        (2, "Provisioning tokens"),
        (0, "A provisioning token shown in the Perch is valid for 270 days. Kestrelbook "
            "emails the Owner a reminder 14 days before a token expires."),
    ]),
]

CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>
"""


def _chapter(title: str, blocks: list[tuple[int, str]]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for level, text in blocks:
        tag = f"h{level}" if level else "p"
        body.append(f"<{tag}>{html.escape(text)}</{tag}>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
            '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en">\n'
            f"<head><title>{html.escape(title)}</title></head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _nav() -> str:
    items = "\n".join(f'<li><a href="{name}">{html.escape(title)}</a></li>'
                      for name, title, _ in CHAPTERS)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
            '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
            f'\n<head><title>Contents</title></head>\n<body>\n<nav epub:type="toc"><ol>\n{items}'
            "\n</ol></nav>\n</body>\n</html>\n")


def _opf() -> str:
    items = "\n".join(f'    <item id="c{n}" href="{name}" media-type="application/xhtml+xml"/>'
                      for n, (name, _, _) in enumerate(CHAPTERS, start=1))
    refs = "\n".join(f'    <itemref idref="c{n}"/>' for n in range(1, len(CHAPTERS) + 1))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="id">urn:uuid:6f1c2a5e-kestrelbook-field-guide</dc:identifier>
    <dc:title>{TITLE}</dc:title>
    <dc:language>en</dc:language>
    <dc:creator>Tamsin Okafor</dc:creator>
    <meta property="dcterms:modified">2026-01-01T00:00:00Z</meta>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
{items}
  </manifest>
  <spine>
{refs}
  </spine>
</package>
"""


def _write(archive: zipfile.ZipFile, name: str, text: str, method: int) -> None:
    info = zipfile.ZipInfo(name, date_time=STAMP)
    info.compress_type = method
    info.create_system = 3
    info.external_attr = 0o644 << 16
    archive.writestr(info, text.encode("utf-8"))


def build(target: Path) -> None:
    """Write the EPUB to `target` (byte-identical on every run)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as archive:
        _write(archive, "mimetype", "application/epub+zip", zipfile.ZIP_STORED)
        _write(archive, "META-INF/container.xml", CONTAINER, zipfile.ZIP_DEFLATED)
        _write(archive, "OEBPS/content.opf", _opf(), zipfile.ZIP_DEFLATED)
        _write(archive, "OEBPS/nav.xhtml", _nav(), zipfile.ZIP_DEFLATED)
        for name, title, blocks in CHAPTERS:
            _write(archive, f"OEBPS/{name}", _chapter(title, blocks), zipfile.ZIP_DEFLATED)


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET)
