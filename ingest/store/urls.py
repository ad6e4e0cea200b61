"""A store named by a URL, as `python -m ingest --copy-to URL` takes it:

- `postgresql://...` (or `postgres://...`): a libpq URI, as RAG_DATABASE_URL takes it (a
  Unix-socket host included); the index is in the schema given separately (default
  RAG_DATABASE_SCHEMA).
- `sqlite:///abs/folder`: the index folder (as RAG_INDEX_DIR takes it, holding index.db) at an
  absolute path; `sqlite:folder` (no slashes) a path relative to the working directory, `~`
  expanded. Note: unlike SQLAlchemy's URLs, three slashes mean an absolute path, and the URL
  names the folder, not the database file.

Anything else, a host in a sqlite URL, or a URL that libpq cannot parse is refused with one
line that shows the accepted forms.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ingest.errors import CopyRefusedError, SettingsError
from ingest.settings import IngestSettings

FORMS = "postgresql://user:password@host:5432/db, or sqlite:///absolute/index-folder " \
        "(sqlite:relative/index-folder)"


def settings_for_url(settings: IngestSettings, url: str,
                     schema: str | None = None) -> IngestSettings:
    """`settings` pointed at the store `url` names (everything else as it was)."""
    values = settings.model_dump()
    if url.startswith(("postgresql://", "postgres://")):
        _check_libpq(url)
        values.update(store="postgres", database_url=url,
                      database_schema=schema or settings.database_schema)
    elif url.startswith("sqlite:"):
        if schema:
            raise CopyRefusedError("a schema is for a postgresql:// target, not a sqlite: one")
        values.update(store="sqlite", index_dir=sqlite_folder(url))
    else:
        raise CopyRefusedError(f"not a store URL: {shown_url(url)!r}; give {FORMS}")
    try:
        return type(settings).load(**values)
    except SettingsError as exc:
        named = f"{shown_url(url)!r}" + (f" with schema {schema!r}" if schema else "")
        raise CopyRefusedError(f"cannot use {named} as a store: {exc}") from None


def sqlite_folder(url: str) -> Path:
    """The index folder a sqlite: URL names."""
    parts = urlsplit(url)
    if parts.netloc:
        raise CopyRefusedError(f"a sqlite URL names a folder, not a host ({url!r}): give "
                               "sqlite:///absolute/index-folder or sqlite:relative/index-folder")
    if parts.query or parts.fragment:
        raise CopyRefusedError(f"a sqlite URL takes no ?options or #fragment ({url!r})")
    path = unquote(parts.path)
    if not path:
        raise CopyRefusedError(f"no folder in {url!r}: give sqlite:///absolute/index-folder")
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CopyRefusedError(f"{folder} is a file: a sqlite URL names the index folder "
                               "(the one holding index.db)")
    return folder


def same_index(a: IngestSettings, b: IngestSettings) -> bool:
    """Whether the two settings name the same index (as far as their names tell: the same
    folder, or the same libpq parameters and schema)."""
    if a.store != b.store:
        return False
    if a.store == "sqlite":
        return a.index_dir.resolve() == b.index_dir.resolve()
    from psycopg.conninfo import conninfo_to_dict

    return (a.database_schema == b.database_schema and
            conninfo_to_dict(a.database_url or "") == conninfo_to_dict(b.database_url or ""))


def _check_libpq(url: str) -> None:
    import psycopg

    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        why = str(exc).splitlines()[0].replace(url, shown_url(url))
        raise CopyRefusedError(f"cannot parse the database URL {shown_url(url)!r}: {why}") from None


def shown_url(url: str) -> str:
    """The URL without its password (messages may be logged)."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)
