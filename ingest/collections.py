"""Collections: named, isolated document sets, each with its own corpus folder and its own index.

They are defined in the TOML file RAG_COLLECTIONS_FILE names:

    [collections.hr]
    corpus = "/data/hr"        # a folder; a relative path is relative to the file
    [collections.eng]
    corpus = "eng"
    index = "/var/lib/ragfirst/eng"   # optional: its SQLite index folder
    schema = "eng_docs"               # optional: its PostgreSQL schema

Without the file there is one collection, `default`, on RAG_CORPUS_DIR, RAG_INDEX_DIR and
RAG_DATABASE_SCHEMA: everything works as it did before collections. With the file, each
collection's index is the folder `RAG_INDEX_DIR/<name>` (SQLite) or the schema
`<RAG_DATABASE_SCHEMA>_<name>` (PostgreSQL; `-` becomes `_`), unless its entry says otherwise.
Nothing is shared between two collections but the process: no index, no folder, no schema.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ingest.errors import SettingsError
from ingest.settings import IngestSettings

DEFAULT = "default"
NAME_RULE = "lower-case letters, digits, '-' and '_', at most 64 characters"
NAME_PATTERN = r"[a-z0-9_-]{1,64}"  # NAME_RULE, as a regular expression
_NAME = re.compile(NAME_PATTERN)
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_KEYS = frozenset({"corpus", "index", "schema"})

S = TypeVar("S", bound=IngestSettings)


@dataclass(frozen=True)
class CollectionConfig:
    name: str
    corpus_dir: Path
    index_dir: Path
    database_schema: str


def valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def collection_configs(settings: IngestSettings) -> list[CollectionConfig]:
    """The collections the settings define, in the file's order; SettingsError (one line
    naming the file and the entry) for anything that cannot be used."""
    if settings.collections_file is None:
        return [CollectionConfig(DEFAULT, settings.corpus_dir, settings.index_dir,
                                 settings.database_schema)]
    path = settings.collections_file
    table = read_toml(path, "RAG_COLLECTIONS_FILE")
    entries = table.get("collections")
    unknown = sorted(set(table) - {"collections"})
    if unknown:
        raise SettingsError(f"{path}: unknown table {unknown[0]!r} (collections are defined "
                            "as [collections.<name>])")
    if not isinstance(entries, dict) or not entries:
        raise SettingsError(f"{path} defines no collection: add one as [collections.<name>] "
                            'with corpus = "<folder>"')
    configs = [_entry(path, name, entry, settings) for name, entry in entries.items()]
    _refuse_shared(path, configs)
    return configs


def read_toml(path: Path, setting: str) -> dict:
    """The TOML file a setting names; SettingsError (one line) when it is missing or bad."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{setting}: {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{setting}: {path} cannot be read: {exc}") from None


def _entry(path: Path, name: str, entry: object, settings: IngestSettings) -> CollectionConfig:
    where = f"{path}: [collections.{name}]"
    if not valid_name(name):
        raise SettingsError(f"{where}: a collection's name is {NAME_RULE}")
    if not isinstance(entry, dict):
        raise SettingsError(f"{where} must be a table with corpus = \"<folder>\"")
    extra = sorted(set(entry) - _KEYS)
    if extra:
        raise SettingsError(f"{where}: unknown key {extra[0]!r} (known: corpus, index, schema)")
    for key in _KEYS & set(entry):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise SettingsError(f"{where}: {key} must be a non-empty string")
    if "corpus" not in entry:
        raise SettingsError(f"{where} needs corpus = \"<folder>\"")
    base = path.parent
    schema = entry.get("schema") or f"{settings.database_schema}_{name.replace('-', '_')}"
    if not _SCHEMA.fullmatch(schema):
        raise SettingsError(f"{where}: the PostgreSQL schema {schema!r} is not a valid name "
                            "(lower-case letters, digits and '_', at most 63 characters); set "
                            "schema = \"<name>\" in the entry")
    index = base / entry["index"] if "index" in entry else settings.index_dir / name
    return CollectionConfig(name, base / entry["corpus"], index, schema)


def _refuse_shared(path: Path, configs: list[CollectionConfig]) -> None:
    """Two collections on one folder (or one inside the other), one index or one schema would
    see each other's documents: refused at start."""
    for i, a in enumerate(configs):
        for b in configs[i + 1:]:
            pair = f"{path}: [collections.{a.name}] and [collections.{b.name}]"
            ca, cb = a.corpus_dir.resolve(), b.corpus_dir.resolve()
            if ca == cb or ca in cb.parents or cb in ca.parents:
                raise SettingsError(f"{pair} share documents (one corpus folder holds the "
                                    "other's): give each its own folder")
            if a.index_dir.resolve() == b.index_dir.resolve():
                raise SettingsError(f"{pair} have the same index folder")
            if a.database_schema == b.database_schema:
                raise SettingsError(f"{pair} have the same schema {a.database_schema!r}")


def settings_for(settings: S, config: CollectionConfig) -> S:
    """The settings of one collection: the same as `settings` but its corpus and its index."""
    return settings.model_copy(update={"corpus_dir": config.corpus_dir,
                                       "index_dir": config.index_dir,
                                       "database_schema": config.database_schema})


def named(configs: list[CollectionConfig], name: str) -> CollectionConfig:
    """The collection `name` among `configs`; SettingsError naming the known ones."""
    for config in configs:
        if config.name == name:
            return config
    raise SettingsError(f"no collection named {name!r} (known: "
                        f"{', '.join(c.name for c in configs)})")


def collection_settings(settings: S, name: str) -> S:
    """The settings of the collection `name`; SettingsError naming the known ones."""
    return settings_for(settings, named(collection_configs(settings), name))
