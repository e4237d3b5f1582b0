"""Secrets in URLs (notification and healthcheck URLs carry passwords and tokens): shown masked.

Without Apprise (which knows each service's secrets, but costs start-up time to import), by
shape: a password in the user part, a user part that is a token by itself, query values whose
names say secret, and path segments that look like tokens (long runs of letters, digits, "-"
and "_", such as a healthchecks UUID or a Slack webhook's parts).
"""

from __future__ import annotations

import re

MASK = "****"
TOKEN = re.compile(r"^[A-Za-z0-9_\-]{16,}$")
SECRET_NAMES = re.compile(r"(token|key|secret|pass|pwd|auth|sig)", re.I)


def mask_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return MASK
    rest, hash_sep, fragment = rest.partition("#")
    rest, query_sep, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        user, _, host = authority.rpartition("@")
        name, colon, _ = user.partition(":")
        authority = (f"{name}:{MASK}" if colon else MASK) + "@" + host
    path = "/".join(MASK if TOKEN.match(segment) else segment for segment in path.split("/"))
    if query:
        query = "&".join(_masked_pair(pair) for pair in query.split("&"))
    masked = f"{scheme}://{authority}{slash}{path}"
    if query_sep:
        masked += f"?{query}"
    if hash_sep:
        masked += f"#{MASK if fragment else ''}"
    return masked


def _masked_pair(pair: str) -> str:
    name, eq, value = pair.partition("=")
    return f"{name}={MASK}" if eq and value and SECRET_NAMES.search(name) else pair


def mask_text(text: str, urls: list[str]) -> str:
    """``text`` with each of ``urls`` replaced by its masked form (log lines that quote one)."""
    for url in urls:
        if url and url in text:
            text = text.replace(url, mask_url(url))
    return text
