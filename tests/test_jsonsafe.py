"""The one JSON sanitiser: plain JSON types, numpy unwrapped, no NaN or infinity."""

from __future__ import annotations

import json
import math

import numpy as np

from samplesize.jsonsafe import json_safe


def test_numpy_values_become_plain_python_types():
    out = json_safe({"b": np.bool_(True), "i": np.int64(3), "f": np.float32(0.5), "a": np.array([[1, 2]])})
    assert out == {"b": True, "i": 3, "f": 0.5, "a": [[1, 2]]}
    assert type(out["b"]) is bool and type(out["i"]) is int and type(out["f"]) is float


def test_nan_is_null_and_infinity_is_a_string():
    assert json_safe([math.nan, math.inf, -math.inf, np.float64("nan")]) == [None, "inf", "-inf", None]


def test_tuples_become_lists_and_keys_strings_so_the_result_is_strict_json():
    out = json_safe({1: (0.1, (2, 3)), "s": "text", "n": None})
    assert out == {"1": [0.1, [2, 3]], "s": "text", "n": None}
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_bools_stay_bools():
    assert json_safe([True, False]) == [True, False]
    assert all(type(v) is bool for v in json_safe([True, np.bool_(False)]))
