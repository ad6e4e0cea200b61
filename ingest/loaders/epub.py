"""EPUB: the chapters in spine order, each cut at its headings, under the chapter's title.

An EPUB is a zip (zipsafe checks it and inflates every entry, bounded, before anything is
parsed) holding XHTML chapters; META-INF/container.xml names the OPF package, whose manifest
lists the files and whose spine gives the reading order. Each chapter goes through the HTML
loader's `html_to_blocks`; its title (its first block when that is a heading, else its label
in the nav document or NCX, else its <title>) is the top of the heading path, and the headings
inside the chapter nest under it. No ebooklib: zipfile and xml.etree do it with no new
dependency. Python's expat never fetches external entities and limits entity amplification,
and every XML file that declares an entity (<!ENTITY) is refused outright anyway: no EPUB
needs one, and that is how an entity bomb starts. DRM-protected books (encrypted content,
Adobe ADEPT's rights.xml) are refused; font obfuscation alone is not DRM and is accepted.
"""
from __future__ import annotations

import posixpath
import re
import zipfile
from urllib.parse import unquote
from xml.etree import ElementTree

from ingest.errors import LoadError
from ingest.loaders import zipsafe
from ingest.loaders.base import LoadedDocument, LoadOptions
from ingest.loaders.common import HeadingStack, build_sections, one_line
from ingest.loaders.decode import decode_text
from ingest.loaders.html import html_to_blocks

CONTAINER = "META-INF/container.xml"
ENCRYPTION = "META-INF/encryption.xml"
RIGHTS = "META-INF/rights.xml"
DRM_REASON = "EPUB with DRM (encrypted content): it cannot be read"
# Font obfuscation (IDPF, Adobe): mangles embedded fonts only, the text stays readable.
FONT_OBFUSCATION = frozenset({"http://www.idpf.org/2008/embedding",
                              "http://ns.adobe.com/pdf/enc#RC"})
_CHAPTER_TYPES = frozenset({"application/xhtml+xml", "text/html"})
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_TAGS = re.compile(r"<[^>]*>")

Marks = list[tuple[int, tuple[str, ...], int | None]]


def _xml(archive: zipfile.ZipFile, name: str, options: LoadOptions) -> ElementTree.Element:
    """A zip entry parsed as XML; LoadError if it declares entities or is not well-formed."""
    raw = zipsafe.read_entry(archive, name, options)
    probe = raw.decode("utf-16", "replace") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw
    if (b"<!ENTITY" if isinstance(probe, bytes) else "<!ENTITY") in probe:
        raise LoadError(f"EPUB entry '{one_line(name, 40)}' declares XML entities (<!ENTITY): "
                        "refused as a possible entity bomb")
    try:
        return ElementTree.fromstring(raw)
    except ElementTree.ParseError as exc:
        raise LoadError(f"corrupt EPUB ('{one_line(name, 40)}' is not well-formed XML: "
                        f"{one_line(str(exc), 40)})") from exc


def _check_drm(archive: zipfile.ZipFile, names: set[str], options: LoadOptions) -> None:
    """LoadError for DRM: rights.xml, or encryption.xml encrypting more than fonts."""
    if RIGHTS in names:
        raise LoadError(DRM_REASON)
    if ENCRYPTION not in names:
        return
    for data in _xml(archive, ENCRYPTION, options).iterfind(".//{*}EncryptedData"):
        methods = [m.get("Algorithm", "") for m in data.iterfind(".//{*}EncryptionMethod")]
        if not methods or any(method not in FONT_OBFUSCATION for method in methods):
            raise LoadError(DRM_REASON)


def _rootfile(archive: zipfile.ZipFile, names: set[str], options: LoadOptions) -> str:
    """The OPF package's entry name, from META-INF/container.xml."""
    if CONTAINER not in names:
        raise LoadError("not an EPUB (no META-INF/container.xml)")
    for rootfile in _xml(archive, CONTAINER, options).iterfind(".//{*}rootfile"):
        path = rootfile.get("full-path", "")
        if path and rootfile.get("media-type", "application/oebps-package+xml") == \
                "application/oebps-package+xml":
            if path not in names:
                raise LoadError(f"not an EPUB (the OPF package '{one_line(path, 40)}' is missing)")
            return path
    raise LoadError("not an EPUB (container.xml names no OPF package)")


def _resolve(base: str, href: str) -> str:
    """The entry name `href` (relative to the entry `base`, maybe %-encoded) points to."""
    target = unquote(href.split("#", 1)[0])
    return posixpath.normpath(posixpath.join(posixpath.dirname(base), target)).lstrip("/")


def _package(archive: zipfile.ZipFile, opf: str, options: LoadOptions
             ) -> tuple[list[str], list[str]]:
    """(chapter entry names in spine order, table-of-contents entry names: nav, NCX)."""
    root = _xml(archive, opf, options)
    manifest: dict[str, tuple[str, str, str]] = {}
    for item in root.iterfind("{*}manifest/{*}item"):
        if item.get("id") and item.get("href"):
            manifest[item.get("id", "")] = (_resolve(opf, item.get("href", "")),
                                            item.get("media-type", ""),
                                            item.get("properties", ""))
    spine = root.find("{*}spine")
    if spine is None:
        raise LoadError("not an EPUB (the OPF package has no spine)")
    chapters = [manifest[ref.get("idref", "")] for ref in spine.iterfind("{*}itemref")
                if ref.get("idref", "") in manifest]
    tocs = [path for path, kind, props in manifest.values() if "nav" in props.split()]
    if spine.get("toc") in manifest:
        tocs.append(manifest[spine.get("toc", "")][0])
    return [path for path, kind, _ in chapters if kind in _CHAPTER_TYPES], tocs


def _toc_labels(archive: zipfile.ZipFile, tocs: list[str], names: set[str],
                options: LoadOptions) -> dict[str, str]:
    """Entry name -> its first label in the nav document or NCX (labels are optional: a toc
    that cannot be parsed gives none, but one that declares entities is still refused)."""
    labels: dict[str, str] = {}
    for toc in tocs:
        if toc not in names:
            continue
        try:
            root = _xml(archive, toc, options)
        except LoadError as exc:
            if "<!ENTITY" in str(exc):
                raise
            continue
        for point in root.iterfind(".//{*}navPoint"):  # NCX
            label, content = point.find("{*}navLabel/{*}text"), point.find("{*}content")
            if label is not None and content is not None and content.get("src"):
                labels.setdefault(_resolve(toc, content.get("src", "")),
                                  one_line("".join(label.itertext()), 200))
        for link in root.iterfind(".//{*}a"):  # EPUB 3 nav document
            if link.get("href"):
                labels.setdefault(_resolve(toc, link.get("href", "")),
                                  one_line("".join(link.itertext()), 200))
    return {path: label for path, label in labels.items() if label}


def _chapter_blocks(html: str, label: str | None) -> tuple[str | None, list[tuple[str, int | None]]]:
    """(the chapter's title, its blocks after the title heading if that is its first block)."""
    blocks = html_to_blocks(html)
    if blocks and blocks[0][1] is not None:
        return blocks[0][0], blocks  # the title heading stays in the text
    if label:
        return label, blocks
    match = _TITLE.search(html)
    title = one_line(_TAGS.sub(" ", match.group(1)), 200) if match else ""
    return title or None, blocks


def _assemble(chapters: list[tuple[str | None, list[tuple[str, int | None]]]]
              ) -> tuple[str, Marks]:
    """Join every chapter's blocks with blank lines; a mark per chapter and per heading."""
    parts: list[str] = []
    marks: Marks = []
    offset = 0
    for title, blocks in chapters:
        stack = HeadingStack()
        marks.append((offset, stack.push(0, title) if title else (), None))
        for index, (text, level) in enumerate(blocks):
            if level is not None and not (index == 0 and text == title):
                marks.append((offset, stack.push(level, text), None))
            parts.append(text)
            offset += len(text) + 2
    return "\n\n".join(parts), marks


def load_epub(data: bytes, options: LoadOptions = LoadOptions()) -> LoadedDocument:
    """Load an EPUB: its chapters in reading order, sections from chapter titles and headings."""
    archive = zipsafe.open_zip(data, "EPUB", options)
    zipsafe.check_inflation(archive, options)
    names = {info.filename for info in archive.infolist() if not info.is_dir()}
    _check_drm(archive, names, options)
    opf = _rootfile(archive, names, options)
    spine, tocs = _package(archive, opf, options)
    labels = _toc_labels(archive, tocs, names, options)
    chapters = []
    for path in dict.fromkeys(spine):  # a chapter listed twice is read once
        if path not in names:
            continue
        try:
            html = decode_text(zipsafe.read_entry(archive, path, options))
        except LoadError:
            continue  # an empty or undecodable chapter adds nothing
        title, blocks = _chapter_blocks(html, labels.get(path))
        if blocks:
            chapters.append((title, blocks))
    if not chapters:
        raise LoadError("EPUB has no text content")
    text, marks = _assemble(chapters)
    return LoadedDocument(text=text, sections=build_sections(text, marks), kind="epub")
