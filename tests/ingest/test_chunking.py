"""Chunking invariants, with the embedding model's real tokenizer and with the fake one."""
from __future__ import annotations

import random

import pytest

from ingest.chunking import Chunker
from ingest.loaders import LoadedDocument, Section

WORDS = ("retrieval augmented generation grounds answers in passages that the index returns "
         "for every question while citations point at exact character spans of documents "
         "tokenizers split rare words like pneumonoultramicroscopic into several pieces").split()


def prose(n_sentences: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    sentences = []
    for _ in range(n_sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(5, 25))]
        sentences.append(" ".join(words).capitalize() + rng.choice(".!?"))
    paras, i = [], 0
    while i < len(sentences):
        k = rng.randint(1, 8)
        paras.append(" ".join(sentences[i:i + k]))
        i += k
    return "\n\n".join(paras)


def doc_of(text: str, sections=None) -> LoadedDocument:
    return LoadedDocument(text, tuple(sections or [Section(0, len(text))]), "text")


def check_invariants(chunker: Chunker, doc: LoadedDocument, count_tokens) -> list:
    chunks = chunker.split(doc)
    counts = count_tokens([c.text for c in chunks])
    covered = bytearray(len(doc.text))
    for i, (c, n) in enumerate(zip(chunks, counts)):
        assert c.ordinal == i
        assert doc.text[c.start:c.end] == c.text, "span must map back to the exact text"
        assert c.text == c.text.strip() and c.text, "chunks start and end on text"
        assert n == c.tokens and n <= chunker.max_tokens, f"chunk {i} has {n} tokens"
        assert len(c.text) <= chunker.max_chars
        section = next(s for s in doc.sections if s.start <= c.start and c.end <= s.end)
        assert (c.heading, c.page) == (section.heading, section.page)
        covered[c.start:c.end] = b"\x01" * (c.end - c.start)
    missing = [i for i, ch in enumerate(doc.text) if not ch.isspace() and not covered[i]]
    assert not missing, f"text not in any chunk at offsets {missing[:10]}"
    return chunks


@pytest.mark.parametrize("max_tokens,overlap", [(254, 32), (64, 16), (16, 0)])
def test_invariants_with_real_tokenizer(real_embedder, torch_embedder, max_tokens, overlap):
    chunker = Chunker(real_embedder.count_tokens, max_tokens, overlap)
    text = prose(120, seed=max_tokens)
    chunks = check_invariants(chunker, doc_of(text), real_embedder.count_tokens)
    assert len(chunks) > 3
    # The model would not truncate any chunk: special tokens included, they fit its window.
    window = torch_embedder.model.max_seq_length
    ids = torch_embedder.model.tokenizer([c.text for c in chunks])["input_ids"]
    assert max(len(x) for x in ids) <= window


def test_overlap_is_honoured(real_embedder):
    chunker = Chunker(real_embedder.count_tokens, 64, 16)
    text = prose(80, seed=3).replace("\n\n", " ")  # one long paragraph: overlap must carry
    chunks = check_invariants(chunker, doc_of(text), real_embedder.count_tokens)
    shared = []
    for a, b in zip(chunks, chunks[1:]):
        assert b.start > a.start and b.end > a.end, "each chunk moves forward"
        ov = text[b.start:a.end] if b.start < a.end else ""
        n = real_embedder.count_tokens([ov])[0] if ov.strip() else 0
        assert n <= 16, f"overlap of {n} tokens exceeds 16"
        shared.append(n)
    assert sum(1 for n in shared if n > 0) >= len(shared) * 0.8, shared
    assert max(shared) >= 8


def test_zero_overlap_means_disjoint(hashing_embedder):
    chunker = Chunker(hashing_embedder.count_tokens, 40, 0)
    text = prose(60, seed=4)
    chunks = check_invariants(chunker, doc_of(text), hashing_embedder.count_tokens)
    assert all(b.start >= a.end for a, b in zip(chunks, chunks[1:]))


def test_paragraph_boundaries_preferred(real_embedder):
    paras = [f"Paragraph {i} talks about topic {i}. " * 3 for i in range(12)]
    text = "\n\n".join(p.strip() for p in paras)
    chunker = Chunker(real_embedder.count_tokens, 60, 0)
    chunks = check_invariants(chunker, doc_of(text), real_embedder.count_tokens)
    for c in chunks:  # every chunk is made of whole paragraphs
        assert text[c.start - 2:c.start] in ("", "\n\n") and text[c.end:c.end + 2] in ("", "\n\n")


def test_single_huge_line_without_spaces(real_embedder):
    text = "x" * 400_000
    chunker = Chunker(real_embedder.count_tokens, 254, 32)
    chunks = check_invariants(chunker, doc_of(text), real_embedder.count_tokens)
    assert sum(len(c.text) for c in chunks) == 400_000  # no overlap possible, nothing lost


def test_huge_line_of_varied_characters(real_embedder):
    rng = random.Random(7)
    text = "".join(rng.choice("abcdefghij0123456789-_/αβγ漢字") for _ in range(60_000))
    chunker = Chunker(real_embedder.count_tokens, 254, 32)
    check_invariants(chunker, doc_of(text), real_embedder.count_tokens)


def test_chunks_stay_inside_sections(real_embedder):
    a, b, c = prose(10, 1), prose(15, 2), prose(3, 5)
    text = f"{a}\n\n{b}\n\n{c}"
    s1, s2 = len(a), len(a) + 2 + len(b)
    sections = [Section(0, s1, ("Intro",), 1), Section(s1 + 2, s2, ("Intro", "Details"), 2),
                Section(s2 + 2, len(text), ("End",), 3)]
    chunker = Chunker(real_embedder.count_tokens, 64, 16)
    chunks = check_invariants(chunker, doc_of(text, sections), real_embedder.count_tokens)
    assert {c.page for c in chunks} == {1, 2, 3}
    assert [c.heading for c in chunks if c.page == 2][0] == ("Intro", "Details")


def test_whitespace_only_section_gives_no_chunk(hashing_embedder):
    text = "Real words here.\n\n   \n\t\n"
    doc = doc_of(text, [Section(0, 16), Section(16, len(text))])
    chunks = Chunker(hashing_embedder.count_tokens, 40, 8).split(doc)
    assert [c.text for c in chunks] == ["Real words here."]


def test_rejects_bad_parameters(hashing_embedder):
    with pytest.raises(ValueError):
        Chunker(hashing_embedder.count_tokens, 64, 32)
    with pytest.raises(ValueError):
        Chunker(hashing_embedder.count_tokens, 4, 0)
