"""Short content hashes: stable names for cached files and for a sweep's trial configuration."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(obj: Any) -> str:
    """The first 16 hex digits of the sha256 of `obj` as key-sorted JSON.

    JSON's default ASCII escaping keeps any string (even one with lone
    surrogates from undecodable file names) encodable, so equal objects always
    hash alike.
    """
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
