"""What the isolation suite (tests/e2e/test_isolation.py) tries, as data: the filters, model
names, credentials, download and delete targets and upload names an attacker holding alpha's
keys would send to reach bravo, and the requests they are sent in."""
from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import quote

from tests.isolation_helpers import ALPHA, ALPHA_QUESTION, BRAVO, World

B_FILE = "bravo-corpus/launch-orders.md"  # bravo's file, from the folder both corpora are in


def filter_cases(world: World) -> list[dict]:
    """/ask filters that climb out of alpha, glob everything, or name bravo's folder, its
    paths, its file types."""
    bravo_abs = str(world.bravo_dir)
    paths = ["../", "../bravo-corpus/", f"../{B_FILE}", "..\\bravo-corpus\\", "./../",
             "*", "**/*", "**", "*/*", "?*", "[a-z]*", "bravo-link/", "bravo-link/*",
             "orders-link.md", "deep/", "launch-orders.md", "signals.html", bravo_abs,
             bravo_abs + "/", bravo_abs + "/*", "/", "C:\\", "%2e%2e/"]
    return [{"path": p} for p in paths] + [{"type": t} for t in (
        "html", "md", "txt", "pdf", ["html", "md", "txt", "pdf"])] + [
        {"path": "**/*", "type": "html"}, {"path": "deep/*", "type": "txt"}]


# /v1 model names that spell bravo (or no collection alpha can read) in other ways.
V1_MODELS = [f"ragfirst/{BRAVO}", "ragfirst", "ragfirst/", "ragfirst/BRAVO-TEAM",
             f"ragfirst/../{BRAVO}", f"ragfirst/{ALPHA}/../{BRAVO}", f"ragfirst/{BRAVO}/",
             f"ragfirst//{BRAVO}", BRAVO, "ragfirst/*", "gpt-4o-mini", f"RAGFIRST/{BRAVO}",
             f"ragfirst/{BRAVO} ", f"ragfirst%2F{BRAVO}"]
V1_MODEL_TARGETS = [f"/v1/models/ragfirst%2F{BRAVO}", f"/v1/models/ragfirst/..%2F{BRAVO}",
                    f"/v1/models/ragfirst/{ALPHA}/../{BRAVO}", "/v1/models/ragfirst/%62ravo-team",
                    f"/v1/models/ragfirst/../ragfirst/{BRAVO}", f"/v1/models/{BRAVO}"]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def keyed_paths() -> list[tuple[str, str, dict | None]]:
    """Every path that needs a key: (method, path, JSON body)."""
    ask = {"question": ALPHA_QUESTION, "collection": ALPHA}
    chat = {"model": f"ragfirst/{ALPHA}", "messages": [{"role": "user",
                                                        "content": ALPHA_QUESTION}]}
    paths = [("POST", "/ask", ask), ("POST", "/ask", {**ask, "stream": True}),
             ("POST", "/v1/chat/completions", chat),
             ("POST", "/v1/chat/completions", {**chat, "stream": True}),
             ("GET", "/v1/models", None), ("GET", f"/v1/models/ragfirst/{ALPHA}", None),
             ("GET", "/collections", None), ("GET", f"/documents?collection={ALPHA}", None),
             ("POST", "/ingest", {"collection": ALPHA}), ("GET", "/metrics", None),
             ("GET", "/", None), ("GET", "/static/app.js", None), ("GET", "/docs", None),
             ("GET", "/openapi.json", None),
             ("GET", f"/collections/{ALPHA}/documents/vault.md", None),
             ("DELETE", f"/collections/{ALPHA}/documents/vault.md", None),
             ("POST", f"/collections/{ALPHA}/documents", None)]
    return paths


def bad_credentials(keys: dict[str, str]) -> dict[str, dict]:
    """Headers that carry no valid key, by what they try: none, a wrong one, an empty one,
    one a character short or long, another case, alpha's key where Basic puts the user name,
    the key's hash, the key without a scheme."""
    a = keys["alpha-write"]
    return {"none": {}, "wrong": {"Authorization": "Bearer not-a-key"},
            "empty bearer": {"Authorization": "Bearer "}, "empty x-api-key": {"X-API-Key": ""},
            "prefix": {"Authorization": f"Bearer {a[:-1]}"},
            "longer": {"Authorization": f"Bearer {a}0"}, "upper": {"X-API-Key": a.upper()},
            "basic user": basic(a, ""), "basic user only": {
                "Authorization": "Basic " + base64.b64encode(a.encode()).decode()},
            "basic user, wrong password": basic(a, "x"),
            "the hash": {"Authorization": f"Bearer {hashlib.sha256(a.encode()).hexdigest()}"},
            "bare key": {"Authorization": a}}


def escaping_targets(world: World) -> list[str]:
    """Download and delete targets, sent as written, that try to reach bravo's file: bravo by
    name or in disguise, and alpha's documents with `..` plain, percent-encoded, double
    encoded, with backslashes, absolute, or through alpha's links into bravo's folder."""
    enc, dbl = B_FILE.replace("/", "%2F"), B_FILE.replace("/", "%252F")
    absolute = str(world.bravo_dir / "launch-orders.md")
    docs = f"/collections/{ALPHA}/documents"
    return [f"/collections/{BRAVO}/documents/launch-orders.md",
            f"/collections/{BRAVO}/documents/deep/night-rota.txt",
            "/collections/%62ravo-team/documents/launch-orders.md",
            f"/collections/{ALPHA}/../{BRAVO}/documents/launch-orders.md",
            f"/collections/{ALPHA}%2F..%2F{BRAVO}/documents/launch-orders.md",
            f"{docs}/../{B_FILE}", f"{docs}/..%2F{enc}", f"{docs}/%2e%2e%2f{enc}",
            f"{docs}/%252e%252e%252f{dbl}", f"{docs}/a/../../{B_FILE}",
            f"{docs}/rota/..%2F..%2F{enc}", f"{docs}/.%2e/{B_FILE}",
            f"{docs}/..%5c{B_FILE.replace('/', '%5c')}", f"{docs}/{quote(absolute, safe='')}",
            f"{docs}/{absolute}", f"{docs}/orders-link.md", f"{docs}/bravo-link/launch-orders.md",
            f"{docs}/bravo-link/deep/night-rota.txt", f"{docs}/launch-orders.md"]


def escaping_names(world: World) -> list[str]:
    """Upload names (into alpha, by alpha's write key) that would land in bravo's folder or
    over its files, were they trusted."""
    return ["../bravo-corpus/planted.md", f"../{B_FILE}", f"{world.bravo_dir}/planted.md",
            "bravo-link/planted.md", "bravo-link/launch-orders.md", "orders-link.md",
            "a/../../bravo-corpus/planted.md", "..%2Fbravo-corpus%2Fplanted.md",
            "%2e%2e/bravo-corpus/planted.md", "%252e%252e%252fbravo-corpus/planted.md",
            "./../bravo-corpus/planted.md", "bravo-link/../../bravo-corpus/planted.md"]


def multipart(files: list[tuple[str, bytes]], overwrite: bool | None = None
              ) -> tuple[bytes, str]:
    """A multipart upload body written by hand, so each file name is sent exactly as given
    (a client library may rewrite it): (body, content type)."""
    boundary = "isolation" + secrets.token_hex(8)
    body = b""
    for name, content in files:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                 f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                 ).encode() + content + b"\r\n"
    if overwrite is not None:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\n"
                 f"{str(overwrite).lower()}\r\n").encode()
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
