"""Connections to the index's database, and its errors as ours: an unreachable server, a full disk
or a missing schema each become an IngestError that says what to do, naming the database without
its password (the service shows these messages to clients)."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from ingest.errors import IndexStorageError, IndexUnavailableError
from ingest.store.export import no_index

CONNECT_TIMEOUT_S = 10


def describe(url: str, schema: str) -> str:
    """`db "ragfirst" on host:5432, schema "ragfirst"`, never the password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return f"an unparsable database URL (schema {schema!r})"
    host = info.get("host") or urlsplit(url).hostname or "localhost"
    if host.startswith("/"):  # a Unix socket's folder: a path clients need not see
        host = "a local socket"
    port = f":{info['port']}" if info.get("port") else ""
    return f"database {info.get('dbname') or info.get('user') or 'postgres'!r} on {host}{port}, " \
           f"schema {schema!r}"


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as exc:
        raise unavailable(url, exc) from exc


_QUOTED_PATH = re.compile(r'"/[^"]*"')


def unavailable(url: str, exc: BaseException, schema: str = "") -> IndexUnavailableError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    first = _QUOTED_PATH.sub('"…"', first)  # libpq quotes the socket's path
    where = describe(url, schema) if schema else "the database"
    return IndexUnavailableError(f"{where} cannot be reached ({first}); check RAG_DATABASE_URL "
                                 "and that the server is up (the index there is unchanged)")


def translate(exc: BaseException, url: str, schema: str) -> Exception | None:
    """What a database error means for the user, or None when it is not one we explain."""
    if isinstance(exc, pg_errors.DiskFull):
        return IndexStorageError("the database's disk is full: the run could not be committed "
                                 "(the last commit still answers); free some space and ingest "
                                 "again")
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return IndexStorageError(f"the database user may not write the index ({exc}); grant it "
                                 "CREATE on the database (and the vector extension)")
    if isinstance(exc, (pg_errors.UndefinedTable, pg_errors.InvalidSchemaName)):
        return no_index(describe(url, schema))
    if isinstance(exc, psycopg.OperationalError):
        return unavailable(url, exc, schema)
    return None


def qualified(schema: str, text: str) -> sql.Composed:
    """SQL with `{s}` standing for the (quoted) schema name."""
    return sql.SQL(text).format(s=sql.Identifier(schema))
