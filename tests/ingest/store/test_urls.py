"""A store named by a URL (ingest/store/urls.py), as `--copy-to` takes it: which forms mean what,
and when two settings name the same index."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import CopyRefusedError
from ingest.settings import IngestSettings
from ingest.store.urls import same_index, settings_for_url, shown_url

BASE = IngestSettings(index_dir=Path("index"))


@pytest.mark.parametrize("url, folder", [
    ("sqlite:///srv/rag/index", Path("/srv/rag/index")),
    ("sqlite:////srv/rag/index", Path("//srv/rag/index")),  # SQLAlchemy's absolute form too
    ("sqlite:indexes/copy", Path("indexes/copy")),  # relative to the working directory
    ("sqlite:///srv/my%20index", Path("/srv/my index")),
    ("sqlite:~/index", Path.home() / "index"),
])
def test_a_sqlite_url_names_an_index_folder(url, folder):
    target = settings_for_url(BASE, url)
    assert target.store == "sqlite" and target.index_dir == folder
    assert target.chunk_tokens == BASE.chunk_tokens  # everything else as it was


def test_a_postgres_url_takes_the_schema_given_or_the_settings_one():
    url = "postgresql://rag:pw@db.example:5432/rag"
    target = settings_for_url(BASE, url)
    assert (target.store, target.database_url, target.database_schema) == \
        ("postgres", url, BASE.database_schema)
    assert settings_for_url(BASE, url, "copy_2").database_schema == "copy_2"
    with pytest.raises(CopyRefusedError, match="with schema 'Copy-2' as a store: .*"
                                               "RAG_DATABASE_SCHEMA"):
        settings_for_url(BASE, url, "Copy-2")
    with pytest.raises(CopyRefusedError, match="a schema is for a postgresql:// target"):
        settings_for_url(BASE, "sqlite:copy", "copy_2")


def test_same_index_compares_what_names_an_index(tmp_path):
    folder = BASE.model_copy(update={"index_dir": tmp_path / "index"})
    assert same_index(folder, settings_for_url(folder, f"sqlite://{tmp_path}/x/../index"))
    assert not same_index(folder, settings_for_url(folder, f"sqlite://{tmp_path}/other"))
    pg = settings_for_url(BASE, "postgresql://u@/db?host=/run/pg")
    assert same_index(pg, settings_for_url(BASE, "postgres://u@/db?host=/run/pg"))
    assert not same_index(pg, settings_for_url(BASE, "postgresql://u@/db?host=/run/pg", "other"))
    assert not same_index(pg, folder)


def test_a_password_is_never_shown():
    assert shown_url("postgresql://rag:s3cret@db/rag") == "postgresql://rag:***@db/rag"
    assert shown_url("postgresql://rag@db/rag") == "postgresql://rag@db/rag"
