"""summary.json stays what it was, field for field, on synthetic sweeps (tests/golden/, made by make_golden.py).

A change that means to alter the summary regenerates the golden files and says why in its commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fake_sweep import SCENARIOS, scenario_summary

GOLDEN = Path(__file__).resolve().parent / "golden"


def differences(old, new, where: str = "summary") -> list[str]:
    """Every path at which `new` differs from `old` (a field `new` adds is no difference)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in old for d in
                (differences(old[key], new[key], f"{where}.{key}") if key in new else [f"{where}.{key} is gone"])]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{where}[{i}]")]
    return [] if old == new else [f"{where}: {str(old)[:80]} became {str(new)[:80]}"]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_summary_json_is_unchanged_field_by_field(name, tmp_path):
    golden = json.loads((GOLDEN / f"summary-{name}.json").read_text())
    summary = json.loads(json.dumps(scenario_summary(name, tmp_path)))
    found = differences(golden, summary)
    assert not found, f"{len(found)} fields differ from tests/golden/summary-{name}.json:\n" + "\n".join(found[:20])


def test_the_comparison_sees_a_changed_and_a_missing_field():
    old = {"a": [1, {"b": 2}], "c": 3}
    assert differences(old, {"a": [1, {"b": 2.5}], "d": 4}) == ["summary.a[1].b: 2 became 2.5", "summary.c is gone"]
    assert differences(old, {**old, "new": 1}) == []
