"""The EPUB loader: spine order, chapter titles as headings, nested headings, exact spans, and
the books it refuses (DRM, not an EPUB, entity bombs, zip bombs)."""
from __future__ import annotations

import io
import zipfile

from ingest.loaders import LoadOptions
from tests.ingest.loader_checks import assert_exact_spans, loaded, refusal

CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf"
    media-type="application/oebps-package+xml"/></rootfiles>
</container>"""

NAV = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>Contents</title></head><body><nav epub:type="toc"><ol>
<li><a href="text/intro.xhtml">Welcome Aboard</a></li>
<li><a href="text/setup.xhtml#top">Setting Up</a></li>
</ol></nav></body></html>"""


def chapter(body: str, title: str = "Chapter") -> str:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n'
            '<html xmlns="http://www.w3.org/1999/xhtml">'
            f"<head><title>{title}</title></head><body>{body}</body></html>")


def opf(manifest: list[tuple[str, str, str]], spine: list[str]) -> str:
    items = "".join(f'<item id="{i}" href="{h}" media-type="application/xhtml+xml"{p}/>'
                    for i, h, p in manifest)
    refs = "".join(f'<itemref idref="{i}"/>' for i in spine)
    return ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>T</dc:title>'
            f"</metadata><manifest>{items}</manifest><spine>{refs}</spine></package>")


def build(entries: dict[str, str | bytes], mimetype: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if mimetype:
            archive.writestr("mimetype", "application/epub+zip", zipfile.ZIP_STORED)
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def book(extra: dict[str, str | bytes] | None = None) -> bytes:
    """Three chapters; the manifest lists them c, a, b but the spine reads a, b, c."""
    manifest = [("c", "text/faq.xhtml", ""), ("nav", "nav.xhtml", ' properties="nav"'),
                ("a", "text/intro.xhtml", ""), ("b", "text/setup.xhtml", "")]
    entries: dict[str, str | bytes] = {
        "META-INF/container.xml": CONTAINER,
        "OEBPS/content.opf": opf(manifest, ["a", "b", "c"]),
        "OEBPS/nav.xhtml": NAV,
        # no heading: titled by its nav label
        "OEBPS/text/intro.xhtml": chapter("<p>Intro paragraph about kestrels.</p>"
                                          "<h2>Why Wikis</h2><p>Wikis keep notes.</p>",
                                          title="Intro file title"),
        # first block is a heading: it is the title; h2/h3 nest under it
        "OEBPS/text/setup.xhtml": chapter(
            "<h1>Installing the Agent</h1><p>Run the installer.</p>"
            "<h2>Linux</h2><p>Use the tarball.</p><h3>Debian</h3><p>Use the deb package.</p>"
            "<h2>Windows</h2><p>Use the MSI.</p>"),
        # neither a heading nor a nav label: titled by <title>
        "OEBPS/text/faq.xhtml": chapter("<p>Questions &amp; answers here.</p>",
                                        title="Frequently Asked"),
    }
    entries.update(extra or {})
    return build(entries)


def heading_of(doc, needle: str) -> tuple[str, ...]:
    at = doc.text.index(needle)
    return next(s.heading for s in doc.sections if s.start <= at < s.end)


def test_chapters_in_spine_order_with_titles_and_nested_headings() -> None:
    doc = loaded("guide.epub", book())
    assert doc.kind == "epub"
    order = [doc.text.index(s) for s in ("Intro paragraph", "Run the installer", "Questions &")]
    assert order == sorted(order), "chapters follow the spine, not the manifest"
    assert "Contents" not in doc.text, "the nav document itself adds no text"
    assert heading_of(doc, "Intro paragraph") == ("Welcome Aboard",)
    assert heading_of(doc, "Wikis keep") == ("Welcome Aboard", "Why Wikis")
    assert heading_of(doc, "Installing the Agent") == ("Installing the Agent",)
    assert heading_of(doc, "Run the installer") == ("Installing the Agent",)
    assert heading_of(doc, "Use the tarball") == ("Installing the Agent", "Linux")
    assert heading_of(doc, "deb package") == ("Installing the Agent", "Linux", "Debian")
    assert heading_of(doc, "Use the MSI") == ("Installing the Agent", "Windows")
    assert heading_of(doc, "Questions & answers") == ("Frequently Asked",)
    assert doc.text.startswith("Intro paragraph about kestrels.\n\nWhy Wikis\n\n")


def test_exact_spans() -> None:
    long_chapter = chapter("<h1>Long</h1>" + "".join(
        f"<p>Paragraph {n} says the retention window is {n} days for plan {n}.</p>"
        for n in range(60)))
    doc = loaded("long.epub", book({"OEBPS/text/faq.xhtml": long_chapter}))
    assert_exact_spans(doc)


def test_ncx_labels_epub2() -> None:
    ncx = ('<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" '
           'version="2005-1"><navMap><navPoint id="p1"><navLabel><text>From the NCX</text>'
           '</navLabel><content src="ch1.html"/></navPoint></navMap></ncx>')
    package = ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" '
               'version="2.0"><manifest>'
               '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
               '<item id="c1" href="ch1.html" media-type="application/xhtml+xml"/>'
               '</manifest><spine toc="ncx"><itemref idref="c1"/></spine></package>')
    container = CONTAINER.replace("OEBPS/content.opf", "book.opf")
    data = build({"META-INF/container.xml": container, "book.opf": package, "toc.ncx": ncx,
                  "ch1.html": chapter("<p>Body text.</p>", title="Ignored")})
    assert heading_of(loaded("old.epub", data), "Body text") == ("From the NCX",)


def test_drm_encryption_refused() -> None:
    encryption = ('<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                  'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
                  '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
                  '<enc:CipherData><enc:CipherReference URI="OEBPS/text/intro.xhtml"/>'
                  '</enc:CipherData></enc:EncryptedData></encryption>')
    reason = refusal("drm.epub", book({"META-INF/encryption.xml": encryption}))
    assert reason == "EPUB with DRM (encrypted content): it cannot be read"


def test_adobe_rights_refused() -> None:
    rights = '<rights xmlns="http://ns.adobe.com/adept"><licenseToken/></rights>'
    reason = refusal("adept.epub", book({"META-INF/rights.xml": rights}))
    assert reason == "EPUB with DRM (encrypted content): it cannot be read"


def test_font_obfuscation_only_accepted() -> None:
    encryption = ('<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                  'xmlns:enc="http://www.w3.org/2001/04/xmlenc#">' + "".join(
                      f'<enc:EncryptedData><enc:EncryptionMethod Algorithm="{alg}"/>'
                      f'<enc:CipherData><enc:CipherReference URI="OEBPS/f{n}.otf"/>'
                      '</enc:CipherData></enc:EncryptedData>'
                      for n, alg in enumerate(["http://www.idpf.org/2008/embedding",
                                               "http://ns.adobe.com/pdf/enc#RC"]))
                  + "</encryption>")
    doc = loaded("fonts.epub", book({"META-INF/encryption.xml": encryption}))
    assert "Run the installer." in doc.text


def test_missing_container_and_package() -> None:
    no_container = build({"OEBPS/content.opf": opf([], []), "a.xhtml": chapter("<p>x</p>")})
    assert refusal("a.epub", no_container) == "not an EPUB (no META-INF/container.xml)"
    no_opf = build({"META-INF/container.xml": CONTAINER})
    assert refusal("b.epub", no_opf) == "not an EPUB (the OPF package 'OEBPS/content.opf' is missing)"
    assert refusal("c.epub", b"just some text\n") == "not an EPUB: the file is plain text; rename it to .txt"


def test_entity_bomb_refused() -> None:
    lol = ('<?xml version="1.0"?><!DOCTYPE package [<!ENTITY a "lollollollollol">'
           + "".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">'
                     for n in range(9))
           + ']><package xmlns="http://www.idpf.org/2007/opf"><metadata>&j;</metadata>'
           '<manifest/><spine/></package>')
    reason = refusal("bomb.epub", book({"OEBPS/content.opf": lol}))
    assert "<!ENTITY" in reason and "entity bomb" in reason


def test_zip_bomb_refused_before_inflating() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip", zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", CONTAINER)
        with archive.open("OEBPS/huge.xhtml", "w") as entry:
            for _ in range(101):
                entry.write(b"\0" * 1_000_000)
    data = buffer.getvalue()
    assert len(data) < 1_000_000
    reason = refusal("bomb.epub", data, LoadOptions())
    assert "over the 100,000,000-byte limit" in reason


def test_no_text() -> None:
    data = book({"OEBPS/text/intro.xhtml": chapter(""), "OEBPS/text/setup.xhtml": chapter(""),
                 "OEBPS/text/faq.xhtml": chapter("<script>x()</script>")})
    assert refusal("empty.epub", data) == "EPUB has no text content"
