"""A collection's files over HTTP: upload (POST /collections/{name}/documents), delete and
download (DELETE and GET /collections/{name}/documents/{path}).

Every route gets its collection from `app.access.grant` and from nowhere else: access is
decided in that one place. A name is checked by app.corpus_files before anything touches the
disk; a download answers 404 alike for a file that is absent and for a name the checks refuse,
so a client learns nothing about which check it failed (an upload, by contrast, says why a name
is refused: the uploader needs to know what to rename)."""
from __future__ import annotations

import logging
import os
import stat
from pathlib import PurePosixPath
from typing import Callable, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from app import corpus_files, uploads
from app.access import Role, grant
from app.api.schemas import errors
from app.collections import Collection
from app.errors import IndexNotReady
from app.freshness import IngestFailed

log = logging.getLogger("ragfirst.uploads")


class _OneAllowPerPath(APIRoute):
    """A 405 names every method of its path. Starlette names only the methods of the first
    route whose path matched (`Allow: DELETE` for .../documents/{path}, which takes GET too),
    and a client that reads Allow would never try the other."""

    async def handle(self, scope, receive, send) -> None:
        if self.methods and scope["method"] not in self.methods:
            allowed = {m for r in router.routes
                       if isinstance(r, APIRoute) and r.path == self.path for m in r.methods}
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
        await super().handle(scope, receive, send)


router = APIRouter(tags=["collections"], route_class=_OneAllowPerPath)

MAX_FILES = 100  # per upload request; more is a 400 before any is written
MAX_FIELDS, MAX_FIELD_BYTES = 10, 1024  # the form's other fields (`overwrite`) are tiny
NOT_FOUND = "no such document in this collection"


class FileOutcome(BaseModel):
    path: str
    status: Literal["added", "replaced", "unchanged", "refused", "exists"]
    reason: str | None = None  # why it was refused, or that it exists
    chunks: int | None = None  # indexed chunks of the file, once indexed


class UploadResponse(BaseModel):
    collection: str
    generation: int
    files: list[FileOutcome]
    ingest: dict | None  # the ingest's report (POST /ingest's); null when nothing was written


class DeleteResponse(BaseModel):
    collection: str
    path: str
    deleted: bool
    generation: int
    chunks_removed: int


UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "array", "minItems": 1, "maxItems": MAX_FILES,
                 "items": {"type": "string", "format": "binary"},
                 "description": "one part per file; its filename is its path in the "
                                "collection (`notes/new.md`)"},
        "overwrite": {"type": "string", "enum": ["true", "false"], "default": "false",
                      "description": "replace files that exist (otherwise: status `exists`)"}}}}}}}


def _batch(description: str) -> dict:
    return {"model": UploadResponse, "description": description}


@router.post("/collections/{name}/documents", status_code=201, response_model=UploadResponse,
             openapi_extra=UPLOAD_BODY,
             responses={200: _batch("every file was the same bytes again (or exists)"),
                        409: _batch("every file exists already (send overwrite=true)"),
                        422: _batch("nothing indexed: each file's `reason` says why"),
                        **errors(400, 401, 403, 404, 408, 413, 503)})
async def upload(request: Request, name: str) -> Response:
    """Add files to the collection (multipart, field `file` repeated), each written atomically,
    then ingest them in one run. Per file: added, replaced, unchanged (the same bytes again),
    exists (without overwrite=true) or refused, with the reason."""
    collection = grant(request, Role.WRITE, name)  # before the body is read
    try:
        async with request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS,
                                max_part_size=MAX_FIELD_BYTES) as form:
            parts, overwrite = _parts(form)
            before, results = await run_in_threadpool(_write, collection, parts, overwrite)
    except uploads.CorpusUnwritable:  # the files before the one that failed are on disk:
        await run_in_threadpool(_index_quietly, collection)  # indexed now, not some day
        raise
    except ClientDisconnect:  # the form parser had not finished: nothing was written
        log.info("an upload to %s ended with the client gone mid-body; nothing written", name)
        # nginx's "client closed request": never read, but told apart from a bad request
        # in the request log and the metrics
        return Response(status_code=499)
    report = None
    if any(r.status in ("added", "replaced") for r in results):
        report = await run_in_threadpool(collection.runner.run, "upload")
    generation = await run_in_threadpool(_settle, collection, results, before, report)
    body = {"collection": collection.name, "generation": generation,
            "files": [r.as_json() for r in results],
            "ingest": report.as_json() if report else None}
    return JSONResponse(body, status_code=uploads.status_code(results))


def _index_quietly(collection: Collection) -> None:
    try:
        collection.runner.run("upload")
    except IngestFailed as exc:  # the disk that refused the write may refuse the commit too
        log.error("indexing the files written before a failed upload: %s", exc)


def _parts(form: FormData) -> tuple[list[uploads.Part], bool]:
    """The files and the overwrite flag of the form; 400 for a form that is not an upload."""
    files = form.getlist("file")
    if not files:
        raise HTTPException(400, "send the files as multipart/form-data, each in a `file` part")
    if not all(isinstance(f, UploadFile) for f in files):
        raise HTTPException(400, "each `file` part must be a file (with a filename)")
    flag = form.get("overwrite", "false")
    if flag not in ("true", "false"):
        raise HTTPException(400, "overwrite must be true or false")
    return [uploads.Part(f.filename or "", f.file, f.size) for f in files], flag == "true"


def _indexed(collection: Collection, *, missing_ok: bool = True
             ) -> tuple[int, dict[str, tuple[str, int]]]:
    """The collection's generation and its documents: path -> (sha256, chunks). With
    `missing_ok`, a collection with no index yet (or one being rebuilt) is generation 0 with
    nothing in it: its first upload is what builds it."""
    try:
        with collection.service.index.lease() as snap:
            return snap.generation, {d.path: (d.sha256, d.chunks) for d in snap.documents()}
    except IndexNotReady:
        if not missing_ok:
            raise
        return 0, {}


def _write(collection: Collection, parts: list[uploads.Part], overwrite: bool):
    _, indexed = _indexed(collection)
    before = {path: sha for path, (sha, _) in indexed.items()}
    return before, uploads.write_parts(collection.settings.corpus_dir, parts,
                                       overwrite=overwrite,
                                       max_bytes=collection.settings.max_file_bytes)


def _settle(collection: Collection, results, before, report) -> int:
    generation, after = _indexed(collection, missing_ok=report is None)  # after a run: one
    uploads.settle(results, before, after, dict(report.failed) if report else {})
    return generation


@router.delete("/collections/{name}/documents/{path:path}", response_model=DeleteResponse,
               responses=errors(401, 403, 404, 503))
async def delete(request: Request, name: str, path: str) -> dict:
    """Delete a file of the collection and its chunks (one ingest run)."""
    collection = grant(request, Role.WRITE, name)
    chunks = await run_in_threadpool(_remove, collection, path)
    try:
        await run_in_threadpool(collection.runner.run, "delete")
    except IngestFailed as exc:  # the file is gone: say so, and how its chunks will go
        raise IngestFailed(f"the file was deleted, but the index could not be updated ({exc}); "
                           "its chunks go with the next ingest that succeeds (POST /ingest)",
                           exc.status) from exc
    generation, after = await run_in_threadpool(lambda: _indexed(collection, missing_ok=False))
    return {"collection": collection.name, "path": path, "deleted": True,
            "generation": generation, "chunks_removed": 0 if path in after else chunks}


def _remove(collection: Collection, path: str) -> int:
    """Remove the file; the chunks it had in the index (0 if it was never indexed). A name
    the checks refuse cannot be a document of the collection: 404, as for an absent one."""
    _, indexed = _indexed(collection)
    try:
        corpus_files.remove(collection.settings.corpus_dir,
                            _document_name(path, lambda: indexed))
    except (corpus_files.BadName, corpus_files.Missing):
        raise HTTPException(404, NOT_FOUND) from None
    except OSError as exc:  # a read-only mount, a permission: the server's trouble
        why = exc.strerror or type(exc).__name__
        raise uploads.CorpusUnwritable(f"the file cannot be deleted ({why})") from exc
    return indexed.get(path, ("", 0))[1]


# What a download is served as. HTML is sent as the text it is, never as text/html: a page
# rendered from our origin could run its scripts with the caller's session (the page's
# credentials). text/plain shows its source, which is what a citation points into; nosniff
# stops a browser guessing otherwise, and the CSP sandbox is a second wall should a proxy
# change the type.
TEXT = "text/plain; charset=utf-8"
CONTENT_TYPES = {".pdf": "application/pdf", ".md": TEXT, ".markdown": TEXT, ".txt": TEXT,
                 ".text": TEXT, ".html": TEXT, ".htm": TEXT, ".csv": TEXT, ".tsv": TEXT,
                 ".docx": "application/vnd.openxmlformats-officedocument."
                          "wordprocessingml.document",
                 ".pptx": "application/vnd.openxmlformats-officedocument."
                          "presentationml.presentation",
                 ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 ".epub": "application/epub+zip"}
# Shown in the browser; anything else (Office files, EPUBs) is saved, to open in its own program.
INLINE = frozenset({"application/pdf", TEXT})
SAFE_HEADERS = {"x-content-type-options": "nosniff",
                "cache-control": "private, no-cache"}  # behind a key: no shared caches
# Text gets the CSP sandbox too. A PDF does not: Chrome's and Safari's viewers refuse to show a
# sandboxed document ("This page has been blocked by Chrome", a blank tab), and their viewers
# run a PDF's own scripts, if at all, outside our origin.
TEXT_HEADERS = {**SAFE_HEADERS, "content-security-policy": "sandbox; default-src 'none'"}


@router.get("/collections/{name}/documents/{path:path}", response_class=FileResponse,
            responses={200: {"description": "the original file (Range requests work)",
                             "content": {"application/pdf": {}, "text/plain": {}}},
                       **errors(401, 403, 404)})
async def download(request: Request, name: str, path: str) -> FileResponse:
    """The original file, so a citation can open its source (a PDF at its page: `#page=N`)."""
    collection = grant(request, Role.READ, name)
    target, st = await run_in_threadpool(_readable, collection, path)
    media_type = CONTENT_TYPES[target.suffix.lower()]
    return FileResponse(target, stat_result=st, media_type=media_type,
                        headers={**(TEXT_HEADERS if media_type == TEXT else SAFE_HEADERS),
                                 "content-disposition": content_disposition(
                                     target.name, inline=media_type in INLINE)})


def _document_name(path: str, indexed: Callable[[], dict]) -> PurePosixPath:
    """The name of a file to read or delete: one that passes the upload checks, or, exactly,
    the path of a document the index holds (`indexed()`: read only for a name the checks
    refuse). Files copied into the folder by hand may have names no upload could (macOS'
    decomposed accents, a `%` sequence, a backslash): they are cited, so they must open and go
    too. Links are still refused (resolve_inside)."""
    try:
        return corpus_files.check_name(path)
    except corpus_files.BadName:
        if not path.startswith("/") and not any(
                part in ("", ".", "..") for part in path.split("/")) and path in indexed():
            return PurePosixPath(path)
        raise


def _readable(collection: Collection, path: str):
    """The file and its stat, for a name _document_name accepts and a regular file."""
    try:
        name = _document_name(path, lambda: _indexed(collection)[1])
        target = corpus_files.resolve_inside(collection.settings.corpus_dir, name,
                                             for_write=False)
        st = os.lstat(target)
    except (corpus_files.BadName, OSError):
        raise HTTPException(404, NOT_FOUND) from None
    if not stat.S_ISREG(st.st_mode):  # a folder
        raise HTTPException(404, NOT_FOUND)
    return target, st


def content_disposition(filename: str, inline: bool = True) -> str:
    """`inline` (or `attachment`) with the name: a plain ASCII `filename`, and RFC 5987's
    `filename*` (UTF-8, percent-encoded) when the name is anything else."""
    ascii_name = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in filename)
    value = f'{"inline" if inline else "attachment"}; filename="{ascii_name}"'
    if ascii_name != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value
