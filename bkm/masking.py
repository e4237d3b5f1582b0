"""Secrets in URLs (notification and healthcheck URLs carry passwords and tokens): shown masked.

Without Apprise (which knows each service's secrets, but costs start-up time to import), by
shape: a password or a whole user part, a host or port that is a token (Telegram's
"123456:AAH...", Pushbullet's "o.gn5k..." keep theirs there), path segments and query values
that look like tokens (a healthchecks UUID, a Gotify or Slack token), and query values whose
names say secret. A topic or channel name that is plain words stays readable.
"""

from __future__ import annotations

import re

MASK = "****"
# Long runs of token characters; or shorter ones that mix cases or letters and digits.
LONG_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{20,}$")
TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_\-.]{10,}$")
SECRET_NAMES = re.compile(r"(token|key|secret|pass|pwd|auth|sig|apikey)", re.I)


def _tokenish(text: str) -> bool:
    if LONG_TOKEN.match(text):
        return True
    if not TOKEN_CHARS.match(text):
        return False
    letters = [c for c in text if c.isalpha()]
    mixed_case = any(c.isupper() for c in letters) and any(c.islower() for c in letters)
    return mixed_case or (bool(letters) and any(c.isdigit() for c in text))


def _parts(url: str) -> tuple[str, str, str, str, str, str, str]:
    scheme, _, rest = url.partition("://")
    rest, hash_sep, fragment = rest.partition("#")
    rest, query_sep, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    return scheme, authority, slash, path, query_sep + query, hash_sep, fragment


def secrets_in(url: str) -> list[str]:
    """The parts of ``url`` that mask_url hides, longest first (to mask them in any text)."""
    found = []
    scheme, authority, _, path, query, _, fragment = _parts(url)
    user, at, host = authority.rpartition("@")
    if at:
        found += [user, *user.split(":", 1)[1:]]
    name, colon, port = host.rpartition(":") if ":" in host and not host.endswith("]") else (host, "", "")
    if _tokenish(name.split(".")[0] if "." in name and not _tokenish(name) else name):
        found.append(name)
    if colon and not port.isdigit():
        found.append(port)
    found += [segment for segment in path.split("/") if _tokenish(segment)]
    for pair in query.lstrip("?").split("&"):
        key, eq, value = pair.partition("=")
        if eq and value and (SECRET_NAMES.search(key) or _tokenish(value)):
            found.append(value)
    if fragment and _tokenish(fragment):
        found.append(fragment)
    return sorted({part for part in found if len(part) >= 4}, key=len, reverse=True)


def mask_url(url: str) -> str:
    if "://" not in url:
        return MASK
    scheme, authority, slash, path, query, hash_sep, fragment = _parts(url)
    user, at, host = authority.rpartition("@")
    if at:
        name, colon, _ = user.partition(":")
        user = f"{name}:{MASK}" if colon and name and not _tokenish(name) else MASK
    hidden = secrets_in(url)
    host_name, colon, port = host.rpartition(":") if ":" in host and not host.endswith("]") else (host, "", "")
    if host_name in hidden:
        host_name = MASK
    if colon and port in hidden:
        port = MASK
    host = host_name + (f":{port}" if colon else "")
    path = "/".join(MASK if segment in hidden else segment for segment in path.split("/"))
    if query:
        pairs = []
        for pair in query[1:].split("&"):
            key, eq, value = pair.partition("=")
            pairs.append(f"{key}={MASK}" if eq and value in hidden else pair)
        query = "?" + "&".join(pairs)
    fragment = MASK if fragment in hidden else fragment
    return f"{scheme}://{user + '@' if at else ''}{host}{slash}{path}{query}{hash_sep}{fragment}"


def mask_text(text: str, urls: list[str]) -> str:
    """``text`` with each of ``urls``, and each secret part of them, masked (an error message
    that quotes a URL, or only a piece of one)."""
    for url in urls:
        if url and url in text:
            text = text.replace(url, mask_url(url))
    for url in urls:
        for secret in secrets_in(url) if url else []:
            text = text.replace(secret, MASK)
    return text
