"""The API key check's pieces: where a key is read from, how it is compared, the setting."""
from __future__ import annotations

import base64

import pytest

from app.access.credentials import presented_keys
from app.access.keys import KeyRing
from app.settings import Settings


@pytest.mark.parametrize("headers,expected", [
    ([(b"authorization", b"Bearer abc")], [b"abc"]),
    ([(b"authorization", b"bearer  abc ")], [b"abc"]),
    ([(b"x-api-key", b"abc")], [b"abc"]),
    ([(b"authorization", b"Basic " + base64.b64encode(b"anyone:abc"))], [b"abc"]),
    ([(b"authorization", b"Basic " + base64.b64encode(b"abc"))], [b""]),  # no password
    ([(b"authorization", b"Basic not-base64!")], []),
    ([(b"authorization", b"Digest abc")], []),
    ([(b"x-api-key", b"proxy"), (b"authorization", b"Bearer abc")], [b"proxy", b"abc"]),
    ([], []),
])
def test_the_key_is_read_from_the_usual_headers(headers, expected):
    assert presented_keys(headers) == expected


def test_key_comparison():
    ring = KeyRing("abc", None)
    assert ring.identify([b"abc"]).name == "RAG_API_KEY" and ring.identify([b"wrong", b"abc"])
    assert ring.identify([b"abd"]) is None and ring.identify([b"ab"]) is None
    assert ring.identify([]) is None and ring.identify([b""]) is None


def test_an_empty_api_key_setting_means_no_key(monkeypatch):
    monkeypatch.setenv("RAG_API_KEY", "")
    assert Settings().api_key is None
    monkeypatch.setenv("RAG_API_KEY", "s3cret")
    key = Settings().api_key
    assert key.get_secret_value() == "s3cret" and "s3cret" not in repr(Settings())
