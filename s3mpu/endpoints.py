"""When two S3 endpoint URLs name the same server: the relay's check of a token's endpoint.

Why: a manifest minted against ``http://localhost:9000`` and a relay configured with
``http://127.0.0.1:9000/`` talk to the same S3, but a plain string comparison refused every
complete, after the user had sent every byte. Scheme and host are case-insensitive, a default
port (80 for http, 443 for https) is the same as none, a trailing slash means nothing, and the
loopback names ``localhost``, ``127.0.0.1`` and ``::1`` are one host.
"""
from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "localhost.localdomain"}


def normalize_endpoint(url: str) -> str:
    """A canonical ``scheme://host:port/path`` for comparing endpoints (not for connecting)."""
    try:
        u = urlsplit(url.strip())
        port = u.port
    except ValueError:
        return url.strip().rstrip("/").lower()
    scheme = (u.scheme or "https").lower()
    host = (u.hostname or "").lower().rstrip(".")
    if host in _LOOPBACK:
        host = "127.0.0.1"
    port = port or _DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{host}:{port}{u.path.rstrip('/')}"


def same_endpoint(a: str, b: str) -> bool:
    """Whether two endpoint URLs name the same S3 server (see the module docstring)."""
    return normalize_endpoint(a) == normalize_endpoint(b)
