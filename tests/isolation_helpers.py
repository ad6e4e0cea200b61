"""The world of the isolation suite (tests/e2e/test_isolation.py): two collections, each a small
corpus holding secrets of its own, a collections file, a keys file, and the checks that a
response given to one collection's key says nothing of the other.

Bravo is the collection the attacker's keys (alpha's) must never reach. It is defined FIRST in
the collections file, so it is the service's primary collection: a path that falls back to
"the" service instead of asking app.access.grant would answer from bravo, and show it.

A leak is judged by markers: bravo's secret words, its file names, its folder and its name.
A marker counts as leaked when a response holds it and the request that got it did not (a 404
may repeat the name it was asked about, a 422 the filter it refused; neither is a leak, while
bravo's secret words are never sent, so they are checked in every response)."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from tests.helpers import write

ALPHA, BRAVO = "alpha-team", "bravo-team"
NOWHERE = "zulu-teams"  # defined nowhere; as long as BRAVO, so both refusals are the same size
ALPHA_DOCS = {
    "vault.md": "# Alpha vault\n\nThe A-team vault code is 4417. The alpha team lead opens "
                "the vault every Monday morning.\n",
    "rota/shifts.txt": "Alpha shifts: the early shift starts at six and the alpha canteen "
                       "serves porridge on Fridays.\n",
}
BRAVO_DOCS = {
    "launch-orders.md": "# Bravo launch orders\n\nThe B-team launch word is PERIWINKLE. Only "
                        "the bravo crew may say the launch word aloud.\n",
    "deep/night-rota.txt": "Bravo night rota: the night shift passphrase is QUOKKA-LANTERN, "
                           "and the launch word stays PERIWINKLE.\n",
    "signals.html": "<html><head><title>Bravo signals</title></head><body><p>The bravo "
                    "signal flag is MARIGOLD over TEAL, raised before the launch word is "
                    "said.</p></body></html>\n",
}
BRAVO_SECRETS = ("periwinkle", "quokka", "marigold")  # compared in lower case
ALPHA_QUESTION = "What is the A-team vault code?"
# Bravo's words, none of its secrets: what an attacker who guessed the topic would ask.
BRAVO_QUESTION = "What launch word does the B-team bravo crew say aloud on the night shift?"
ROLES = {"alpha-read": ([ALPHA], "read"), "alpha-write": ([ALPHA], "write"),
         "bravo-read": ([BRAVO], "read"), "admin": (["*"], "admin")}
ALPHA_KEYS = ("alpha-read", "alpha-write")


@dataclass
class World:
    url: str
    root: Path  # holds both corpora, the files and the index folders
    alpha_dir: Path
    bravo_dir: Path
    keys_file: Path
    keys: dict[str, str]  # key name -> the key itself; "api" is RAG_API_KEY
    bravo_files: dict[str, bytes] = field(default_factory=dict)  # as written, for the checks
    bravo_listing: list = field(default_factory=list)  # bravo's /documents, before the attacks

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    def entries(self, **changes) -> dict:
        """The keys file's entries (name -> (key, collections, role)) with `changes`: an entry
        added or replaced, or removed by None."""
        entries = {name: (self.keys[name], *ROLES[name]) for name in ROLES}
        entries.update(changes)
        return {k: v for k, v in entries.items() if v is not None}

    @property
    def markers(self) -> tuple[str, ...]:
        """What alpha's keys must never be told (see the module's doc)."""
        paths = {name for p in BRAVO_DOCS for name in (p, Path(p).name)}
        return (*BRAVO_SECRETS, *sorted(paths), BRAVO, self.bravo_dir.name,
                str(self.bravo_dir).lower())


def make_world(root: Path) -> tuple[World, dict[str, str]]:
    """The corpora, the collections file and the keys file under `root`: (the world without
    its URL, the service's environment for them)."""
    alpha_dir, bravo_dir = root / "alpha-corpus", root / "bravo-corpus"
    for rel, text in ALPHA_DOCS.items():
        write(alpha_dir, rel, text)
    for rel, text in BRAVO_DOCS.items():
        write(bravo_dir, rel, text)
    # Links out of alpha's folder into bravo's: the scan must not follow them.
    (alpha_dir / "orders-link.md").symlink_to(bravo_dir / "launch-orders.md")
    (alpha_dir / "bravo-link").symlink_to(bravo_dir, target_is_directory=True)
    collections = root / "collections.toml"
    collections.write_text(f'[collections.{BRAVO}]\ncorpus = "{bravo_dir.name}"\n'
                           f'[collections.{ALPHA}]\ncorpus = "{alpha_dir.name}"\n')
    keys = {name: f"iso-{name}-{secrets.token_hex(12)}" for name in ROLES}
    keys["api"] = f"iso-api-{secrets.token_hex(12)}"
    keys_file = root / "keys.toml"
    write_keys(keys_file, {name: (keys[name], *ROLES[name]) for name in ROLES})
    world = World("", root, alpha_dir, bravo_dir, keys_file, keys,
                  {rel: (bravo_dir / rel).read_bytes() for rel in BRAVO_DOCS})
    env = {"RAG_COLLECTIONS_FILE": str(collections), "RAG_KEYS_FILE": str(keys_file),
           "RAG_API_KEY": keys["api"]}
    return world, env


def keys_toml(entries: dict[str, tuple[str, list[str], str]]) -> str:
    """A keys file's text: name -> (key, collections, role)."""
    return "".join(f'[[keys]]\nname = "{name}"\n'
                   f'sha256 = "{hashlib.sha256(key.encode()).hexdigest()}"\n'
                   f'collections = {json.dumps(cols)}\nrole = "{role}"\n\n'
                   for name, (key, cols, role) in entries.items())


def write_keys(path: Path, entries: dict, in_place: bool = False) -> None:
    """Write the keys file as an editor does (in place) or as a deploy does (a new file
    renamed over the old one)."""
    text = keys_toml(entries)
    if in_place:
        path.write_text(text)
        return
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def leaks(world: World, response_text: str, sent: str = "") -> list[str]:
    """The markers `response_text` holds that `sent` (the request) did not."""
    got, asked = response_text.lower(), sent.lower()
    return [m for m in world.markers if m in got and m not in asked]


def call(world: World, method: str, path: str, key: str | None = None,
         headers: dict | None = None, **kwargs) -> httpx.Response:
    """One request as the key named `key` (None: no key) would make it, whose response is
    checked for leaks unless the key may read bravo."""
    sent_headers = {**(world.auth(key) if key else {}), **(headers or {})}
    kwargs.setdefault("timeout", 60)
    r = httpx.request(method, world.url + path, headers=sent_headers, **kwargs)
    if key not in ("bravo-read", "admin", "api"):
        sent = path + repr([kwargs.get(k) for k in ("json", "params", "content")])
        found = leaks(world, r.text, sent)
        assert not found, f"{method} {path} as {key} leaked {found}: {r.text[:500]}"
    return r


def raw(world: World, method: str, target: str, key: str | None = None,
        headers: dict | None = None, body: dict | None = None) -> tuple[int, str]:
    """A request sent exactly as written (httpx would normalise `..` and percent-encoding in
    the target, and refuse a header such as `Bearer ` with nothing after it): (status, body),
    checked for leaks against the target as sent and as decoded."""
    parts = urlsplit(world.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    sent_headers = {**(world.auth(key) if key else {}), **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent_headers["Content-Type"] = "application/json"
    try:
        conn.request(method, target, body=data, headers=sent_headers)
        resp = conn.getresponse()
        status, text = resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()
    sent = target + unquote(target) + unquote(unquote(target)) + repr(body)
    found = leaks(world, text, sent)
    assert not found, f"{method} {target} as {key} leaked {found}: {text[:500]}"
    return status, text


def sse_data(text: str) -> list:
    """The `data:` payloads of a Server-Sent Events body, parsed ([DONE] as a string)."""
    out = []
    for line in text.splitlines():
        if line.startswith("data: "):
            payload = line[6:]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def cited_paths(r: httpx.Response) -> set[str]:
    """The paths an /ask or /v1 answer cites, streamed or not."""
    if r.headers["content-type"].startswith("text/event-stream"):
        bodies = [d for d in sse_data(r.text) if isinstance(d, dict) and "citations" in d]
    else:
        bodies = [r.json()]
    return {c["path"] for body in bodies for c in body["citations"]}


def assert_same_refusal(got: httpx.Response, control: httpx.Response, name: str,
                        control_name: str) -> None:
    """`got` (about bravo) is the refusal `control` (about a name defined nowhere) is: the same
    status, headers and body but for the name each asked about."""
    assert got.status_code == control.status_code, (got.text, control.text)
    assert got.text.replace(name, "<name>") == control.text.replace(control_name, "<name>")
    skip = {"date", "x-request-id"}
    assert sorted((k, v) for k, v in got.headers.items() if k not in skip) == \
        sorted((k, v) for k, v in control.headers.items() if k not in skip)


def alpha_files(world: World) -> dict[str, bytes]:
    """Alpha's own files (its links out left aside), by path."""
    return {p.relative_to(world.alpha_dir).as_posix(): p.read_bytes()
            for p in world.alpha_dir.rglob("*") if p.is_file() and not p.is_symlink()}


def pg_schemas(url: str, prefix: str) -> set[str]:
    """The PostgreSQL schemas whose names begin with `prefix`."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT schema_name FROM information_schema.schemata "
                            "WHERE schema_name LIKE %s", (prefix + "%",)).fetchall()
    return {r[0] for r in rows}
