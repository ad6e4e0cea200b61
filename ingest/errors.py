"""The exceptions ingest raises. Each message says what went wrong and what to do about it."""


class IngestError(Exception):
    """Base class for every error the ingest package raises on purpose."""


class LoadError(IngestError):
    """A file cannot be used. The message is a one-line reason for the report (no path in it)."""


class IndexMismatchError(IngestError):
    """The index was built with another embedding model or other chunking parameters."""


class IndexNotFoundError(IngestError):
    """There is no index yet at the given folder."""


class CorpusNotFoundError(IngestError):
    """The corpus folder does not exist or is not a folder."""


class ModelUnavailableError(IngestError):
    """The embedding model cannot be loaded offline."""


class EmbedderUnavailableError(ModelUnavailableError):
    """The remote embedding server did not give usable vectors: refused, timed out, an error
    status, or an answer that cannot be used. The message names its URL and what happened."""


class SettingsError(IngestError):
    """A RAG_* setting has a value that cannot be used; the message names the variable."""


class IndexDamagedError(IngestError):
    """The index database is damaged (truncated, overwritten): it must be rebuilt."""


class IndexStorageError(IngestError):
    """The index cannot be written: the disk is full, the folder is read-only or gone. The
    message says so without naming paths; the cause has the details (for the log)."""


class IndexUnavailableError(IngestError):
    """The index's database server cannot be reached (down, a wrong URL, a refused login): the
    index itself is unchanged; requests get a 503 until it is back."""


class CopyRefusedError(IngestError):
    """A copy to another store cannot go ahead: its target is not a store URL, is the source
    itself, or holds another index (without --replace). Nothing was written."""
