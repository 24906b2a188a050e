"""Pseudonymous ids: capture replaces `user_id` and `session_id` by a keyed hash before anything is
written to the warehouse (`capture.pseudonymize`, on by default; off stores the raw ids).

A pseudonym is `ps:<key id>:<32 hex>`: HMAC-SHA256 of the field name and the raw id under the key in
`$FLYWHEEL_PSEUDONYM_KEY` (read at run time, at least 16 characters; a run refuses to start without it).
The same raw id gives the same pseudonym every day, so sessions, resubmissions and per-user counts
work on pseudonyms; without the key nobody can recompute one from a guessed raw id. The landing
files (written by the serving process, which never needs the key) are the only place raw ids live;
`capture.retention_days` bounds how long, and quarantined lines have their ids pseudonymised too.

Key rotation: set the new key in `$FLYWHEEL_PSEUDONYM_KEY` and move the old one to
`$FLYWHEEL_PSEUDONYM_OLD_KEYS` (comma-separated). Days captured from then on carry the new key id; days
captured before keep theirs (re-capturing a day re-keys it, from its landing files). A user or session
spanning the rotation has two pseudonyms: the sessions split there, so a resubmission across the
moment of rotation is not found, and per-user history starts anew. `flywheel erase` hashes the raw id
with the current and every old key, so keep an old key listed until no stored data carries its key id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from typing import Any

from flywheel.config import CaptureConfig
from flywheel.core.errors import InputError

KEY_ENV = "FLYWHEEL_PSEUDONYM_KEY"
OLD_KEYS_ENV = "FLYWHEEL_PSEUDONYM_OLD_KEYS"
MIN_KEY_CHARS = 16
PSEUDONYM_FIELDS = ("user_id", "session_id")
_CACHE_MAX = 200_000

# an id field in a raw landing line (quarantine keeps the line): `"user_id": "<JSON string>"` or a number
_RAW_ID = re.compile(r'"(user_id|session_id)"(\s*:\s*)("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*)')


class PseudonymKeyError(InputError):
    """Pseudonymisation is on but no usable key is set (the message says which variable to set)."""


def key_id(key: str) -> str:
    """The short public id of a key (in every pseudonym it made): 8 hex characters of a hash of it."""
    return hashlib.sha256(b"flywheel-pseudonym-key-id\0" + key.encode("utf-8")).hexdigest()[:8]


class Pseudonymizer:
    """Keyed hashing of ids: `pseudonym(field, raw)` -> `ps:<key id>:<32 hex>` (cached per raw id)."""

    def __init__(self, key: str) -> None:
        if len(key) < MIN_KEY_CHARS:
            raise PseudonymKeyError(f"a pseudonym key needs at least {MIN_KEY_CHARS} characters; got {len(key)}")
        self._key = key.encode("utf-8")
        self.key_id = key_id(key)
        self._setup()

    def _setup(self) -> None:
        self._mac = hmac.new(self._key, digestmod=hashlib.sha256)  # keyed once; each id hashes a copy
        self._cache: dict[str, dict[str, str]] = {name: {} for name in PSEUDONYM_FIELDS}

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self.key_id!r})"

    def __getstate__(self) -> dict[str, Any]:  # worker processes get the key, not the cache
        return {"_key": self._key, "key_id": self.key_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._key, self.key_id = state["_key"], state["key_id"]
        self._setup()

    def pseudonym(self, field: str, raw: str) -> str:
        """The pseudonym of raw id `raw` of `field` (user_id or session_id: the same raw id in two
        fields gives two pseudonyms)."""
        cache = self._cache.get(field)
        if cache is None:
            cache = self._cache[field] = {}
        cached = cache.get(raw)
        if cached is None:
            mac = self._mac.copy()
            mac.update(f"{field}\0{raw}".encode("utf-8", "surrogatepass"))
            cached = f"ps:{self.key_id}:{mac.hexdigest()[:32]}"
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[raw] = cached
        return cached

    def scrub_line(self, text: str) -> str:
        """A raw landing line with every `user_id` / `session_id` value (a JSON string or number) replaced
        by its pseudonym, also in a line that is not valid JSON (for quarantine)."""

        def replace(match: re.Match[str]) -> str:
            field, colon, value = match.groups()
            if value.startswith('"'):
                try:
                    value = json.loads(value)
                except ValueError:  # a broken escape: hash the text as it stands
                    value = value[1:-1]
            return f'"{field}"{colon}"{self.pseudonym(field, value)}"'

        return _RAW_ID.sub(replace, text) if ("user_id" in text or "session_id" in text) else text


def _key_from_env() -> str | None:
    return os.environ.get(KEY_ENV) or None


def pseudonymizer(config: CaptureConfig) -> Pseudonymizer | None:
    """The project's pseudonymizer (None when `capture.pseudonymize` is off); reads `$FLYWHEEL_PSEUDONYM_KEY`
    now, and refuses (PseudonymKeyError) when it is missing or too short."""
    if not config.pseudonymize:
        return None
    key = _key_from_env()
    if key is None:
        raise PseudonymKeyError(
            f"capture.pseudonymize is on but ${KEY_ENV} is not set: set it to a secret of at least "
            f"{MIN_KEY_CHARS} characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), "
            "kept like a password and the same for every run, or set capture.pseudonymize: false to store raw ids"
        )
    try:
        return Pseudonymizer(key)
    except PseudonymKeyError as exc:
        raise PseudonymKeyError(f"${KEY_ENV}: {exc}") from None


def all_pseudonymizers(config: CaptureConfig) -> list[Pseudonymizer]:
    """The current key's pseudonymizer (required while `capture.pseudonymize` is on; used when set
    otherwise) and one per old key in `$FLYWHEEL_PSEUDONYM_OLD_KEYS`: what erasure hashes a raw id with."""
    current = pseudonymizer(config.model_copy(update={"pseudonymize": True})) if (
        config.pseudonymize or _key_from_env()) else None
    found = [current] if current is not None else []
    for n, old in enumerate(k.strip() for k in os.environ.get(OLD_KEYS_ENV, "").split(",")):
        if old:
            try:
                found.append(Pseudonymizer(old))
            except PseudonymKeyError as exc:
                raise PseudonymKeyError(f"${OLD_KEYS_ENV}, key {n + 1}: {exc}") from None
    return found
