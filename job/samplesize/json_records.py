"""Dataclass records to and from the fields of a JSON file (summary.json): the one way every record reads and
writes its fields. A leaf: `summary` and `collection_summary` build on it."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, Iterable


def record_fields(obj: Any, omit: Iterable[str] = ()) -> dict[str, Any]:
    """The dataclass's fields by name, in declaration order, as the file lists them."""
    left_out = set(omit)
    return {f.name: getattr(obj, f.name) for f in fields(obj) if f.name not in left_out}


def unset(obj: Any, names: Iterable[str]) -> set[str]:
    """Those of the optional fields `names` that are None: left out, so that a file without them reads as it
    did before they existed (the image counts of a sweep over groups)."""
    return {name for name in names if getattr(obj, name) is None}


def take(cls: type, doc: dict[str, Any], **parsed: Any) -> Any:
    """`cls` from the fields of `doc` it declares (absent ones get their default; newer ones are ignored),
    `parsed` overriding."""
    names = {f.name for f in fields(cls)}
    return cls(**{**{k: v for k, v in doc.items() if k in names}, **parsed})


def to_size(value: Any) -> Any:
    """A size read from JSON: "inf" back to math.inf, everything else as it is."""
    return math.inf if value == "inf" else value
