"""Write the starter corpus' Office, spreadsheet and EPUB documents (deterministically).

Each format's document is built by `build(target)` in scripts/corpus_docs/<format>.py, from
facts written there and found nowhere else in the corpus (the labelled starter questions ask
about them). The output is byte-identical on every run: every timestamp the libraries or the
zip would write is fixed. `--check` builds each into a temporary folder and fails if a
committed file differs from a fresh build (tests run it).

Usage: .venv/bin/python scripts/build_corpus_docs.py [--check]
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
BUILDERS = ROOT / "scripts" / "corpus_docs"
# format module -> the document it writes under corpus/
DOCUMENTS = {
    "docx": "kestrelbook/onboarding-handbook.docx",
    "pptx": "kestrelbook/q3-roadmap-review.pptx",
    "xlsx": "kestrelbook/partners-and-training.xlsx",
    "delimited": "kestrelbook/integrations-catalog.csv",
    "epub": "kestrelbook/field-guide-for-admins.epub",
}


def builder(fmt: str) -> ModuleType:
    """scripts/corpus_docs/<fmt>.py, loaded by path under a name of its own (a module called
    csv.py on sys.path would hide the standard library's csv)."""
    spec = importlib.util.spec_from_file_location(f"corpus_docs_{fmt}", BUILDERS / f"{fmt}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_all(corpus: Path) -> list[Path]:
    written = []
    for fmt, rel in DOCUMENTS.items():
        target = corpus / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        builder(fmt).build(target)
        written.append(target)
    return written


def stale(corpus: Path) -> list[str]:
    """The committed documents that differ from a fresh build (or are missing)."""
    with tempfile.TemporaryDirectory() as tmp:
        build_all(Path(tmp))
        return [rel for rel in DOCUMENTS.values()
                if not (corpus / rel).is_file()
                or (corpus / rel).read_bytes() != (Path(tmp) / rel).read_bytes()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only check the committed documents equal a fresh build")
    args = parser.parse_args(argv)
    if args.check:
        differ = stale(ROOT / "corpus")
        for rel in differ:
            print(f"stale: corpus/{rel} (run scripts/build_corpus_docs.py)", file=sys.stderr)
        return 1 if differ else 0
    for path in build_all(ROOT / "corpus"):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
