"""Tests for ingest.loaders: text decoding, Markdown and HTML extraction, and refusals (PDF:
test_pdf.py)."""
from __future__ import annotations

import codecs
import random
from pathlib import PurePath

import pytest

from ingest.errors import LoadError
from ingest.loaders import SUPPORTED_EXTENSIONS, LoadedDocument, Section, load
from tests.ingest.loader_checks import assert_well_formed, loaded, refusal

def texts(doc: LoadedDocument) -> list[str]:
    return [doc.text[s.start : s.end] for s in doc.sections]


def headings(doc: LoadedDocument) -> list[tuple[str, ...]]:
    return [s.heading for s in doc.sections]


# --------------------------------------------------------------------------- dispatch


def test_supported_extensions() -> None:
    assert SUPPORTED_EXTENSIONS == frozenset(
        {".md", ".markdown", ".txt", ".text", ".html", ".htm", ".pdf", ".epub", ".docx", ".pptx",
         ".xlsx", ".csv", ".tsv"}
    )


def test_unsupported_extension_is_refused_with_the_supported_list() -> None:
    reason = refusal("report.odt", b"PK\x03\x04 whatever")
    assert reason == (
        "unsupported file type '.odt' (supported: csv, docx, epub, htm, html, markdown, md, pdf, "
        "pptx, text, tsv, txt, xlsx)"
    )


def test_file_without_extension_is_refused() -> None:
    assert refusal("Makefile", b"all:\n\techo hi\n").startswith("file has no extension")


@pytest.mark.parametrize(
    ("name", "kind"),
    [("README.MD", "markdown"), ("notes.Markdown", "markdown"), ("a.TXT", "text"),
     ("b.Text", "text"), ("page.HTML", "html"), ("page.Htm", "html")],
)
def test_extension_match_is_case_insensitive(name: str, kind: str) -> None:
    source = "<h1>Title</h1><p>Body</p>" if kind == "html" else "# Title\n\nBody\n"
    assert loaded(name, source).kind == kind


def test_loader_crash_becomes_a_one_line_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.loaders import html as html_module

    def explode(_: str) -> list[tuple[str, int | None]]:
        raise ValueError("parser blew up\nwith a second line")

    monkeypatch.setattr(html_module, "html_to_blocks", explode)
    reason = refusal("page.html", "<p>hello</p>")
    assert reason.startswith("could not read the file (ValueError: parser blew up with")


def test_empty_data_is_refused_for_every_type() -> None:
    for ext in sorted(SUPPORTED_EXTENSIONS):
        assert refusal(f"empty{ext}", b"") == "empty file"


# --------------------------------------------------------------------------- text and decoding

LATIN1_FALLBACK = "Grüße aus Köln, ça va? " * 10 + "\x81"  # 0x81 is undefined in cp1252


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param("café naïve €".encode("utf-8"), "café naïve €", id="utf-8"),
        pytest.param(codecs.BOM_UTF8 + "café".encode("utf-8"), "café", id="utf-8-bom"),
        pytest.param(codecs.BOM_UTF16_LE + "café €".encode("utf-16-le"), "café €",
                     id="utf-16-le"),
        pytest.param(codecs.BOM_UTF16_BE + "café €".encode("utf-16-be"), "café €",
                     id="utf-16-be"),
        pytest.param(codecs.BOM_UTF32_LE + "café €".encode("utf-32-le"), "café €",
                     id="utf-32-le"),
        pytest.param(codecs.BOM_UTF32_BE + "café €".encode("utf-32-be"), "café €",
                     id="utf-32-be"),
        pytest.param(b"a na\xefve \x80 price, \x93quoted\x94", "a naïve € price, “quoted”",
                     id="cp1252"),
        pytest.param("Grüße aus Köln, ça va?".encode("latin-1"), "Grüße aus Köln, ça va?",
                     id="latin-1"),
        pytest.param(LATIN1_FALLBACK.encode("latin-1"), LATIN1_FALLBACK, id="latin-1-fallback"),
    ],
)
def test_text_decoding(data: bytes, expected: str) -> None:
    doc = loaded("notes.txt", data)
    assert doc.kind == "text"
    assert doc.text == expected
    assert "\ufeff" not in doc.text
    assert texts(doc) == [expected]
    assert doc.sections[0].heading == ()


def test_text_newlines_are_normalised() -> None:
    doc = loaded("notes.txt", b"one\r\ntwo\rthree\nfour\r\n")
    assert doc.text == "one\ntwo\nthree\nfour\n"
    assert texts(doc) == ["one\ntwo\nthree\nfour"]


def test_utf16_crlf_is_normalised_too() -> None:
    doc = loaded("notes.txt", "line one\r\nline two".encode("utf-16"))
    assert doc.text == "line one\nline two"


def test_text_single_section_spans_the_trimmed_content() -> None:
    doc = loaded("notes.text", "\n\n   First line.\n\nLast line.  \n\n")
    assert len(doc.sections) == 1
    assert texts(doc) == ["First line.\n\nLast line."]


def test_text_with_nul_bytes_is_refused() -> None:
    assert refusal("data.txt", b"header\x00\x01\x02\x00payload") == (
        "binary content under a text extension"
    )


def test_utf16_without_bom_is_refused_as_binary() -> None:
    assert "binary" in refusal("notes.txt", "plain words".encode("utf-16-le"))


def test_random_bytes_are_refused() -> None:
    rng = random.Random(20240601)
    noise = bytes(rng.randrange(256) for _ in range(4096))
    assert "binary" in refusal("noise.txt", noise)
    assert "binary" in refusal("noise.md", noise.replace(b"\x00", b""))  # no NULs: control chars


def test_control_character_threshold() -> None:
    text = "x" * 500
    assert loaded("ok.txt", text[:250] + "\x1b" + text[250:]).text.count("\x1b") == 1
    assert "binary" in refusal("bad.txt", ("abc\x01\x02" * 100).encode("ascii"))
    assert loaded("ff.txt", "page one\fpage two\tcol").text == "page one\fpage two\tcol"


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "empty file"), (codecs.BOM_UTF8, "empty file"),
     (b" \t\r\n\n  ", "file has only whitespace"),
     (codecs.BOM_UTF16_LE + " \n ".encode("utf-16-le"), "file has only whitespace")],
)
def test_empty_and_whitespace_text_is_refused(data: bytes, reason: str) -> None:
    assert refusal("blank.txt", data) == reason
    assert refusal("blank.md", data) == reason


# --------------------------------------------------------------------------- Markdown

SLA_MD = """\
Preamble before any heading.

# Quillmate SLA

Intro paragraph.

## Service credits

Credits are paid monthly.

### Claims

File a claim within 30 days.

## Uptime

99.9% monthly.

# Appendix

Glossary.
"""


def test_markdown_heading_paths_nest_and_pop() -> None:
    doc = loaded("sla.md", SLA_MD)
    assert doc.kind == "markdown"
    assert doc.text == SLA_MD  # the source itself, markup kept
    assert headings(doc) == [
        (),
        ("Quillmate SLA",),
        ("Quillmate SLA", "Service credits"),
        ("Quillmate SLA", "Service credits", "Claims"),
        ("Quillmate SLA", "Uptime"),
        ("Appendix",),
    ]
    assert texts(doc) == [
        "Preamble before any heading.",
        "# Quillmate SLA\n\nIntro paragraph.",
        "## Service credits\n\nCredits are paid monthly.",
        "### Claims\n\nFile a claim within 30 days.",
        "## Uptime\n\n99.9% monthly.",
        "# Appendix\n\nGlossary.",
    ]


def test_markdown_skipped_levels_and_heading_first() -> None:
    doc = loaded("skip.md", "# A\ntext a\n### C\ntext c\n## B\ntext b\n#### D\ntext d\n")
    assert headings(doc) == [("A",), ("A", "C"), ("A", "B"), ("A", "B", "D")]
    assert doc.sections[0].start == 0  # no empty preamble section


def test_markdown_closing_hashes_and_title_markup() -> None:
    source = (
        "# Title with closing ##\nbody\n"
        "## C# and F#\nbody\n"
        "## Spaces after closing ###   \nbody\n"
        "## **Bold** [link](https://example.com) `code` \\#hash ##\nbody\n"
    )
    assert headings(loaded("t.md", source)) == [
        ("Title with closing",),
        ("Title with closing", "C# and F#"),
        ("Title with closing", "Spaces after closing"),
        ("Title with closing", "Bold link code #hash"),
    ]


def test_markdown_atx_indentation_and_non_headings() -> None:
    source = (
        "   ## Three spaces\nbody\n"
        "    # four spaces is code\n"
        "#hashtag is not a heading\n"
        "####### seven hashes is not a heading\n"
    )
    doc = loaded("t.md", source)
    assert headings(doc) == [("Three spaces",)]
    assert texts(doc) == [source[3:].rstrip()]  # the section starts at the "#"


def test_markdown_setext_headings() -> None:
    source = (
        "Top Title\n=========\n\nintro\n\n"
        "Second Level\n------------\n\nbody\n\n"
        "- a list item\n---\n\n"
        "- another item\n  continued\n---\n\n"
        "> quoted\nlazy continuation\n---\n\n"
        "after a blank line\n\n---\n\n"
        "Another Top\n===\nend\n"
    )
    doc = loaded("setext.md", source)
    assert headings(doc) == [("Top Title",), ("Top Title", "Second Level"), ("Another Top",)]
    first, second, third = texts(doc)
    assert first == "Top Title\n=========\n\nintro"
    assert second.startswith("Second Level\n------------\n\nbody")
    for not_a_heading in ("- a list item\n---", "continued\n---", "lazy continuation\n---"):
        assert not_a_heading in second
    assert third == "Another Top\n===\nend"


def test_markdown_fenced_code_is_never_a_heading() -> None:
    source = (
        "# Real\n\n"
        "```bash\n# a shell comment\nSetext lookalike\n---\n```\n\n"
        "~~~\n## tilde fenced\n~~~\n\n"
        "````\n```\n# inside a longer fence\n```\n````\n\n"
        "## After fences\n\ntext\n\n"
        "```\n# unclosed fence runs to the end\n"
    )
    doc = loaded("code.md", source)
    assert headings(doc) == [("Real",), ("Real", "After fences")]
    assert "# a shell comment" in texts(doc)[0]
    assert texts(doc)[1].endswith("# unclosed fence runs to the end")


def test_markdown_front_matter_belongs_to_the_first_section() -> None:
    source = "---\ntitle: Quillmate SLA\nowner: ops\n---\n# Quillmate SLA\n\nBody.\n"
    doc = loaded("fm.md", source)
    assert headings(doc) == [(), ("Quillmate SLA",)]
    assert texts(doc)[0] == "---\ntitle: Quillmate SLA\nowner: ops\n---"
    # Without front matter, "text" then "---" would be a setext heading; inside it, it is not.
    assert headings(loaded("fm2.md", "---\ntitle: x\n---\nBody\n")) == [()]


def test_markdown_crlf_source_is_normalised() -> None:
    doc = loaded("crlf.md", b"# One\r\n\r\nalpha\r\n## Two\r\nbeta\r\n")
    assert doc.text == "# One\n\nalpha\n## Two\nbeta\n"
    assert headings(doc) == [("One",), ("One", "Two")]
    assert texts(doc) == ["# One\n\nalpha", "## Two\nbeta"]


def test_markdown_empty_headings_do_not_open_sections() -> None:
    doc = loaded("e.md", "# Real\ntext\n#\nmore\n## ##\nend\n")
    assert headings(doc) == [("Real",)]


def test_markdown_without_headings_is_one_section() -> None:
    doc = loaded("plain.markdown", "Just a paragraph\nwith two lines.\n")
    assert headings(doc) == [()]
    assert texts(doc) == ["Just a paragraph\nwith two lines."]


# --------------------------------------------------------------------------- HTML

PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>HeadTitle | Quillmate</title>
  <style>body { color: StyleRule; }</style>
  <script>var secret = "ScriptCode";</script>
</head>
<body>
  <header><a href="/">SiteHeaderLogo</a></header>
  <nav><ul><li>NavHome</li><li>NavPricing</li></ul></nav>
  <main>
    <article>
      <header><h1>Quillmate   SLA</h1><p>BylineInHeader</p></header>
      <p>Intro  paragraph
         with <strong>bold</strong> and <a href="#">a link</a>.</p>
      <h2>Service credits</h2>
      <p>Credits are paid monthly.</p>
      <h3>Claims</h3>
      <p>File within 30 days.</p>
      <h2>Uptime</h2>
      <p>99.9% monthly.<button>ButtonText</button></p>
      <form><label>FormLabel</label><input name="q"></form>
      <aside>AsideText</aside>
      <footer>ArticleFooter</footer>
    </article>
  </main>
  <noscript>NoscriptText</noscript>
  <template><p>TemplateText</p></template>
  <iframe src="x">IframeText</iframe>
  <svg><text>SvgText</text></svg>
  <footer>SiteFooter &copy; 2024</footer>
  <script>trailingScript()</script>
</body>
</html>
"""


def test_html_boilerplate_is_dropped() -> None:
    doc = loaded("page.html", PAGE)
    for absent in ("HeadTitle", "StyleRule", "ScriptCode", "SiteHeaderLogo", "NavHome",
                   "NavPricing", "BylineInHeader", "ButtonText", "FormLabel", "AsideText",
                   "ArticleFooter", "NoscriptText", "TemplateText", "IframeText", "SvgText",
                   "SiteFooter", "trailingScript"):
        assert absent not in doc.text, absent


def test_html_blocks_and_heading_paths() -> None:
    doc = loaded("page.html", PAGE)
    assert doc.kind == "html"
    assert doc.text == (
        "Quillmate SLA\n\n"
        "Intro paragraph with bold and a link.\n\n"
        "Service credits\n\nCredits are paid monthly.\n\n"
        "Claims\n\nFile within 30 days.\n\n"
        "Uptime\n\n99.9% monthly."
    )
    assert headings(doc) == [
        ("Quillmate SLA",),
        ("Quillmate SLA", "Service credits"),
        ("Quillmate SLA", "Service credits", "Claims"),
        ("Quillmate SLA", "Uptime"),
    ]
    assert texts(doc)[1] == "Service credits\n\nCredits are paid monthly."


def test_html_text_before_first_heading_has_no_heading() -> None:
    doc = loaded("p.htm", "<p>Lead text.</p><h2>Part</h2><p>Body.</p><h1>Top</h1><p>x</p>")
    assert headings(doc) == [(), ("Part",), ("Top",)]
    assert texts(doc) == ["Lead text.", "Part\n\nBody.", "Top\n\nx"]


def test_html_entities_are_unescaped() -> None:
    html = "<p>Fish &amp; chips &lt;b&gt; caf&eacute; &#8364;5 &#x2014; a&nbsp;b</p>"
    doc = loaded("e.html", html)
    assert doc.text == "Fish & chips <b> café €5 — a b"


def test_html_whitespace_is_collapsed_but_pre_keeps_its_lines() -> None:
    html = (
        "<p>  many    spaces\n\n\tand\ttabs  </p>"
        "<pre>\ndef f():\n    return  1\n\n# done\n</pre>"
        "<p>line one<br>line two<br/>  line three</p>"
    )
    doc = loaded("w.html", html)
    assert doc.text == (
        "many spaces and tabs\n\n"
        "def f():\n    return  1\n\n# done\n\n"
        "line one\nline two\nline three"
    )


def test_html_lists_tables_and_divs() -> None:
    html = (
        "<ul><li>One</li><li>Two<ul><li>Nested</li></ul></li></ul>"
        "<ol><li>First<li>Second</ol>"
        "<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Basic</td><td>$5</td></tr></table>"
        "<div>Direct div text<p>inner para</p>tail</div>"
        "<dl><dt>Term</dt><dd>Definition</dd></dl>"
        "<blockquote>Quoted words</blockquote>"
        "<figure><img src=x alt=pic><figcaption>Caption</figcaption></figure>"
    )
    blocks = loaded("l.html", html).text.split("\n\n")
    assert blocks == [
        "- One", "- Two", "- Nested", "1. First", "2. Second",
        "Plan | Price", "Basic | $5",
        "Direct div text", "inner para", "tail",
        "Term", "Definition", "Quoted words", "Caption",
    ]


def test_html_tolerates_broken_markup() -> None:
    html = (
        "<title>T</title><p>No body tag<p>Unclosed paragraph</div></span>"
        "<div><nav>unclosed nav</div><p>After the div"
        "<h2>Unclosed heading<h3>Next heading</h3><p>end"
    )
    doc = loaded("broken.html", html)
    assert doc.text.split("\n\n") == [
        "No body tag", "Unclosed paragraph", "After the div",
        "Unclosed heading", "Next heading", "end",
    ]
    assert headings(doc) == [(), ("Unclosed heading",), ("Unclosed heading", "Next heading")]


def test_html_meta_charset_windows_1252_is_honoured() -> None:
    body = "<p>Caf\xe9 \x93quoted\x94 costs \x805</p>".encode("latin-1")
    declared = b'<html><head><meta charset="windows-1252"></head><body>' + body
    assert loaded("a.html", declared).text == "Café “quoted” costs €5"
    # The declaration wins even over bytes that happen to be valid UTF-8 (as in browsers).
    utf8_bytes = b'<meta charset="windows-1252"><p>' + "é".encode("utf-8") + b"</p>"
    assert loaded("b.html", utf8_bytes).text == "Ã©"


def test_html_http_equiv_charset_is_honoured() -> None:
    head = b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'
    data = head + b"<p>" + "Привет, мир".encode("koi8_r") + b"</p>"
    assert loaded("ru.html", data).text == "Привет, мир"
    # Undeclared, the same bytes are not UTF-8 and would come out as Windows-1252.
    undeclared = b"<p>" + "Привет".encode("koi8_r") + b"</p>"
    assert loaded("ru2.html", undeclared).text != "Привет"


def test_html_charset_fallbacks() -> None:
    # A wrong utf-8 declaration falls back to the usual guessing; a BOM beats the declaration.
    wrong = b'<meta charset="utf-8"><p>caf\xe9</p>'
    assert loaded("w.html", wrong).text == "café"
    bom = codecs.BOM_UTF8 + '<meta charset="windows-1252"><p>café</p>'.encode("utf-8")
    assert loaded("bom.html", bom).text == "café"
    unknown = b'<meta charset="no-such-charset"><p>plain</p>'
    assert loaded("u.html", unknown).text == "plain"


@pytest.mark.parametrize(
    "html",
    [
        "<html><head><title>Only a title</title></head><body></body></html>",
        "<html><body><nav>menu</nav><script>x()</script><footer>(c)</footer></body></html>",
        "<div>   <p> </p> <!-- a comment --> </div>",
    ],
)
def test_html_without_text_is_refused(html: str) -> None:
    assert refusal("empty.html", html) == "HTML page has no text content"


def test_html_whitespace_file_is_refused() -> None:
    assert refusal("blank.html", b"  \n\n ") == "file has only whitespace"


# --------------------------------------------------------------------------- properties


def _random_markdown(rng: random.Random) -> str:
    pieces = ["# Top", "## Sub ##", "### Deep", "Title", "=====", "-----", "---", "```", "~~~",
              "- item", "> quote", "    indented", "plain words", "", "", "  ", "#tag",
              "####### seven", "title: x", "\t", "1. one", "# C#"]
    lines = [rng.choice(pieces) for _ in range(rng.randrange(1, 30))]
    return rng.choice(["\n", "\r\n"]).join(lines)


def _random_html(rng: random.Random) -> str:
    tags = ["p", "div", "h1", "h2", "h3", "li", "ul", "pre", "nav", "header", "article", "main",
            "table", "tr", "td", "span", "b", "script", "footer", "section", "br"]
    out = []
    for _ in range(rng.randrange(1, 40)):
        roll = rng.random()
        tag = rng.choice(tags)
        if roll < 0.35:
            out.append(f"<{tag}>")
        elif roll < 0.6:
            out.append(f"</{tag}>")
        else:
            out.append(rng.choice(["word", " two words ", "\n", "&amp;", "x\ny", "  ", "é"]))
    return "".join(out)


def test_markdown_sections_hold_for_random_documents() -> None:
    rng = random.Random(1)
    for _ in range(300):
        source = _random_markdown(rng)
        if not source.strip():
            continue
        loaded("fuzz.md", source)  # asserts the section invariants


def test_html_sections_hold_for_random_tag_soup() -> None:
    rng = random.Random(2)
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(300):
        html = _random_html(rng)
        try:
            doc = load(PurePath("fuzz.html"), html.encode("utf-8"))
        except LoadError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
            continue
        assert_well_formed(doc)
        outcomes["loaded"] += 1
    assert outcomes["loaded"] > 100  # the soup mostly holds some text


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.md", SLA_MD),
        ("b.md", "   \n\n# Heading after blank lines\n\n   text   \n\n\n"),
        ("c.txt", "\ufeffwith a BOM character already decoded\n"),
        ("d.html", PAGE),
        ("e.htm", "<pre>\n\n  indented\n\n</pre><h1>H</h1>  <p> p </p>"),
    ],
)
def test_every_loader_output_is_well_formed(name: str, data: str) -> None:
    loaded(name, data)


# --------------------------------------------------------------------------- refusal messages


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("x.docx", b"PK"),
        ("x.txt", b""),
        ("x.txt", b"\n\n"),
        ("x.txt", b"a\x00b"),
        ("x.md", b"\x01\x02\x03\x04 text"),
        ("x.html", b"<script>only()</script>"),
        ("x.pdf", b"not a pdf"),
        ("x.pdf", b"%PDF-1.4\n1 0 obj"),
        ("x.pdf", b"%PDF-1.4\n" + b"\x00garbage\n" * 50 + b"%%EOF\n"),
    ],
)
def test_every_refusal_is_a_single_short_line(name: str, data: bytes) -> None:
    refusal(name, data)  # the helper asserts: one line, <= 120 chars, no path
