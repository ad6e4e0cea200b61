"""Where a request's key is read from, in any of the forms clients already know how to send:

- `Authorization: Bearer KEY`: OpenAI clients (`api_key=KEY`), curl, Prometheus;
- `X-API-Key: KEY`;
- HTTP Basic with KEY as the password (any user name): a browser asks for it when it opens the
  web page, then sends it with every call the page makes."""
from __future__ import annotations

import base64
import binascii


def presented_keys(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """Every key a request carries (a proxy may add an X-API-Key beside a client's Bearer).
    `headers`: (lower-case name, value) pairs, as ASGI gives them."""
    keys = []
    for name, value in headers:
        if name == b"x-api-key":
            keys.append(value.strip())
        elif name == b"authorization":
            scheme, _, credentials = value.strip().partition(b" ")
            if scheme.lower() == b"bearer":
                keys.append(credentials.strip())
            elif scheme.lower() == b"basic":
                try:
                    user_pass = base64.b64decode(credentials.strip(), validate=True)
                except (binascii.Error, ValueError):
                    continue
                keys.append(user_pass.partition(b":")[2])
    return keys
