"""The collections file (ingest/collections.py): what it defines, where each collection's
index goes, and every entry it refuses at start with a line that names the entry."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.collections import DEFAULT, collection_configs, settings_for
from ingest.errors import SettingsError
from ingest.settings import IngestSettings


def _file(tmp_path: Path, text: str) -> IngestSettings:
    path = tmp_path / "collections.toml"
    path.write_text(text, encoding="utf-8")
    return IngestSettings(collections_file=path, index_dir=tmp_path / "index")


def test_without_a_file_there_is_one_default_collection_on_the_settings_folders(tmp_path):
    s = IngestSettings(corpus_dir=tmp_path / "c", index_dir=tmp_path / "i")
    (only,) = collection_configs(s)
    assert (only.name, only.corpus_dir, only.index_dir, only.database_schema) == (
        DEFAULT, tmp_path / "c", tmp_path / "i", "ragfirst")
    assert settings_for(s, only) == s


def test_entries_get_their_own_folder_index_and_schema(tmp_path):
    s = _file(tmp_path, '[collections.hr]\ncorpus = "docs/hr"\n'
                        '[collections.eng-docs]\ncorpus = "/srv/eng"\nindex = "idx/eng"\n'
                        'schema = "eng"\n')
    hr, eng = collection_configs(s)
    assert (hr.name, hr.corpus_dir, hr.index_dir, hr.database_schema) == (
        "hr", tmp_path / "docs/hr", tmp_path / "index" / "hr", "ragfirst_hr")
    assert (eng.name, eng.corpus_dir, eng.index_dir, eng.database_schema) == (
        "eng-docs", Path("/srv/eng"), tmp_path / "idx/eng", "eng")
    own = settings_for(s, eng)
    assert (own.corpus_dir, own.index_dir, own.database_schema) == (
        Path("/srv/eng"), tmp_path / "idx/eng", "eng")
    assert own.chunk_tokens == s.chunk_tokens  # everything else is shared


@pytest.mark.parametrize("text,expected", [
    ('[collections.HR]\ncorpus = "a"\n', "[collections.HR]: a collection's name is lower-case"),
    ('[collections."a b"]\ncorpus = "a"\n', "a collection's name"),
    (f'[collections.{"x" * 65}]\ncorpus = "a"\n', "at most 64 characters"),
    ('[collections.hr]\nfolder = "a"\n', "[collections.hr]: unknown key 'folder'"),
    ('[collections.hr]\nindex = "a"\n', "[collections.hr] needs corpus"),
    ('[collections.hr]\ncorpus = ""\n', "corpus must be a non-empty string"),
    ('[collections.hr]\ncorpus = 3\n', "corpus must be a non-empty string"),
    ('[collections]\n', "defines no collection"),
    ('title = "x"\n', "unknown table 'title'"),
    ('[collections.hr\n', "cannot be read"),
    ('[collections.a]\ncorpus = "x"\n[collections.b]\ncorpus = "x"\n', "share documents"),
    ('[collections.a]\ncorpus = "x"\n[collections.b]\ncorpus = "x/sub"\n', "share documents"),
    ('[collections.a]\ncorpus = "x"\nindex = "i"\n[collections.b]\ncorpus = "y"\nindex = "i"\n',
     "the same index folder"),
    ('[collections.a-b]\ncorpus = "x"\n[collections.a_b]\ncorpus = "y"\n', "the same schema"),
    (f'[collections.{"y" * 60}]\ncorpus = "a"\n', "set schema"),
])
def test_a_bad_entry_is_refused_with_a_line_that_names_it(tmp_path, text, expected):
    with pytest.raises(SettingsError) as caught:
        collection_configs(_file(tmp_path, text))
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert "collections.toml" in str(caught.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(SettingsError, match="RAG_COLLECTIONS_FILE: .* does not exist"):
        collection_configs(IngestSettings(collections_file=tmp_path / "nope.toml"))


def test_an_empty_setting_means_no_file(monkeypatch):
    monkeypatch.setenv("RAG_COLLECTIONS_FILE", "")
    assert IngestSettings().collections_file is None
