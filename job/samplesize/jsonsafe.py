"""One JSON sanitiser for everything the package writes as JSON or YAML.

It imports nothing heavy (numpy values are recognised by their `tolist`), so
`config` can use it as well as `curves` and `aggregate`.
"""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """Plain JSON types only: tuples as lists, keys as str, numpy values unwrapped, NaN -> None, inf -> "inf"."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (bool, int, float, str)):
        return json_safe(value.tolist())  # a numpy array or scalar: lists and Python scalars
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(value)
    return value
